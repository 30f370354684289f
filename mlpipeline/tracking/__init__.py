"""MLflow and git: the store, runs, lineage and the registry."""
