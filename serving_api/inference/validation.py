"""Checking request features against a model's signature: 422 with a per-feature list.

``to_matrix`` (all-numeric signatures, the fast path) and ``to_frame`` (any signature, and the
explanations) run the same checks and differ only in what they build.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from resources.errors import DomainError
from serving_api.inference.loaded import FLOAT_TYPES, INTEGER_TYPES, FeatureSpec, LoadedModel


class FeatureValidationError(DomainError):
    code = "VALIDATION_ERROR"


def _problem(spec: FeatureSpec, value: Any) -> str | None:
    if value is None:
        return "is null"
    if spec.type in FLOAT_TYPES or spec.type in INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite (no NaN or infinity)"
        if spec.type in INTEGER_TYPES and isinstance(value, float) and not value.is_integer():
            return "expected an integer"
        return None
    if spec.type == "boolean":
        return None if isinstance(value, bool) else f"expected a boolean, got {type(value).__name__}"
    if spec.type == "string":
        return None if isinstance(value, str) else f"expected a string, got {type(value).__name__}"
    return None


def check_rows(rows: list[dict[str, Any]], features: list[FeatureSpec]) -> None:
    """Raise FeatureValidationError listing every problem of every row, or return."""
    names = [f.name for f in features]
    name_set = set(names)
    problems: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        where = {} if len(rows) == 1 else {"instance": index}
        if row.keys() != name_set:
            for name in sorted(name_set - set(row)):
                problems.append({**where, "feature": name, "problem": "missing"})
            for name in sorted(set(row) - name_set):
                problems.append({**where, "feature": name, "problem": "unknown feature"})
        for spec in features:
            if spec.name in row:
                problem = _problem(spec, row[spec.name])
                if problem:
                    problems.append({**where, "feature": spec.name, "problem": problem})
    if problems:
        raise FeatureValidationError(
            "features do not fit the model's signature",
            {"problems": problems, "expected": [{"name": f.name, "type": f.type} for f in features]},
        )


def is_numeric(features: list[FeatureSpec]) -> bool:
    return bool(features) and all(f.type in FLOAT_TYPES or f.type in INTEGER_TYPES for f in features)


def to_matrix(rows: list[dict[str, Any]], features: list[FeatureSpec]) -> np.ndarray:
    """The rows as a float64 matrix in signature order (numeric signatures only)."""
    check_rows(rows, features)
    names = [f.name for f in features]
    return np.array([[row[n] for n in names] for row in rows], dtype=np.float64)


def to_frame(rows: list[dict[str, Any]], features: list[FeatureSpec]) -> pd.DataFrame:
    """The rows as a DataFrame in the signature's column order and types."""
    check_rows(rows, features)
    columns: dict[str, Any] = {}
    for spec in features:
        values = [row[spec.name] for row in rows]
        if spec.type in INTEGER_TYPES:
            columns[spec.name] = np.asarray(values, dtype=np.int64)
        elif spec.type in FLOAT_TYPES:
            columns[spec.name] = np.asarray(values, dtype=np.float64)
        else:
            columns[spec.name] = pd.Series(values, dtype=object if spec.type == "string" else None)
    return pd.DataFrame(columns, copy=False)


def model_inputs(model: LoadedModel, rows: list[dict[str, Any]]) -> np.ndarray | pd.DataFrame:
    """Validated rows in the form the model's ``batch_predict`` takes."""
    if model.matrix_fn is not None:
        return to_matrix(rows, model.features)
    return to_frame(rows, model.features)
