"""The Quarry benchmark: `bench/run.py` is the entry point; see bench/README.md for the layout."""
