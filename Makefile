# Two commands set everything up on a fresh clone:
#   make demo   runs the demo (sandbox + Airflow on SQLite + the example DAGs)
#   make test   runs lint, type checks and the whole test suite on the newest and the oldest
#               supported Airflow
# and two more are there when needed:
#   make services     installs PostgreSQL and Redis from Debian's packages (once; quick afterwards) for
#                     the distributed end-to-end test (tests/e2e/celery), which starts them itself on
#                     127.0.0.1; CI runs it before `make test`
#   make constraints  regenerates the pinned environments in constraints/ after a dependency change
#                     (pyproject.toml, EXTRAS), moving only the versions that must move
PYTHON ?= python3
NEWEST_AIRFLOW := 3.3.2
OLDEST_AIRFLOW := 3.1.0
NEWEST := constraints/airflow-$(NEWEST_AIRFLOW).txt
OLDEST := constraints/airflow-$(OLDEST_AIRFLOW).txt
#: The extras every test environment installs (and `make constraints` pins).
EXTRAS := test,celery
VENV := .venv
VENV_OLDEST := .venv-oldest
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test lint typecheck test-newest test-oldest venv venv-oldest constraints services bench clean

$(VENV)/.installed: pyproject.toml $(NEWEST)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c $(NEWEST) -e '.[$(EXTRAS)]'
	touch $@

$(VENV_OLDEST)/.installed: pyproject.toml $(OLDEST)
	rm -rf $(VENV_OLDEST)
	$(PYTHON) -m venv $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/pip install --quiet --upgrade pip
	$(VENV_OLDEST)/bin/pip install --quiet -c $(OLDEST) -e '.[$(EXTRAS)]'
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

constraints:
	PYTHON=$(PYTHON) constraints/freeze.sh $(NEWEST_AIRFLOW) $(NEWEST) $(EXTRAS)
	PYTHON=$(PYTHON) constraints/freeze.sh $(OLDEST_AIRFLOW) $(OLDEST) $(EXTRAS)

services:
	@if command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "services: redis-server and PostgreSQL are installed"; \
	else \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			redis-server postgresql; \
	fi

demo: venv
	$(VENV)/bin/python -m airflow_provider_aiq_braze.demo

clean:
	rm -rf $(VENV) $(VENV_OLDEST) .airflow .mypy_cache .ruff_cache .pytest_cache
