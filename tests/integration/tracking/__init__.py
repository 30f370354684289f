"""MLflow tracking: the store, the runs, their datasets, and faults on the way."""
