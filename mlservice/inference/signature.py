"""A model's signature: its named input columns and their MLflow types."""

from __future__ import annotations

from dataclasses import dataclass

INTEGER_TYPES = frozenset({"long", "integer"})
FLOAT_TYPES = frozenset({"double", "float"})
NUMERIC_TYPES = INTEGER_TYPES | FLOAT_TYPES


@dataclass
class FeatureSpec:
    name: str
    type: str  # MLflow column type: double, float, long, integer, boolean, string


def is_numeric(features: list[FeatureSpec]) -> bool:
    return bool(features) and all(f.type in NUMERIC_TYPES for f in features)
