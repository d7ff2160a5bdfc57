# One venv, made on demand; every target below depends on it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint typecheck pytest demo clean bench chaos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

# Test files run side by side in TEST_WORKERS processes (each with its own Temporal dev server,
# PostgreSQL cluster and S3 server); a file stays in one process, so its module fixtures are
# made once. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 4

pytest: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck pytest

# The quick tier (under a minute on 2 cores): tests marked `fast` by the one rule in
# tests/conftest.py (is_fast), i.e. unit tests and the workflow on the time-skipping test
# server. No dev server, S3, database, browser, FFmpeg or process of its own. `make test`
# still runs everything, these included.
test-fast: $(STAMP)
	$(BIN)/pytest -m fast $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/storyreel up

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache

# SPEC §6 targets, measured side by side in one run (sizes are flags: see --help).
bench: $(STAMP)
	$(BIN)/python deploy/bench/bench.py $(BENCH_ARGS)

# Reliability: processes killed mid-run, provider faults, schema fuzzing; prints each outcome.
chaos: $(STAMP)
	$(BIN)/pytest -s -v tests/chaos tests/workflows/test_simulator_runs.py tests/api/test_fuzz.py \
		tests/activities/test_clip_cancellation.py tests/api/test_state_reads.py tests/deploy/test_topology.py \
		tests/workflows/test_webhooks.py tests/workflows/test_fal_runs.py tests/workflows/test_fallback.py
