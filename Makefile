# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests wait on databases, subprocesses and browsers as much as on the CPU: 4 workers on 2 cores;
# `worksteal` lets an idle worker take tests queued on a busy one (a few tests take a minute).
PYTEST_WORKERS ?= 4

.PHONY: run test test-fast test-slow bench bench-load lint format venv system clean lock

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The bench extra too: the bench smoke test runs Datasette beside Townhall.
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,bench]"
	# pycanon (k-anonymity checks in tests) pins old numpy/typer exactly; its code runs fine
	# with ours, so it is installed without its dependency pins.
	$(BIN)/python -m pip install -q --no-deps "pycanon==1.3.6"
	touch $(STAMP)

venv: $(STAMP)

system:
	./scripts/ensure-system.sh

## Set up, migrate, seed the demo city and serve on http://127.0.0.1:8000
run: $(STAMP)
	TOWNHALL_SITE_NAME="$${TOWNHALL_SITE_NAME:-City of Riverton}" \
		$(BIN)/townhall serve --demo --host 127.0.0.1 --port 8000

## Set up (system packages included) and run every test: both backends, browser, two nodes, fuzzing
test: $(STAMP) system
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow" --dist worksteal --durations=25 $(PYTEST_ARGS)

## Only the quick suites (no browser, no multi-node)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow and not browser and not multinode" --dist worksteal $(PYTEST_ARGS)

## Long suites: soak, big data
test-slow: $(STAMP) system
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

## Benchmarks side by side with the peers; results in docs/performance.md
bench: $(STAMP) system
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,bench]"
	$(BIN)/python -m bench $(BENCH_ARGS)

## Service requests under load (wrk): status lookups and submissions beside bare Starlette
bench-load: $(STAMP) system
	$(BIN)/python -m bench load $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Re-pin the dependencies after changing pyproject.toml
lock:
	rm -rf /tmp/townhall-lock && $(PYTHON) -m venv /tmp/townhall-lock
	/tmp/townhall-lock/bin/pip install -q --upgrade pip
	/tmp/townhall-lock/bin/pip install -q -e ".[test,bench]"
	/tmp/townhall-lock/bin/pip freeze --exclude-editable | grep -v -e '^-e' -e '^pycanon' > constraints.txt

clean:
	rm -rf $(VENV) townhall-data .pytest_cache
