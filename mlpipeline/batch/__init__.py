"""Batch scoring's steps (`mlpipeline model score`): resolve the model and check the input
(inputs.py), stream the file through it (local_engine.py, or mlpipeline/spark/), write the
results and log the run (results.py); the row judging itself is pure (mlpipeline/domain/)."""
