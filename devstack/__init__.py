"""The service's real processes on free ports, and an HTTP client of them, for the tests and the benchmark."""
