"""Hyperparameter sweeps: Optuna chooses, Ray runs, each trial a DVC experiment (docs/sweeps.md)."""
