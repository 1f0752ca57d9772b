"""Quarry's benchmarks: `python -m bench <suite>`; see bench/README.md."""
