# The README's two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-quick soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: set up, then serve routes.yaml in front of the demo upstream (Ctrl-C stops both)
run: $(STAMP)
	$(BIN)/python -m examples.run_demo

## test: set up, then lint, type-check and run every test
test: $(STAMP) lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict gateway bench

## bench: the benchmark suite (installs wrk and nginx from the system's packages if missing)
bench: $(STAMP)
	$(BIN)/python -m bench.run

## bench-quick: a one-minute smoke run of the benchmark suite
bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

## soak: ten minutes of mixed traffic on 2 workers; fails on RSS or descriptor growth (MINUTES=N)
MINUTES ?= 10
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(MINUTES)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
