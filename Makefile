# The command surface of AgileCity: the README names these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB := src/agilecity/web
NODE_STAMP := $(WEB)/node_modules/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the pages' front-end packages (Leaflet, uPlot; axe-core for the tests), from npm, never committed
$(NODE_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

## demo: set up and start the platform, its gateway and the demo town (SQLite store)
demo: $(STAMP) $(NODE_STAMP)
	$(BIN)/agilecity demo

## test: set up, lint, type-check and run the whole test suite
test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# the PostgreSQL database bench/run.py drops and recreates
BENCH_PG ?= postgresql://postgres@127.0.0.1:5432/agilecity_bench

## bench: run the benchmarks and print their tables: SQLite, then PostgreSQL (1 and 2 processes)
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/run.py --db $(BENCH_PG) --compare-workers --entities-for-memory 0
	$(BIN)/python bench/simulator.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache $(WEB)/node_modules
