# Run `make help` for the targets. Everything goes through uv and the committed uv.lock.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv from PATH, else a private copy bootstrapped with pip into .tools/.
# Paths stay relative and recipes quote them: make splits targets and prerequisites at
# spaces, so a checkout under "my dir/" must never put $(CURDIR) in one.
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
UV := $(or $(UV_ON_PATH),.tools/bin/uv)
RUN := "$(UV)" run --frozen

.PHONY: help setup run test test-slow test-docker lint format zenml bench readme-dag clean clean-tracking team-users exps reproduce

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv/.synced: uv.lock pyproject.toml | $(if $(UV_ON_PATH),,.tools/bin/uv)
	"$(UV)" sync --frozen --compile-bytecode
	@touch $@

setup: .venv/.synced ## Create .venv from uv.lock (bootstraps uv if missing)

run: setup ## Run the DVC pipeline (dvc repro) after checking params, settling the store, and healing a lost run or an unloadable champion
	$(RUN) python -m mlpipeline.commands.preflight
	$(RUN) dvc repro

# Headline metrics always; of the params only those that differ between the rows; no
# dependency hashes, no per-class scores (plain `dvc exp show` prints 70+ columns).
exps: setup ## Experiments: headline metrics and the params that differ (EXPS_ARGS="-A --md")
	$(RUN) dvc exp show --only-changed --keep '^(Experiment|Created|accuracy|precision|recall|f1_score)$$' --drop '.*/|per_class\.' $(EXPS_ARGS)

bench: setup ## Measure workflow costs and scaling → benchmarks/results.md (~30 min; BENCH_ARGS=--quick: a smoke run → results-quick.md)
	$(RUN) python -m benchmarks.bench $(BENCH_ARGS)

MODEL ?= models:/iris_classifier@champion
reproduce: setup ## Rebuild a model from its lineage, compare bit for bit (MODEL=<models:/… or run id>)
	$(RUN) python -m mlpipeline.commands.reproduce $(MODEL) $(REPRODUCE_ARGS)

zenml: setup ## Run the same pipeline with ZenML on its local stack (ZENML_ARGS="--set train.n_estimators=50")
	$(RUN) python -m zenml_pipeline $(ZENML_ARGS)

test: setup ## Run the test suite (unit + integration with the real dvc, mlflow, zenml)
	$(RUN) pytest

test-slow: setup ## Run the slow suites (marker `slow`: the README workflows end to end)
	$(RUN) pytest -m slow || [ $$? -eq 5 ]

test-docker: setup ## Build the images and test the compose stack for real (marker `docker`)
	bash docker/ci-setup.sh
	$(RUN) pytest -m docker

# Runs from the host against the published port (.env's MLFLOW_TRACKING_URI names the
# container); TEAM_MLFLOW_URI points it at another server. Readers and releasers get the
# password in TEAM_USER_PASSWORD, else a generated one, printed once.
team-users: setup ## Add a team MLflow account from .env's admin: ROLE=reader|releaser|pipeline NAME=alice
	set -a && { [ ! -f .env ] || . ./.env; } && set +a && \
	MLFLOW_TRACKING_URI="$${TEAM_MLFLOW_URI:-http://127.0.0.1:$${MLFLOW_PORT:-5000}}" \
	$(RUN) python -m mlpipeline.commands.team_users $(ROLE) $(NAME)

lint: setup ## Lint and check formatting with ruff; validate params.yaml
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) python -m mlpipeline.commands.params > /dev/null

format: setup ## Format the code with ruff
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

readme-dag: setup ## Rewrite README's pipeline diagram from `dvc dag --md` (after dvc.yaml or `dvc add` changes)
	$(RUN) python -m mlpipeline.commands.readme_dag

clean: ## Remove the virtualenv and tool caches (keeps the MLflow store: see clean-tracking)
	rm -rf .venv .tools .pytest_cache .ruff_cache

clean-tracking: ## Delete the embedded MLflow store: every run and model version in mlflow.db, mlartifacts/
	@echo "Deleting every MLflow run, registered model and artifact of the embedded store: mlflow.db mlartifacts/"
	rm -rf mlflow.db mlartifacts
