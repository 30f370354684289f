"""The pipeline's library: what the stage scripts in `stages/` and the ZenML steps call.

domain/    pure functions: the dataset, preprocessing, training, evaluation, promotion
files/     where files live, all-or-nothing outputs, tables, byte-stable pickles, dvc.yaml
tracking/  MLflow and git: the store, runs, lineage, the registry
runner     the edge of every stage: params, logging, one-line failures
tool_env   the environment the real tools (dvc, mlflow, zenml) run in
commands/  what users run besides the stages: registry, reproduce, preflight, params, ...
"""
