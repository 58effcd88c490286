# tassn — every target a user runs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
DATA ?= synthetic
CONFIG ?= cpu
RUNS ?= runs
DATA_ROOT ?=
SEED ?= 0
export OMP_NUM_THREADS ?= 2

STAMP := .install.stamp

.PHONY: help install test test-slow lint data
help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt setup.cfg
	$(PYTHON) -m pip install --quiet "torch==2.13.0" || $(PYTHON) -m pip install --quiet "torch>=2.3,<2.14"
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e ".[dev]"
	$(PYTHON) -m pip install --quiet "pytest>=8" "ruff>=0.5"
	@touch $(STAMP)

install: $(STAMP) ## install tassn and its dependencies (CPU torch 2.13.0 where its wheel is on disk)

test: $(STAMP) ## run the fast test suite (CPU, a few minutes)
	$(PYTHON) -m pytest -q

test-slow: $(STAMP) ## run the slow tests only
	$(PYTHON) -m pytest -q -m slow

lint: $(STAMP) ## ruff
	$(PYTHON) -m ruff check src data_modules tests benchmarks
