"""The five pipeline stages, one script each: `python -m stages.<name>` (see dvc.yaml)."""
