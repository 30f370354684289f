"""DataFrames as ZenML artifacts keyed by their content, so caching follows the data as DVC does.

ZenML keys a step's cache on its inputs' content hash when the materializer provides one,
else on the artifact's id. Its pandas materializer provides none, so a `--no-cache` run,
which stores equal DataFrames under new ids, changed the cache key of every step
downstream: a later run with params seen before it retrained (a new MLflow run and model
version) where `dvc repro`, which hashes file contents, would not.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import pandas as pd
from zenml.integrations.pandas.materializers.pandas_materializer import PandasMaterializer


class HashedDataFrameMaterializer(PandasMaterializer):
    """ZenML's Parquet materializer for DataFrames, with a content hash."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (pd.DataFrame,)

    def compute_content_hash(self, data: Any) -> str | None:
        if not isinstance(data, pd.DataFrame):
            return None
        digest = hashlib.md5(usedforsecurity=False)
        digest.update(self.__class__.__name__.encode())
        layout = [[str(name), str(dtype)] for name, dtype in data.dtypes.items()]
        digest.update(json.dumps(layout).encode())
        digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
        return digest.hexdigest()
