# Everyday commands. `make run` serves the API with all it needs; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help venv run test check lint types browser bench-ingest clean

help:
	@echo "make run          serve the API at http://127.0.0.1:8000 (starts what is missing)"
	@echo "make test         run the whole test suite against real PostgreSQL, Redis and S3"
	@echo "make check        ruff and mypy"
	@echo "make bench-ingest ingest throughput against a running service (see bench/)"

venv: $(STAMP)

# torch first, pinned, so pip takes the CPU build rather than pulling CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

run: venv
	$(BIN)/python -m devstack run

test: venv check browser
	$(BIN)/python -m pytest

# The console's browser tests drive Debian's Chromium (never `playwright install`'s download).
browser:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the console's browser tests"; \
		$$(command -v sudo) apt-get install -y --no-install-recommends chromium \
		|| { $$(command -v sudo) apt-get update && $$(command -v sudo) apt-get install -y --no-install-recommends chromium; }; }

check: lint types

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: venv
	$(BIN)/mypy

bench-ingest: venv
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
