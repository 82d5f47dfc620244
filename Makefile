# Two commands a newcomer needs: `make run` (the bus and its demo) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck bench schemas clean

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
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not integration and not prometheus"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/referral-bus rules lint

## mypy (strict) on the import package as installed: the folders are mapped into `referral_bus`
## (pyproject's package-dir), which mypy cannot follow, so it reads a tree of links laid out the same way.
TYPECHECK := .state/typecheck
typecheck: $(STAMP)
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/referral_bus
	for f in bus/*; do case $$f in */__pycache__) ;; *) ln -s $(CURDIR)/$$f $(TYPECHECK)/referral_bus/ ;; esac; done
	for d in schemas topics services rules; do ln -s $(CURDIR)/$$d $(TYPECHECK)/referral_bus/$$d; done
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy -p referral_bus

bench: $(STAMP)
	$(BIN)/python benchmarks/router.py
	$(BIN)/python benchmarks/rules.py
	$(BIN)/python benchmarks/alert_latency.py
	$(BIN)/python benchmarks/broker_growth.py

schemas: $(STAMP)
	$(BIN)/referral-bus schemas export

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
