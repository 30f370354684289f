"""Hyperparameter sweeps: Optuna and Ray over DVC experiments."""
