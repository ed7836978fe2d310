# Every target installs what it needs first (scripts/setup.sh is idempotent and quick when up to date).
VENV ?= .venv
PY := $(VENV)/bin/python
SHELL := /bin/bash

# The shared proxy yardstick (docs/benchmarks.md): the node against aiohttp_auth, nginx, LiteLLM, ... in one run.
BENCH_ANCHORS ?= ../shared/bench-anchors
ANCHOR_ROUNDS ?= 5

.PHONY: setup test test-fast test-backends check format demo bench bench-anchors clean

setup:
	@bash scripts/setup.sh

# The core suite; the real-server tier (vLLM, llama.cpp: ~15 minutes of installs the first time) is
# `make test-backends`. .ci/run runs both.
test: setup
	$(PY) -m pytest -q --ignore=tests/backends

test-fast: setup
	$(PY) -m pytest -q tests/unit

test-backends: setup
	@bash scripts/setup-backends.sh
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

# The request-path scripts measure against the yardstick (../shared/bench-anchors, set up by bench-anchors).
YARDSTICK_BENCH := bench/request_cost.py bench/request_instructions.py bench/request_floor.py bench/profile_request.py

bench: setup
	for b in $(filter-out bench/_% $(YARDSTICK_BENCH),$(wildcard bench/*.py)); do $(PY) $$b || exit 1; done

bench-anchors: setup
	@test -x $(BENCH_ANCHORS)/run_proxy_anchors.sh || { echo "bench-anchors: no yardstick at $(BENCH_ANCHORS) (set BENCH_ANCHORS=DIR)" >&2; exit 2; }
	cd $(BENCH_ANCHORS) && ./run_proxy_anchors.sh --rounds $(ANCHOR_ROUNDS) --duration 3 \
	  --scenarios chat:1,chat:64,sse:64 --targets direct,nginx,aiohttp,aiohttp_auth,node,litellm \
	  --node-cmd '$(abspath $(VENV))/bin/fxn start --home {home}'

clean:
	rm -rf .stamps build dist .pytest_cache .mypy_cache .ruff_cache
