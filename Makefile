# Run `make help` for the targets. Everything goes through uv and the committed uv.lock.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv from PATH, else a private copy bootstrapped with pip into .tools/.
# Paths stay relative and recipes quote them: make splits targets and prerequisites at
# spaces, so a checkout under "my dir/" must never put $(CURDIR) in one.
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
UV := $(or $(UV_ON_PATH),.tools/bin/uv)
# The uv a fresh clone bootstraps (pip checks the wheel against PyPI's hash); docker/Dockerfile
# pins the same version.
UV_VERSION := 0.13.9
# --no-sync: `setup` is the one place that syncs .venv; `uv run` would otherwise reinstall the
# project whenever the venv's editable install names another checkout (a shared venv).
RUN := "$(UV)" run --frozen --no-sync
# The command line of *this* checkout (cwd first on sys.path), whichever checkout the venv's
# editable install names: the same commands as the `mlpipeline` script (mlpipeline/cli.py).
MLPIPELINE := $(RUN) python -m mlpipeline

.PHONY: help setup run up down test test-slow test-docker lint format zenml zenml-stack bench readme-dag clean clean-tracking team-users exps sweep reproduce gc plots report notebook lab score

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# uv syncs when uv.lock or pyproject.toml changed in content, not when a checkout (git's, a
# rebase's, `dvc exp run`'s) only touched them: the stamp holds their checksum. Quiet once
# .venv exists: uv's rebuild of the editable project would print on any target. (A re-sync
# from another checkout sharing the venv would point the venv's `mlpipeline` at that one.)
.venv/.synced: uv.lock pyproject.toml | $(if $(UV_ON_PATH),,.tools/bin/uv)
	@sum=$$(cat uv.lock pyproject.toml | cksum); \
	if [ "$$sum" != "$$(cat $@ 2>/dev/null)" ]; then \
	  echo '"$(UV)" sync --frozen --compile-bytecode'; \
	  "$(UV)" sync --frozen --compile-bytecode $(if $(wildcard .venv/bin/python),--quiet) || exit; \
	fi; \
	echo "$$sum" > $@

setup: .venv/.synced ## Create .venv from uv.lock (bootstraps uv if missing)

run: setup ## Run the DVC pipeline (dvc repro) after checking params, settling the store, and healing a lost run or an unloadable champion
	$(MLPIPELINE) check preflight
	$(RUN) dvc repro

# Headline metrics always; of the params only those that differ between the rows; no
# dependency hashes, no per-class scores (plain `dvc exp show` prints 70+ columns).
exps: setup ## Experiments: headline metrics and the params that differ (EXPS_ARGS="-a --md": every branch, Markdown)
	$(MLPIPELINE) report exps $(EXPS_ARGS)

sweep: setup ## Hyperparameter sweep of params.yaml's sweep: section, trials as DVC experiments (SWEEP_ARGS="--trials 8 --parallel 2")
	$(MLPIPELINE) model sweep $(SWEEP_ARGS)

# The charts of `dvc plots show` (or `dvc plots diff $(PLOTS_ARGS)`) rendered here, without a
# browser or internet: `dvc plots`' own page loads Vega from a CDN.
plots: setup ## Draw the dvc plots charts offline: SVG, PNG, index.html → dvc_plots_static/ (PLOTS_ARGS=HEAD: a diff)
	$(MLPIPELINE) report plots $(PLOTS_ARGS)

# Compose v2 (`docker compose`) when the engine has it, else v1 (`docker-compose`, Debian 12's
# package and what .ci/ci-setup.sh installs); the docs write v2's spelling.
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || command -v docker-compose 2>/dev/null)
COMPOSE_MISSING := neither `docker compose` (v2) nor `docker-compose` (v1) is installed (docs/deploy.md)

up: ## Start the compose stack, docker compose v2 or docker-compose v1 (COMPOSE_ARGS="-f docker-compose.yml -f docker/docker-compose.team.yml")
	@[ -n "$(COMPOSE)" ] || { echo '$(COMPOSE_MISSING)' >&2; exit 2; }
	@mkdir -p .dvc/cache .dvc/tmp  # the app container's only writable .dvc folders: bind mounts need them
	@sh docker/checkout-owner.sh  # a root-owned checkout refused; root's leftovers back to the owner
	$(COMPOSE) $(COMPOSE_ARGS) up -d $(SERVICES)

down: ## Stop the compose stack (keeps its volumes; COMPOSE_ARGS as for up)
	@[ -n "$(COMPOSE)" ] || { echo '$(COMPOSE_MISSING)' >&2; exit 2; }
	$(COMPOSE) $(COMPOSE_ARGS) down

# The notebooks with the `notebook` dependency group (Jupyter), through the same uv as setup;
# uv run syncs here, to add the group.
NOTEBOOK ?= notebooks/compare_runs_and_champion.ipynb
notebook: setup ## Run a notebook top to bottom → notebooks/out/<name>.html (NOTEBOOK=notebooks/x.ipynb)
	"$(UV)" run --frozen --group notebook jupyter nbconvert --to html --execute "$(NOTEBOOK)" --output-dir notebooks/out

lab: setup ## Open the notebooks in JupyterLab
	"$(UV)" run --frozen --group notebook jupyter lab notebooks/

BASE ?= HEAD
report: setup ## Markdown report, workspace vs BASE: metrics, params, champion, charts → report/report.md
	$(MLPIPELINE) report report --base "$(BASE)" $(REPORT_ARGS)

bench: setup ## Measure workflow costs and scaling → benchmarks/results.md (~30 min, the sweep ~15 more; BENCH_ARGS=--quick: a smoke run → results-quick.md; "--only scoring --merge": one figure into results.md; BENCH_ENGINES_10M=1: the scoring engines at 10M rows too)
	$(RUN) python -m benchmarks.bench $(BENCH_ARGS)

# MODEL: a models:/ URI or a run id; default params.yaml's champion. The exit status users script
# against (4: differs) is the command's: `.venv/bin/mlpipeline model reproduce` (make says 2).
reproduce: setup ## Rebuild a model from its lineage, compare bit for bit (MODEL=<models:/… or run id>, default the champion)
	$(MLPIPELINE) model reproduce $(if $(MODEL),"$(MODEL)") $(REPRODUCE_ARGS)

# Without GC_ARGS=--yes a dry run: one line per version, run, logged model, experiment ref or
# DVC cache object it would delete, and why (docs/retention.md).
gc: setup ## Retention by params.yaml's retention: policy: list what goes (GC_ARGS=--yes: delete it)
	$(MLPIPELINE) model gc $(GC_ARGS)

# INPUT: a .csv or .parquet of feature rows; results in scores/<input name>/ (SCORE_ARGS="--output DIR").
# On Spark: SCORE_ARGS="--engine spark [--spark-master URL]" (INPUT may be a folder of Parquet parts).
# Beside @challenger, compared: SCORE_ARGS=--with-challenger (docs/champion.md).
# make turns every failure into exit 2: scripts that need 3 (drift) call
# `.venv/bin/mlpipeline model score` themselves (docs/scoring.md).
score: setup ## Score a CSV/Parquet file: INPUT=new.csv [MODEL=models:/<name>@<alias>, default the champion]
	@[ -n "$(INPUT)" ] || { echo "usage: make score INPUT=<file.csv|file.parquet> [MODEL=models:/<name>@<alias>]"; exit 2; }
	$(MLPIPELINE) model score "$(INPUT)" $(if $(MODEL),--model "$(MODEL)") $(SCORE_ARGS)

zenml: setup ## Run the same pipeline with ZenML on its local stack (ZENML_ARGS="--set train.n_estimators=50")
	$(RUN) python -m zenml_pipeline $(ZENML_ARGS)

# ZENML_STACK (default docker), ZENML_S3_PATH, the S3 and MLflow settings and logins: docs/zenml.md.
zenml-stack: setup ## ZenML server + a stack running each step in its own container (docs/zenml.md)
	$(MLPIPELINE) team zenml-stack

# The suites run in TEST_JOBS pytest-xdist workers, a test module per worker (its fixtures are
# built once). Most of a test's time is a dvc/mlflow/zenml subprocess on one core, so two
# workers halve the time on two cores. TEST_JOBS=0: one process. The modules go out in
# collection order, the longest first (tests/conftest.py, LONGEST_FIRST).
TEST_JOBS ?= 2
PYTEST_JOBS = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadscope --no-loadscope-reorder)
# The 25 slowest setups, calls and teardowns after each suite, so that CI's log shows a slow
# new test at once.
DURATIONS = --durations=25

test: setup ## Run the test suite (unit + integration with the real dvc, mlflow, zenml)
	$(RUN) pytest $(PYTEST_JOBS) $(DURATIONS)

test-slow: setup ## Run the slow suites (marker `slow`: the README workflows end to end)
	$(RUN) pytest -m slow $(PYTEST_JOBS) $(DURATIONS) || [ $$? -eq 5 ]

test-docker: setup ## Build the images and test the compose stack for real (marker `docker`)
	bash .ci/ci-setup.sh
	$(RUN) pytest -m docker $(DURATIONS)

# Runs from the host against the published port (.env's MLFLOW_TRACKING_URI names the
# container); TEAM_MLFLOW_URI points it at another server. Readers and releasers get the
# password in TEAM_USER_PASSWORD, else a generated one, printed once.
team-users: setup ## Add a team MLflow account as .env's admin (password: SECRETS_DIR): ROLE=reader|releaser|pipeline NAME=alice
	set -a && { [ ! -f .env ] || . ./.env; } && set +a && \
	MLFLOW_TRACKING_URI="$${TEAM_MLFLOW_URI:-http://127.0.0.1:$${MLFLOW_PORT:-5000}}" \
	MLFLOW_AUTH_ADMIN_PASSWORD="$${MLFLOW_AUTH_ADMIN_PASSWORD:-$$(cat "$${SECRETS_DIR:-.}/mlflow_admin_password" 2>/dev/null)}" \
	MLFLOW_TRACKING_PASSWORD="$${MLFLOW_TRACKING_PASSWORD:-$$(cat "$${SECRETS_DIR:-.}/mlflow_pipeline_password" 2>/dev/null)}" \
	$(MLPIPELINE) team users $(ROLE) $(NAME)

# The CI files are checked offline: actionlint and zizmor (no GitHub API calls) on the
# GitHub and Forgejo workflows, GitLab's CI schema (bundled with check-jsonschema).
CI_WORKFLOWS := .github/workflows/ci.yml .forgejo/workflows/ci.yml
lint: setup ## params.yaml, ruff, the layer contracts (import-linter), mypy, the CI files
	$(MLPIPELINE) check params > /dev/null
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports --no-cache
	$(RUN) mypy
	$(RUN) actionlint $(CI_WORKFLOWS)
	$(RUN) zizmor --offline --quiet $(CI_WORKFLOWS)
	$(RUN) check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml

format: setup ## Format the code with ruff
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

readme-dag: setup ## Rewrite README's pipeline diagram from `dvc dag --md` (after dvc.yaml or `dvc add` changes)
	$(RUN) python -m tools.readme_dag

clean: ## Remove the virtualenv and tool caches (keeps the MLflow store: see clean-tracking)
	rm -rf .venv .tools .pytest_cache .ruff_cache

clean-tracking: ## Delete the embedded MLflow store: every run and model version in mlflow.db, mlartifacts/
	@echo "Deleting every MLflow run, registered model and artifact of the embedded store: mlflow.db mlartifacts/"
	rm -rf mlflow.db mlartifacts
