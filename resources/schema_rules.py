"""Rules every request document shares (the API's bodies, feature definition documents)."""

from __future__ import annotations

import types
import typing
from typing import Any


def _kind(annotation: Any) -> str | None:
    """"number" for an int or float field, "bool" for a bool field (optional ones included), else None."""
    arms = typing.get_args(annotation) if (isinstance(annotation, types.UnionType)
                                          or typing.get_origin(annotation) is typing.Union) else (annotation,)
    arms = tuple(a for a in arms if a is not type(None))
    if arms and all(a in (int, float) for a in arms):
        return "number"
    if arms == (bool,):
        return "bool"
    return None


def refuse_lax_scalars(model: type, data: Any) -> Any:
    """A ``mode="before"`` model validator's body: a number field takes a JSON number only and a
    bool field true/false only (pydantic's lax mode would read ``false`` as 0, ``0`` as false and
    ``"24"`` as 24: ``"cooldown_hours": false`` was stored as a cooldown of 0 hours)."""
    if isinstance(data, dict):
        for name, field in model.model_fields.items():
            key = field.alias or name
            value = data.get(key)
            if value is None:
                continue
            kind = _kind(field.annotation)
            if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"'{key}' must be a number, not {_shown(value)}")
            if kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"'{key}' must be true or false, not {_shown(value)}")
    return data


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)[:40]
