# Each target creates the virtual environment it needs, so a fresh clone works with one command.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-gpu clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/chainrule train

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run --runs 3

# On a CUDA machine that already has a CUDA build of PyTorch and JAX's CUDA plugin installed.
bench-gpu: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[gpu]'
	$(BIN)/python -m benchmarks.run --device cuda --runs 3

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
