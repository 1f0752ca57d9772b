# Quarry: `make run` starts the whole service; `make test` runs the suite.
# Both install whatever is missing first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch goes in before anything that depends on it, so pip
# never resolves torch itself (which would pull several GB of CUDA packages).
# --no-compile: Python compiles what is imported on first use; compiling all
# of torch and the rest up front took half the install's time.
TORCH := torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Python caches the bytecode of what it imports, whatever the shell says:
# with PYTHONDONTWRITEBYTECODE set, every process compiled torch and the
# model stack again on start (17 CPU-seconds per worker start instead of 8).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install redis-server browser run cluster test coverage lint bench bench-requests bench-fairness bench-webhooks bench-hnsw bench-scale bench-index-cache bench-cluster bench-memory eval chaos load clean

install: $(STAMP)

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile "$(TORCH)"
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]' -e ./client
	@if $(BIN)/python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then \
		echo "error: a CUDA torch build was pulled in" >&2; exit 1; fi
	touch $@

# Debian's redis-server, when the machine has none.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing Debian's redis-server"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

# Debian's headless Chromium and its driver, for the console's browser tests
# (tests/integration/test_console.py), when the machine has none: Selenium
# drives these two, and never downloads a browser or driver of its own.
browser:
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || { \
		echo "installing Debian's chromium and chromium-driver"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

run: install redis-server
	@scripts/run-local.sh

# The same processes on five "hosts" of this machine (network namespaces on a
# private bridge: data, web, two workers, beat; devstack/cluster.py). Needs
# root. Prints the web address and an admin key; Ctrl-C removes everything.
cluster: install redis-server
	$(BIN)/python -m devstack.run_cluster

# Every tier (tests/README.md).
test: install redis-server browser
	$(BIN)/python -m pytest

# The suite again with the coverage of app/ measured in process (the
# in-process tier runs the jobs; code run inside gunicorn and Celery is not
# counted). Kept out of `make test`: measuring costs the suite a sixth of its
# time. CI reports it from its PostgreSQL run, and fails under 85 %.
coverage: install redis-server browser
	$(BIN)/python -m pytest --cov=app --cov-report=term --cov-fail-under=85

# What CI checks besides the suite: ruff (lint and format) on every Python
# file of the repository, and mypy on the
# service's code (configured in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Each bench target runs one suite of `python -m bench`, records its figures
# in docs/benchmarks.json and renders docs/benchmarks.md (and docs/quality.md)
# from it as tables; see bench/README.md.
bench: install redis-server
	$(BIN)/python -m bench all

bench-webhooks: install redis-server
	$(BIN)/python -m bench webhooks

bench-hnsw: install
	$(BIN)/python -m bench hnsw

bench-scale: install redis-server
	$(BIN)/python -m bench scale

bench-index-cache: install redis-server
	$(BIN)/python -m bench index-cache

bench-cluster: install redis-server
	$(BIN)/python -m bench cluster

bench-requests: install redis-server
	$(BIN)/python -m bench requests

bench-fairness: install redis-server
	$(BIN)/python -m bench fairness

bench-memory: install redis-server
	$(BIN)/python -m bench memory

eval: install redis-server
	$(BIN)/python -m bench eval

# A bounded chaos run (not a test): MINUTES of mixed load while workers are
# SIGKILLed, Redis and PostgreSQL restarted and beat killed, then the checks
# (bench/chaos.py). DATABASE=postgres (a private PostgreSQL it may stop; the
# machine's PostgreSQL binaries) or sqlite.
DATABASE ?= postgres
MINUTES ?= 20
chaos: install redis-server
	$(BIN)/python -m bench chaos --database $(DATABASE) --minutes $(MINUTES)

# Load test of a running `make run` (bench/locustfile.py): locust, headless, then
# one summary line; exits non-zero on any error. HOST is the web's URL here (for
# `make run` it is the address to bind), so only this target sets it. NAIVE=1
# adds the naive clients (10 ms pollers, with and without If-None-Match, and
# a tight-loop submitter).
USERS ?= 64
SPAWN_RATE ?= 16
DURATION ?= 60s
load: HOST = http://127.0.0.1:$(or $(PORT),8000)
load: install
	$(BIN)/python -m locust -f bench/locustfile.py --headless --only-summary \
		--users $(USERS) --spawn-rate $(SPAWN_RATE) --run-time $(DURATION) --host $(HOST) \
		QuarryUser $(if $(NAIVE),NaivePoller ConditionalPoller QuotaBuster)

clean:
	rm -rf var .pytest_cache
