# The contract other tools rely on: install, run, test, bench (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install install-dev run test lint typecheck pytest bench fuzz fuzz-ci clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps make install idempotent: pip runs again only when a requirements file changed.
$(VENV)/.runtime: requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime
	$(PY) manage.py migrate --no-input
	$(PY) manage.py collectstatic --no-input --verbosity 0

install-dev: $(VENV)/.dev

run: install
	$(PY) manage.py seed_demo
	$(PY) manage.py run_portal --host $(HOST) --port $(PORT)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: install-dev
	$(VENV)/bin/mypy .

pytest: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# make test runs the suite in two parts (docs/decisions.md, "Test suite speed"):
# - the fast part (no test marked integration or browser) on TEST_WORKERS processes
#   (pytest-xdist; conftest.py gives each its own var folder);
# - then the tests that start Celery workers, run_portal or chromium, one at a time: they
#   have their own processes and deadlines, and two at a time on two cores only slow both.
# MARKS narrows both parts (CI: MARKS="not second_machine"); PYTEST_ARGS goes to both, and a
# part it leaves empty is not an error. `make pytest` runs pytest as given.
TEST_WORKERS ?= 2
MARKS ?=
TEST_VAR := PORTAL_VAR_DIR=$${PORTAL_VAR_DIR:-$(CURDIR)/var/test}
AND_MARKS = $(if $(MARKS), and ($(MARKS)),)
NONE_SELECTED_IS_OK := || [ $$? -eq 5 ]

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(TEST_VAR) $(PY) manage.py makemigrations --check --dry-run
	$(TEST_VAR) $(PY) -m pytest -n $(TEST_WORKERS) -m "not integration and not browser$(AND_MARKS)" $(PYTEST_ARGS) $(NONE_SELECTED_IS_OK)
	$(TEST_VAR) $(PY) -m pytest -m "(integration or browser)$(AND_MARKS)" $(PYTEST_ARGS) $(NONE_SELECTED_IS_OK)

# The fast part alone, for the edit-run loop; make test and CI run everything.
.PHONY: test-fast
test-fast: install-dev
	$(TEST_VAR) $(PY) -m pytest -n $(TEST_WORKERS) -m "not integration and not browser$(AND_MARKS)" $(PYTEST_ARGS)

# Coverage-guided fuzzing of the engine's parsers (docs/fuzzing.md). `fuzz`: each harness
# FUZZ_SECONDS (10 min) one after another; `fuzz-ci`: 60 s each. A crash exits 1 and names
# the input; make it a regression under fuzz/regressions/ (replayed by make test).
FUZZ_SECONDS ?= 600
fuzz: install-dev
	PORTAL_VAR_DIR=$${PORTAL_VAR_DIR:-$(CURDIR)/var} $(PY) -m fuzz run all --seconds $(FUZZ_SECONDS)

fuzz-ci: install-dev
	PORTAL_VAR_DIR=$${PORTAL_VAR_DIR:-$(CURDIR)/var} $(PY) -m fuzz run all --seconds 60

bench: install-dev
	PORTAL_VAR_DIR=$${PORTAL_VAR_DIR:-$(CURDIR)/var/bench} $(PY) bench/run.py

clean:
	rm -rf $(VENV) var
