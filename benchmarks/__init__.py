"""Benchmarks for embstore: synthetic data, whole-process runner and pytest-benchmark timings.

``python benchmarks/run.py --size tiny|small|1m|3m`` is the entry point; see README.md here.
"""
