"""Scoring on Apache Spark: a session with one-line failures, and the job its executors run."""
