"""``python -m bench``: the benchmark suite (see docs/performance.md)."""
