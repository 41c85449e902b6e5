# The two commands: `make demo` and `make test`. Both bootstrap .venv from a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-services debian-packages lint docs bench clean

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

# What the tests start (the tests start and stop them; this only installs them): oidc-provider,
# the MCP TypeScript SDK client, playwright-core (a driver, no browser) and mermaid, and Cerbos's
# decision point (its binary, as npm ships it) from npm; Redis, nginx, Caddy, Glewlwyd and
# Chromium from Debian (one `apt-get update`, then only what is missing).
OIDC_DIR := tests/interop/oidc_provider
TS_CLIENT_DIR := tests/end_to_end/ts_client
BROWSER_DIR := tests/end_to_end/browser
CERBOS_DIR := tests/engines/cerbos
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_COMMANDS := redis-server:redis-server chromium:chromium npm:npm nginx:nginx caddy:caddy glewlwyd:glewlwyd

%/node_modules/.package-lock.json: %/package-lock.json | debian-packages
	cd $* && npm ci --no-audit --no-fund --loglevel=error

debian-packages:
	@missing="$$(for pair in $(DEBIAN_COMMANDS); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; done)"; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

test-services: debian-packages $(OIDC_DIR)/node_modules/.package-lock.json $(TS_CLIENT_DIR)/node_modules/.package-lock.json \
	$(BROWSER_DIR)/node_modules/.package-lock.json $(CERBOS_DIR)/node_modules/.package-lock.json

test: $(VENV)/.dev-installed test-services
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# The guide as a site, built strictly (a broken link or anchor fails); `make test` builds it too.
docs: $(VENV)/.dev-installed
	$(BIN)/sphinx-build -W --keep-going -n -b html docs build/docs

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
