"""Batch scoring (local and Spark engines, the challenger) and the served model."""
