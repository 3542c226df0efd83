# One command surface: README and .ci/run call these unchanged.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install services tools fonts bootstrap run test lint bench lock clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(PY) -q -e '.[dev]'
	touch $@

services:
	deploy/local/ensure-services.sh

# The report fonts pdfgen needs (Debian's fonts-nanum, as in its image).
fonts:
	deploy/local/ensure-fonts.sh

# promtool, prometheus and docker-compose: the suite checks deploy/ and docker-compose.yml with them.
tools:
	deploy/local/ensure-tools.sh

# Database created and migrated, topology declared: safe to repeat.
bootstrap: install services fonts
	$(BIN)/offload db upgrade
	$(BIN)/offload topology declare --management-url "$${OFFLOAD_RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}"

run: bootstrap
	@echo "Offload gateway on http://127.0.0.1:$${OFFLOAD_GATEWAY_PORT:-8000}  (docs at /docs)"
	@echo "Development API key: $$($(PY) -c 'from services.gateway.config import GatewaySettings as S; print(sorted(S().accepted_keys())[0])')"
	PATH="$(abspath $(BIN)):$$PATH" exec $(BIN)/honcho start -f Procfile

test: install services tools fonts
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: bootstrap
	$(PY) -m bench $(BENCH_ARGS)

# Re-pin the per-image lock files (requirements/*.txt) after a pyproject.toml change.
lock: install
	requirements/compile.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
