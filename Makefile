# MedDenoise: two set-up commands for a fresh machine.
#   make demo   install into .venv and denoise the bundled sample CT/MR (outputs in demo-output/)
#   make test   install into .venv (with test extras) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned to the CPU build present on the CI machine: an open range would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# pytest-xdist workers: one per core of the 2-core CI machine (each computes on one thread, see Testing/conftest.py)
TEST_WORKERS ?= 2

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"

demo: install
	$(BIN)/python -m meddenoiselib demo --output demo-output --overwrite

test: install-test
	$(BIN)/ruff check MedDenoiseLib MedDenoise Testing scripts benchmarks
	$(BIN)/ruff format --check MedDenoiseLib MedDenoise Testing scripts benchmarks
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) Testing

clean:
	rm -rf $(VENV) demo-output .pytest_cache
