"""A loaded model version: its predict functions, signature, classes and what explains it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlservice.inference.signature import FeatureSpec


@dataclass
class LoadedModel:
    tenant_id: str
    model_id: str
    name: str
    version: str
    mlflow_version: int
    model_type: str
    framework: str
    features: list[FeatureSpec]
    classes: list
    predict_fn: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray | None]]
    estimator: Any = None  # the native model when there is one (explanations)
    # a verified predictor on float64 matrices (mlservice.inference.fast_paths), when there is one
    matrix_fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]] | None = None
    background: pd.DataFrame | None = None
    approx_bytes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    # the Feast feature service the version was trained from (version tag ``mlservice.feature_service``):
    # predictions by entity read its features from the online store
    feature_service: str | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        return self.predict_fn(frame)

    @property
    def batch_predict(self) -> Callable:
        """What the micro-batcher calls: the matrix path when verified, else the DataFrame one."""
        return self.matrix_fn or self.predict_fn


def approx_size(obj: Any) -> int:
    """A rough size for the cache's memory bound (arrays of fitted trees dominate)."""
    if obj is None:
        return 1 << 20
    total, seen, stack = 0, set(), [obj]
    while stack and len(seen) < 200_000:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            total += item.nbytes
            continue
        total += sys.getsizeof(item, 64)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
        elif hasattr(item, "__getstate__") and type(item).__module__.startswith("sklearn.tree"):
            state = item.__getstate__()
            stack.extend(state.values() if isinstance(state, dict) else [state])
    return total
