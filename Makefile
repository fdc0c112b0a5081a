# The two commands of the README: `make demo` and `make test`. Each sets up its own virtual
# environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,embedded,dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/docko-worker demo

test: $(BIN)/.installed
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check docko_worker tests benchmarks
	$(BIN)/ruff format --check docko_worker tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The benchmark: its own environment (benchmarks/.venv), results in benchmarks/results/.
# Quicker runs: make bench BENCH_ARGS="--runs 1 --skip-million --systems docko"
.PHONY: bench
bench:
	bash benchmarks/run.sh $(BENCH_ARGS)
