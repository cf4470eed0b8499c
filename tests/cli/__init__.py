"""Tests of the command line and of allowed_jobs.yaml."""
