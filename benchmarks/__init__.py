"""Benchmarks: `python -m benchmarks` prints latency, accuracy and pipeline figures."""
