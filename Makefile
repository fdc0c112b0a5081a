# The two commands of the README: `make demo` and `make test`. Each sets up its own virtual
# environment (.venv) on first use, with the exact versions of constraints-dev.txt.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
CONSTRAINTS = constraints-dev.txt

# The test layers, fastest first: a broken unit fails in seconds, before the slower layers run.
FAST_LAYERS = tests/unit tests/integration tests/e2e
LAYERS = $(FAST_LAYERS) tests/chaos tests/browser
# Extra pytest arguments for every layer: make test PYTEST_ARGS="-x -q"
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint install clean

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) pip
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) -e '.[test,embedded,dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/docko-worker demo

# One pytest run per layer, in order; the first layer that fails stops the run (and make fails).
test: $(BIN)/.installed
	@for layer in $(LAYERS); do \
		echo "=== $$layer"; \
		$(BIN)/pytest $(PYTEST_ARGS) $$layer || exit 1; \
	done; \
	echo "=== all layers passed: $(LAYERS)"

# Unit, integration and end-to-end: everything but the chaos and browser layers (about a minute).
test-fast: $(BIN)/.installed
	@$(MAKE) --no-print-directory test LAYERS="$(FAST_LAYERS)"

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
