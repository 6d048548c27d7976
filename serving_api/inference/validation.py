"""Checking request features against a model's signature: 422 with a per-feature list."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from resources.errors import DomainError
from serving_api.inference.loaded import FLOAT_TYPES, INTEGER_TYPES, FeatureSpec


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


def to_frame(rows: list[dict[str, Any]], features: list[FeatureSpec]) -> pd.DataFrame:
    """The rows as a DataFrame in the signature's column order and types, or FeatureValidationError."""
    names = [f.name for f in features]
    problems: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        where = {} if len(rows) == 1 else {"instance": index}
        for name in sorted(set(names) - set(row)):
            problems.append({**where, "feature": name, "problem": "missing"})
        for name in sorted(set(row) - set(names)):
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
    frame = pd.DataFrame([[row[n] for n in names] for row in rows], columns=names)
    for spec in features:
        if spec.type in INTEGER_TYPES:
            frame[spec.name] = frame[spec.name].astype("int64")
        elif spec.type in FLOAT_TYPES:
            frame[spec.name] = frame[spec.name].astype("float64")
    return frame
