"""Rules every request document shares (the API's bodies, feature definition documents)."""

from __future__ import annotations

import types
import typing
from typing import Any


def _numeric(annotation: Any) -> bool:
    """An int or float field (or an optional one) that takes no bool."""
    if annotation in (int, float):
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        arms = typing.get_args(annotation)
        return any(a in (int, float) for a in arms) and bool not in arms
    return False


def refuse_bool_numbers(model: type, data: Any) -> Any:
    """A ``mode="before"`` model validator's body: JSON's true/false given for a number field is
    refused (pydantic's lax mode would read it as 1/0: ``"cooldown_hours": false`` became 0)."""
    if isinstance(data, dict):
        for name, field in model.model_fields.items():
            key = field.alias or name
            value = data.get(key)
            if isinstance(value, bool) and _numeric(field.annotation):
                raise ValueError(f"'{key}' must be a number, not {str(value).lower()}")
    return data
