"""Window columns as plain lists, for comparing them: numeric columns are numpy arrays with NaN
where a value was missing; others are lists with None."""

from __future__ import annotations

import math
from typing import Any


def listed(column: Any) -> list[Any]:
    values = column.tolist() if hasattr(column, "tolist") else list(column)
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]
