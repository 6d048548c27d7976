# The front door: `make up` runs the platform, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
# pip's configured extra indexes print one harmless warning per package: keep the output readable.
QUIET := { grep -v "is ignored" || true; }

.PHONY: install up test clean-data

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]' 2>&1 | $(QUIET)
	$(BIN)/python -c "import mlservice, serving_api, resources, pipelines, dagster, ray, mlflow, fastapi"
	@touch $@

up: install
	$(BIN)/mlservice up

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-data:
	rm -rf .mlservice
