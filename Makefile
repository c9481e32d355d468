# The README's commands. Each creates .venv and installs what it needs when missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-all lint benchmarks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# the OCR demos' models (PP-OCR, Apache-2.0): only the wheel's files are read; its declared
	# opencv-python would clash with our opencv-python-headless, hence --no-deps
	$(BIN)/pip install --quiet --no-deps rapidocr-onnxruntime==1.4.4
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/farm run farm/jobs/digits.toml

# The suite without the tests marked `slow` (about 5 minutes on 2 cores).
test: $(STAMP)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# Only the `slow` ones: real multi-node clusters, demo training, end-to-end dense, OCR and keypoint jobs (~35 min on a busy machine).
test-slow: $(STAMP)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

test-all: test test-slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy farm targets workloads optimizers dashboards
	$(BIN)/lint-imports

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/repeatability.py
	$(BIN)/python benchmarks/gate_noise.py
	$(BIN)/python benchmarks/store_scale.py

clean:
	rm -rf results/farm.duckdb results/artifacts results/models
