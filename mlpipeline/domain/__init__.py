"""Pure functions: no files, no MLflow, no orchestrator (an import-linter contract)."""
