# Every target creates .venv on first use, so a fresh clone needs only Python 3.11 and pip.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# Offline hygiene for Flower and MLflow (see docs in README): never phone home, never auto-install.
export FLWR_TELEMETRY_ENABLED=0
export FLWR_DISABLE_UPDATE_CHECK=1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=1

.PHONY: demo test science cluster-test ui bench lint clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installing is keyed on the files that decide what gets installed.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/fedsim demo

# The browser test (tests/test_report_browser.py) opens the HTML reports in Debian's Chromium: the only browser this
# project may use (no browser downloads). The target is the binary itself, so apt runs only when it is missing.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" -ne 0 ]; then \
	  echo "make test needs Debian's chromium at $(CHROMIUM) for the report's browser test; run as root:" >&2; \
	  echo "  apt-get update && apt-get install -y --no-install-recommends chromium" >&2; exit 1; fi
	@command -v apt-get >/dev/null 2>&1 || { \
	  echo "make test needs Debian's chromium at $(CHROMIUM) for the report's browser test, and apt-get is" \
	    "not available: install the chromium package of your distribution" >&2; exit 1; }
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
	@test -x $@ || { echo "apt-get installed chromium but $@ is missing" >&2; exit 1; }

chromium: $(CHROMIUM)

# Lint first: CI runs `make test`, so a lint failure fails CI before the (slower) suite starts.
test: lint $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not science and not cluster" --durations=15

# The full statistical studies (e.g. the placebo and A-vs-A nulls on five worlds, ~10 min); `make test` runs
# their smaller versions so that CI stays under 15 minutes.
science: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m science -s

# A real `ray start --head` cluster and `mlflow server`, a small grid run against both (issue 14; ~3 min, so not
# part of `make test`, which must stay under 15 minutes on 2 cores).
cluster-test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m cluster -s tests/test_cluster.py

ui: $(VENV)/.installed
	$(BIN)/fedsim ui

# Quick sizes by default; `make bench BENCH_ARGS=` runs the full sizes (the world at 100k persons x 365 days
# needs ~20 GB of memory). Every run appends its rows to benchmarks/results/<benchmark>.csv (commit, machine, load)
# and redraws benchmarks/results/<benchmark>.png; `BENCH_ARGS="--quick --no-record"` writes nothing.
BENCH_ARGS ?= --quick
bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy synthetic fedsim

clean:
	rm -rf worlds runs reports mlflow.db mlflow.db*.lock mlartifacts .pytest_cache
