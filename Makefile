# inferloop: every target creates or reuses .venv (Python 3.11 and pip are all it needs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.installed-run
# Stages call papermill, dvc and uvicorn by name: put the venv first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
PORT ?= 5000
SERVE_PORT ?= 5001
WORKERS ?= 2
MODEL ?=  # default: models:/<registry.model_name>@champion

.PHONY: help venv run test test-fast lint format ui lab serve bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# `make run` needs inferloop alone; the tests and benchmarks also need the dev tools and the
# scale-out extras (Spark, PostgreSQL, Redis), installed on top when first asked for
$(RUN_STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark,postgres,redis]'
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install inferloop with its dev tools

run: $(RUN_STAMP)  ## run the whole lifecycle (dvc repro + the production simulation) and say where to look
	@test -d .dvc || $(BIN)/dvc init --quiet
	time $(BIN)/dvc repro dvc.yaml
	@mkdir -p reports/notebooks
	time $(BIN)/papermill notebooks/08_production.ipynb reports/notebooks/08_production.ipynb -k python3 --log-level WARNING -p params_path params.yaml
	@# the operational scoring pipeline, once, on the weeks the simulation sent to data/incoming/
	time $(BIN)/dvc repro pipelines/score/dvc.yaml
	@cat reports/production/timeline.md
	@$(BIN)/inferloop where

# one worker per core; each test file stays on one worker (the pipeline tests share one DVC run)
PYTEST_WORKERS ?= auto
test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test-fast: $(STAMP)  ## unit tests only
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)  ## ruff lint + format check, mypy on src/
	$(BIN)/ruff check src tests benchmarks pipelines
	$(BIN)/ruff format --check src tests benchmarks pipelines
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks pipelines
	$(BIN)/ruff format src tests benchmarks pipelines

ui: $(RUN_STAMP)  ## MLflow UI on http://127.0.0.1:$(PORT) against the project store
	$(BIN)/inferloop ui --port $(PORT)

lab: $(RUN_STAMP)  ## JupyterLab on the notebooks
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser notebooks

serve: $(RUN_STAMP)  ## serve $(MODEL) with mlflow models serve on 127.0.0.1:$(SERVE_PORT)
	$(BIN)/inferloop serve $(if $(strip $(MODEL)),--model $(MODEL)) --port $(SERVE_PORT) --workers $(WORKERS)

bench: $(STAMP)  ## run the benchmarks; results in benchmarks/results/*.json
	$(BIN)/python benchmarks/run_all.py

clean:  ## remove generated data, stores and reports (keeps .venv)
	rm -rf data/raw data/validated data/processed data/quarantine data/predictions data/incoming data/production mlruns reports/notebooks reports/monitoring
