# The two commands: `make demo` and `make test`. Both bootstrap .venv from a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-services lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed extras are recorded in a stamp file, so `make test` after `make demo` adds what is missing.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/mcp-oauth-middleware demo

# What the tests start (the tests start and stop them; this only installs them): oidc-provider
# and the MCP TypeScript SDK client from npm, Redis from Debian.
OIDC_DIR := tests/interop/oidc_provider
TS_CLIENT_DIR := tests/end_to_end/ts_client
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

%/node_modules/.package-lock.json: %/package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs npm; }
	cd $* && npm ci --no-audit --no-fund --loglevel=error

test-services: $(OIDC_DIR)/node_modules/.package-lock.json $(TS_CLIENT_DIR)/node_modules/.package-lock.json
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y redis-server; }

test: $(VENV)/.dev-installed test-services
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
