"""The floor for batch scoring: one process reads the whole file and calls `model.predict`.

python benchmarks/score_floor.py FILE.csv MODEL_URI   (MLFLOW_TRACKING_URI names the store)

Prints one JSON line: rows, seconds (reading and predicting, after imports and the model's
load, as the scoring command's rows_per_second counts) and peak RSS in MiB.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    import mlflow.sklearn
    import pandas as pd

    path, model_uri = sys.argv[1], sys.argv[2]
    model = mlflow.sklearn.load_model(model_uri)
    start = time.perf_counter()
    frame = pd.read_csv(path)
    labels = model.predict(frame)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": len(labels), "seconds": seconds, "peak_rss_mib": peak_mib}))


if __name__ == "__main__":
    main()
