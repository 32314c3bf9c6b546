# The two commands: `make demo` (whole rehearsal on the lab, writes a report) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
KERNEL := aurora-fallback-runbook

.PHONY: setup demo test unit bench lab-up lab-down lab-status clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "Aurora fallback runbook (Python 3)" >/dev/null
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/runbook lab up
	$(VENV)/bin/runbook run --params parameters/lab.yaml

# Labs of different test modules run side by side (3 workers); the notebook pipeline stays in one.
test: setup
	$(PY) -m pytest -n 3 --dist loadgroup

unit: setup
	$(PY) -m pytest tests/unit -q

bench: setup
	$(PY) -m bench

lab-up: setup
	$(VENV)/bin/runbook lab up
lab-status: setup
	$(VENV)/bin/runbook lab status
lab-down: setup
	$(VENV)/bin/runbook lab down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
