# Two commands set everything up on a fresh clone:
#   make demo   runs the demo (sandbox + Airflow on SQLite + the example DAGs)
#   make test   runs lint, type checks and the whole test suite on the newest and the oldest
#               supported Airflow
PYTHON ?= python3
NEWEST := constraints/airflow-3.3.2.txt
OLDEST := constraints/airflow-3.1.0.txt
VENV := .venv
VENV_OLDEST := .venv-oldest

.PHONY: demo test lint typecheck test-newest test-oldest venv venv-oldest bench clean

$(VENV)/.installed: pyproject.toml $(NEWEST)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c $(NEWEST) -e '.[test]'
	touch $@

$(VENV_OLDEST)/.installed: pyproject.toml $(OLDEST)
	rm -rf $(VENV_OLDEST)
	$(PYTHON) -m venv $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/pip install --quiet --upgrade pip
	$(VENV_OLDEST)/bin/pip install --quiet -c $(OLDEST) -e '.[test]'
	touch $@

venv: $(VENV)/.installed
venv-oldest: $(VENV_OLDEST)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

test-newest: venv
	$(VENV)/bin/pytest

test-oldest: venv-oldest
	$(VENV_OLDEST)/bin/pytest -m "not e2e"

test: lint typecheck test-newest test-oldest

demo: venv
	$(VENV)/bin/python -m airflow_provider_aiq_braze.demo

clean:
	rm -rf $(VENV) $(VENV_OLDEST) .airflow .mypy_cache .ruff_cache .pytest_cache
