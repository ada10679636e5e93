# The commands of the quick start: `make demo`, `make test` and `make docs`.
# Each bootstraps a local virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test docs dist-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	@sh .ci/ensure-chromium.sh
	@sh .ci/ensure-graphviz.sh
	$(BIN)/python -m pytest -q --cov --cov-report=term
	$(BIN)/ruff check asyncflow tests examples benchmarks
	$(BIN)/ruff format --check asyncflow tests examples benchmarks
	$(BIN)/mypy
	$(MAKE) --no-print-directory docs dist-check

# The guide and API reference, from the docstrings; strict: a broken reference fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Build the sdist and wheel and check them; install the wheel with every dependency at its
# declared floor in a fresh venv; run the README quick start and the engine's tests there.
dist-check: $(STAMP)
	PYTHON=$(BIN)/python bash .ci/min-versions.sh

# The benchmarks also measure DBOS Transact (the `bench` extra) as the durable anchor.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage site build dist
