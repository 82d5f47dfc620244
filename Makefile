# Two commands a newcomer needs: `make run` (the bus and its demo) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck bench bench-quick schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## Set up and run the bus: embedded broker (or KAFKA_BOOTSTRAP_SERVERS), router, scripted demo.
run: $(STAMP)
	$(BIN)/referral-bus demo

## Set up and run every test, including integration tests on a real broker the suite starts.
test: $(STAMP)
	bash deploy/install-prometheus.sh
	bash deploy/install-browser.sh
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not integration and not prometheus"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/referral-bus rules lint

## mypy (strict) on every package, as the folders are laid out, the benchmarks and the tests included
## (the list is pyproject's [tool.mypy] packages).
typecheck: $(STAMP)
	$(BIN)/mypy

BENCHMARKS := rules step router router_cpu produce alert_latency broker_growth fuzz fetch_round_trip fetch_waits

## Every benchmark in full (minutes; figures, not pass/fail). `make bench-quick`: each in seconds, as the suite runs them.
bench: $(STAMP)
	set -e; for b in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$b; done

bench-quick: $(STAMP)
	set -e; for b in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$b --quick; done

schemas: $(STAMP)
	$(BIN)/referral-bus schemas export

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
