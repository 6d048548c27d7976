"""Checking request features against a model's signature: 422 with a per-feature list.

``to_matrix`` (all-numeric signatures, the fast path) and ``to_frame`` (any signature, and the
explanations) run the same checks and differ only in what they build. Numbers must also fit what
the model computes in: an integer feature within int64, any number within the model's
``input_limit`` (float32's range for models that cast to float32, else float64's), so a value a
model cannot take is a 422 naming the feature, never a failure inside the model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlservice.inference.bounds import FLOAT32_MAX, FLOAT64_MAX, input_limit
from mlservice.inference.errors import FeatureValidationError
from mlservice.inference.loaded_model import LoadedModel
from mlservice.inference.signature import FLOAT_TYPES, INTEGER_TYPES, NUMERIC_TYPES, FeatureSpec

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def range_problem(limit: float) -> str:
    """The problem of a number beyond what the model computes in."""
    kind = "float32" if limit == FLOAT32_MAX else "float64"
    return f"out of range: this model takes values within \u00b1{limit:.3g} ({kind})"


def _problem(spec: FeatureSpec, value: Any, limit: float = FLOAT64_MAX) -> str | None:
    kind = spec.type
    if kind in NUMERIC_TYPES:
        cls = type(value)  # fast paths first: a plain number in range is the common case
        if cls is float and -limit <= value <= limit and (kind in FLOAT_TYPES or (value.is_integer() and INT64_MIN <= value <= INT64_MAX)):
            return None
        if cls is int and -limit <= value <= limit and (kind in FLOAT_TYPES or INT64_MIN <= value <= INT64_MAX):
            return None
        return _number_problem(kind, value, limit)
    if value is None:
        return "is null"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected a boolean, got {type(value).__name__}"
    if kind == "string":
        return None if isinstance(value, str) else f"expected a string, got {type(value).__name__}"
    return None


def _number_problem(kind: str, value: Any, limit: float) -> str | None:
    if value is None:
        return "is null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {type(value).__name__}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "must be finite (no NaN or infinity)"
        if kind in INTEGER_TYPES and not value.is_integer():
            return "expected an integer"
    if kind in INTEGER_TYPES and not INT64_MIN <= value <= INT64_MAX:
        return "out of range for a 64-bit integer"
    if not -limit <= value <= limit:
        return range_problem(limit)
    return None  # an int/float subclass in range (e.g. numpy scalars)


def check_rows(rows: list[dict[str, Any]], features: list[FeatureSpec], limit: float = FLOAT64_MAX) -> None:
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
                problem = _problem(spec, row[spec.name], limit)
                if problem:
                    problems.append({**where, "feature": spec.name, "problem": problem})
    if problems:
        raise FeatureValidationError(
            "features do not fit the model's signature",
            {"problems": problems, "expected": [{"name": f.name, "type": f.type} for f in features]},
        )


def to_matrix(rows: list[dict[str, Any]], features: list[FeatureSpec], limit: float = FLOAT64_MAX) -> np.ndarray:
    """The rows as a float64 matrix in signature order (numeric signatures only)."""
    check_rows(rows, features, limit)
    names = [f.name for f in features]
    return np.array([[row[n] for n in names] for row in rows], dtype=np.float64)


def to_frame(rows: list[dict[str, Any]], features: list[FeatureSpec], limit: float = FLOAT64_MAX) -> pd.DataFrame:
    """The rows as a DataFrame in the signature's column order and types."""
    check_rows(rows, features, limit)
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
    limit = input_limit(model)
    if model.matrix_fn is not None:
        return to_matrix(rows, model.features, limit)
    return to_frame(rows, model.features, limit)
