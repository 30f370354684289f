# Run `make help` for the targets. Everything goes through uv and the committed uv.lock.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv from PATH, else a private copy bootstrapped with pip into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help setup run test test-slow test-docker lint format zenml bench reproduce clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

setup: .venv/.synced ## Create .venv from uv.lock (bootstraps uv if missing)

run: setup ## Run the DVC pipeline (dvc repro) on the embedded MLflow store
	$(RUN) dvc repro

bench: setup ## Measure workflow costs and scaling → benchmarks/results.md (~30 min; BENCH_ARGS=--quick)
	$(RUN) python -m benchmarks.bench $(BENCH_ARGS)

MODEL ?= models:/iris_classifier@champion
reproduce: setup ## Rebuild a model from its lineage, compare bit for bit (MODEL=<models:/… or run id>)
	$(RUN) python -m stages.reproduce $(MODEL) $(REPRODUCE_ARGS)

zenml: setup ## Run the same pipeline with ZenML on its local stack (ZENML_ARGS="--set train.n_estimators=50")
	$(RUN) python -m zenml_pipeline $(ZENML_ARGS)

test: setup ## Run the test suite (unit + integration with the real dvc, mlflow, zenml)
	$(RUN) pytest

test-slow: setup ## Run the slow suites (marker `slow`; none yet, pytest's "no tests" is fine)
	$(RUN) pytest -m slow || [ $$? -eq 5 ]

test-docker: setup ## Build the images and test the compose stack for real (marker `docker`)
	bash docker/ci-setup.sh
	$(RUN) pytest -m docker

lint: setup ## Lint and check formatting with ruff
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: setup ## Format the code with ruff
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

clean: ## Remove the virtualenv, tool caches and the embedded MLflow store
	rm -rf .venv .tools .pytest_cache .ruff_cache mlflow.db mlartifacts
