"""Benchmarks (issue 5): see docs/benchmarks.md. Each script runs with `.venv/bin/python bench/NAME.py`."""
