# The README's commands. Each creates .venv and installs what it needs when missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test test-all lint benchmarks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/farm run farm/jobs/digits.toml

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/pytest -m ""

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/repeatability.py

clean:
	rm -rf results/farm.duckdb results/artifacts results/models
