"""Benchmarks for watcher: a synthetic news corpus, a loopback server, timed end-to-end runs.

Not part of the test suite. Run `python -m benchmarks.e2e --help`.
"""
