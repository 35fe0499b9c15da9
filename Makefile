# Each target creates the virtual environment it needs, so a fresh clone works with one command.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs bench bench-gpu clean

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

test: lint docs
	$(BIN)/python -m pytest -q

# The site, built strictly (a broken link or reference, or a notebook cell that fails, stops it)
# into site/. The notebooks run at build time, in kernels reached through sockets in a private
# temporary folder (Jupyter's default, unencrypted TCP on localhost, is reachable by any local user).
docs: $(BIN)/.installed
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	printf '{"KernelManager": {"transport": "ipc", "ip": "%s/kernel"}}' "$$scratch" > "$$scratch/jupyter_nbconvert_config.json" && \
	NO_MKDOCS_2_WARNING=1 JUPYTER_CONFIG_PATH="$$scratch" $(BIN)/mkdocs build --strict --quiet --site-dir site

bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run --runs 3

# On a CUDA machine that already has a CUDA build of PyTorch and JAX's CUDA plugin installed.
bench-gpu: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[gpu]'
	$(BIN)/python -m benchmarks.run --device cuda --runs 3

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis site
