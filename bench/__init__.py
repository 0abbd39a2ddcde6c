"""Benchmarks: each measurement is reported against a baseline taken in the same run."""
