"""Benchmarks: scripts that print figures, each beside a baseline measured in the same run.

Run one as a module from the repository, e.g. `.venv/bin/python -m benchmarks.router`; every one
takes `--quick` (tiny sizes, seconds: what the test suite runs, so none can break unnoticed) and
ends with one JSON line of its results. `make bench` runs them all in full. Nothing in the test
suite asserts a timing.
"""
