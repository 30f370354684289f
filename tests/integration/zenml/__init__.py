"""The ZenML pipeline, server and containerised stack."""
