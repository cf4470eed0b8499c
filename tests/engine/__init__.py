"""Tests of the engine: runner, attempts, retries, liveness, faults and recovery."""
