# Every target installs what it needs first (scripts/setup.sh is idempotent and quick when up to date).
VENV ?= .venv
PY := $(VENV)/bin/python
SHELL := /bin/bash

.PHONY: setup test test-fast test-backends check format demo bench clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q tests/unit

test-backends: setup
	$(PY) -m pytest -q tests/backends

check: setup
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy --strict
	$(VENV)/bin/mypy --strict tests bench

format: setup
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

demo: setup
	$(VENV)/bin/fxn devnet up --once

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf .stamps build dist .pytest_cache .mypy_cache .ruff_cache
