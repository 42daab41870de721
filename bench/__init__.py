"""Benchmarks (one script each, run as `.venv/bin/python bench/<name>.py`, `--smoke` to check one works) and
the loopback servers they share with the tests (`bench.support.servers`)."""
