"""The service's real processes on free ports, and an HTTP client of them, for the tests and the benchmark;
and what `make run` needs besides honcho (local_run.py)."""
