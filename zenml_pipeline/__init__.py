"""The DVC pipeline's five stages as a ZenML pipeline: `python -m zenml_pipeline`.

Nothing is imported here: zenml costs a second at import, and `--set` errors should not wait.
"""
