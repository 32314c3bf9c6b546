# The two commands: `make demo` (whole rehearsal on the lab, writes a report) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test unit bench bench-large lab-up lab-down lab-status clean sysdeps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The kernel spec is checked on every run: another checkout may have registered one of its own.
setup: $(VENV)/.installed
	@$(PY) -m runbook_lib.run.kernel >/dev/null

# A rehearsal starts from an unprepared source and an empty Aurora: the lab is reset first (its
# details: `runbook lab status`).  Then one line per phase, with a progress bar while it runs.
demo: setup
	@$(VENV)/bin/runbook lab reset --aurora 3 >/dev/null && echo "lab reset: an unprepared source, an empty Aurora"
	@$(VENV)/bin/runbook run --params parameters/lab.yaml

# Debian packages some tests use, installed when missing (as root; otherwise those tests skip, saying
# so): chromium for the browser tests, driven by Playwright (never a downloaded browser: no
# `playwright install`), and openssh-server for the backup streamed over SSH (its own sshd on loopback).
sysdeps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; }; \
	  else echo "missing:$$missing (sudo apt-get install -y$$missing); the tests that need them skip"; fi; \
	fi

# Two pytest-xdist workers, given whole groups of tests that share a lab (tests/conftest.py),
# the longest chain (the notebook pipeline) first.  TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: setup sysdeps
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
	$(VENV)/bin/runbook lab up --aurora 3
lab-status: setup
	$(VENV)/bin/runbook lab status
lab-down: setup
	$(VENV)/bin/runbook lab down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
