# The front door: `make up` runs the platform, `make test` runs the suite.
#
# `make test` runs two tiers, each one pytest run with PYTEST_ARGS on 2 pytest-xdist workers that
# take whole modules (tests/utils/xdist_groups.py): first the fast tier (every test not marked
# `integration`: no platform processes; the trainer tests' local Ray is no platform), then, only
# when the fast tier passed, the integration tier (tests that start Ray heads, MLflow servers,
# Dagster or the API as processes): the tests of the shared platform on one worker, in order, and
# the tests that start processes of their own on the other.
# TIER=fast or TIER=integration runs one tier alone.
# A tier that PYTEST_ARGS leaves without tests (e.g. PYTEST_ARGS=tests/unit) counts as passed.
# PYTEST_ARGS with its own -m (e.g. PYTEST_ARGS="-m 'not integration'") is one run, as given.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
TIER ?= all
$(if $(filter $(TIER),all fast integration),,$(error TIER is all, fast or integration, not "$(TIER)"))
OWN_SELECTION := $(filter -m -m%,$(PYTEST_ARGS))
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
# pip's configured extra indexes print one harmless warning per package: keep the output readable.
QUIET := { grep -v "is ignored" || true; }

.PHONY: install system-packages up test lint clean-data reference-walkthrough

install: $(VENV)/.installed

# torch through pip first: pip takes the CPU build where one lies on the machine's disk (its
# find-links), which uv does not read; then uv installs the rest in seconds where pip took minutes.
# --compile-bytecode: uv (unlike pip) writes no .pyc by itself, and where PYTHONDONTWRITEBYTECODE is
# set (as on the CI machine) no process writes them either: every Ray worker, run worker and server
# then compiled its imports from source again (about 1 s more CPU per process for Ray alone; the
# fast tier took 12 minutes instead of 7). The project's own packages are compiled likewise.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv 'torch==2.13.0' 2>&1 | $(QUIET)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'
	$(BIN)/python -m compileall -q -j 0 assets pipelines resources serving_api mlservice
	$(BIN)/python -c "import mlservice, serving_api, resources, pipelines, dagster, ray, mlflow, fastapi"
	@touch $@

# PostgreSQL and Redis for the tests' real servers (the scale profile's): Debian's packages when missing.
system-packages:
	@scripts/system_packages.sh

up: install
	$(BIN)/mlservice up

test: install system-packages
ifneq ($(OWN_SELECTION),)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
else
ifneq ($(TIER),integration)
	$(BIN)/python -m pytest -m "not integration" -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS) || test $$? -eq 5
endif
ifneq ($(TIER),fast)
	$(BIN)/python -m pytest -m integration -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS) || test $$? -eq 5
endif
endif

# The API reference's examples, in order, against the platform `make up` runs (in another terminal).
reference-walkthrough: install
	$(BIN)/mlservice walkthrough

# The house rules CI checks before the tests: ruff (lint and import order, config in pyproject.toml)
# and import-linter's contracts (the import directions between packages, [tool.importlinter]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The data directory, and the scale profile's PostgreSQL cluster where it lives outside it (run as root).
clean-data:
	@test ! -x $(BIN)/python || $(BIN)/python -c 'from pathlib import Path; from mlservice.launcher.postgres import LocalPostgres; \
	  LocalPostgres(home=Path(".mlservice/postgres"), port=0, password_path=Path("unused")).remove_external_cluster()'
	rm -rf .mlservice
