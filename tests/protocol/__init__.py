"""Tests of the spool protocol: the codec, the ways in, leftovers of interrupted moves."""
