# Two commands do all the setup:  `make run` (the main job) and `make test` (the test suite).
# Each creates the virtual environment in .venv and installs what it needs on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test test-all lint bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,lint,bench]'
	touch $@

## run: convert -> verify -> matrix on the built-in example, or on VECTORS=file VOCAB=file
run: $(VENV)/.run-deps
	$(BIN)/embstore demo $(if $(VECTORS),--vectors '$(VECTORS)') $(if $(VOCAB),--vocab '$(VOCAB)') $(if $(WORKDIR),--workdir '$(WORKDIR)')

## test: the test suite (slow cases excluded; `make test-all` includes them)
test: $(VENV)/.dev-deps
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(VENV)/.dev-deps
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m '' $(PYTEST_ARGS)

## lint: ruff and mypy
lint: $(VENV)/.dev-deps
	$(BIN)/ruff check embstore tests benchmarks
	$(BIN)/mypy embstore

## bench: the benchmark table and chart (SIZE=tiny|small|1m|3m)
bench: $(VENV)/.dev-deps
	$(BIN)/python benchmarks/run.py --size $(or $(SIZE),1m)

bench-quick: $(VENV)/.dev-deps
	$(BIN)/python benchmarks/run.py --size tiny

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache benchmarks/results
