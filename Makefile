# The two commands: `make demo` (whole rehearsal on the lab, writes a report) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test unit bench bench-large lab-up lab-down lab-status clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The kernel spec is checked on every run: another checkout may have registered one of its own.
setup: $(VENV)/.installed
	$(PY) -m runbook_lib.run.kernel >/dev/null

# A rehearsal starts from an unprepared source and an empty Aurora: the lab is reset first.
demo: setup
	$(VENV)/bin/runbook lab reset
	$(VENV)/bin/runbook run --params parameters/lab.yaml

# Two pytest-xdist workers, given whole groups of tests that share a lab (tests/conftest.py),
# the longest chain (the notebook pipeline) first.  TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --no-loadscope-reorder)

unit: setup
	$(PY) -m pytest tests/unit -q

# The quick size (1,000,000 rows) by default; `make bench-large` measures 10,000,000 rows (it loads a lot).
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

bench-large: setup
	$(PY) -m bench --rows 10000000 $(BENCH_ARGS)

lab-up: setup
	$(VENV)/bin/runbook lab up
lab-status: setup
	$(VENV)/bin/runbook lab status
lab-down: setup
	$(VENV)/bin/runbook lab down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
