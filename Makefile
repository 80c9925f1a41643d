# The two set-up commands: `make run` (the whole system with a live demo market) and
# `make test` (lint, types and the full test suite on the real services). Each does all of
# its own set-up: the virtual environment, packages and the local service stack.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
# Optional native builds of the domain (pure Python is the fallback), rebuilt when their sources
# change: the Rust matching kernel (native/kernel, cargo) and mypyc. See tradecore/build_native.py.
NATIVE := $(VENV)/.native-built
NATIVE_SOURCES := domain/values.py domain/instruments.py domain/book.py domain/exchange.py domain/_native.py domain/kernel.py tradecore/build_native.py native/kernel/Cargo.toml native/kernel/Cargo.lock $(wildcard native/kernel/src/*.rs)

.PHONY: run test lint typecheck unit native stack-up stack-down stack-status clean help

help:
	@echo "make run    - install everything, start the stack and Tradecore (Ctrl-C stops)"
	@echo "make test   - install everything, start the stack, run ruff, mypy and pytest"
	@echo "make stack-down - stop the local services"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tradecore needs Python >= 3.11; set PYTHON=/path/to/python3.11")'
	@echo "==> creating the virtual environment in $(VENV) and installing Tradecore (a minute or two the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

$(NATIVE): $(STAMP) $(NATIVE_SOURCES)
	@echo "==> compiling the domain: mypyc, then the Rust kernel with cargo (optional: on failure the pure-Python Exchange is used)"
	@$(BIN)/python -m tradecore.build_native
	@touch $@

native: $(NATIVE)

# The web trading UI (web/): npm ci from the lockfile, tsc --noEmit, Vitest, Vite build into
# web/dist; each step is skipped when its inputs did not change (FORCE=1 redoes them).
.PHONY: web
web:
	@tools/build_web.sh

run: $(STAMP) $(NATIVE) web
	@$(BIN)/tradecore up

stack-up: $(STAMP)
	@$(BIN)/tradecore stack up

stack-down: $(STAMP)
	@$(BIN)/tradecore stack down

stack-status: $(STAMP)
	@$(BIN)/tradecore stack status

lint: $(STAMP)
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check . >/dev/null || echo "(ruff format would reformat some files; not enforced)"

typecheck: $(STAMP)
	@echo "==> mypy"
	@$(BIN)/mypy

unit: $(STAMP) $(NATIVE)
	@$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: $(STAMP) $(NATIVE) lint typecheck web
	@echo "==> starting the local service stack (PostgreSQL+TimescaleDB, Redis, Kafka)"
	@$(BIN)/tradecore stack up
	@echo "==> pytest"
	@$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
