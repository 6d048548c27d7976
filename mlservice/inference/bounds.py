"""What a loaded model can take, and what an explanation of it costs.

- ``input_limit``: the largest magnitude a feature value may have for a model. Tree models
  (scikit-learn trees, forests, gradient boosting, isolation forests, and any Pipeline or
  meta-estimator holding one), the torch MLP and any model without a scikit-learn estimator
  cast their input to float32, so a value beyond float32's range (about 3.4e38) becomes
  infinity there; other models take any finite float64. Computed once per loaded model.
- ``input_error``: what a caller gets when the model itself failed on its request alone (the
  micro-batcher's ``on_error``): a 422 naming the features with extreme values, when there are
  some, instead of a 500.
- ``explanation_cost``: rows x coalitions x background rows of an explanation request, with the
  same coalition counts as ``mlservice.inference.contributions`` (2^n for exact Shapley, permutations
  x (n - 1) + 1 walk points for sampling, one pass for linear models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlservice.inference.contributions import EXACT_MAX_FEATURES, MAX_BACKGROUND_ROWS
from mlservice.inference.errors import FeatureValidationError, NonFiniteOutput
from mlservice.inference.loaded_model import LoadedModel

FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT64_MAX = float(np.finfo(np.float64).max)
# Beyond this magnitude a square overflows float64 (variances, distances, products): a model
# failing on such a value is told to the caller as a value it cannot take.
EXTREME = math.sqrt(FLOAT64_MAX)
_FLOAT32_MODULES = ("sklearn.tree.", "sklearn.ensemble._forest", "sklearn.ensemble._gb", "sklearn.ensemble._iforest",
                    "xgboost", "lightgbm", "catboost")
_LIMIT_KEY = "mlservice.max_abs_input"


def _parts(estimator: Any, depth: int = 0):
    """The estimator and what it is made of (Pipeline steps, wrapped and fitted sub-estimators)."""
    yield estimator
    if depth > 4:
        return
    children: list[Any] = [step for _, step in getattr(estimator, "steps", None) or []]
    children += [t[1] for t in getattr(estimator, "transformers_", None) or getattr(estimator, "transformers", None) or []
                 if isinstance(t, tuple) and len(t) > 1]
    children += [t[1] if isinstance(t, tuple) else t for t in getattr(estimator, "estimators", None) or []]
    for name in ("estimator", "base_estimator", "final_estimator", "estimator_"):
        children.append(vars(estimator).get(name) if hasattr(estimator, "__dict__") else None)
    fitted = vars(estimator).get("estimators_") if hasattr(estimator, "__dict__") else None
    if isinstance(fitted, (list, tuple)) and fitted:
        children.append(fitted[0])
    for child in children:
        if child is not None and not isinstance(child, str) and hasattr(child, "__dict__"):
            yield from _parts(child, depth + 1)


def casts_to_float32(model: LoadedModel) -> bool:
    if model.estimator is None or model.framework != "sklearn":
        return True  # the torch MLP (and anything served through pyfunc) computes in float32
    return any(type(part).__module__.startswith(_FLOAT32_MODULES) for part in _parts(model.estimator))


def input_limit(model: LoadedModel) -> float:
    """The largest |value| the model takes (remembered on the model after the first call)."""
    meta = getattr(model, "meta", None)
    if isinstance(meta, dict) and _LIMIT_KEY in meta:
        return meta[_LIMIT_KEY]
    limit = FLOAT32_MAX if casts_to_float32(model) else FLOAT64_MAX
    if isinstance(meta, dict):
        meta[_LIMIT_KEY] = limit
    return limit


def _extreme(model: LoadedModel, inputs: Any) -> list[dict[str, Any]]:
    names = model.feature_names
    if hasattr(inputs, "columns"):
        names = [str(c) for c in inputs.columns]
        columns = [inputs[c].to_numpy() for c in inputs.columns]
    else:
        matrix = np.asarray(inputs)
        columns = [matrix[:, j] for j in range(matrix.shape[1])] if matrix.ndim == 2 else []
    problems = []
    for name, column in zip(names, columns, strict=True):
        if column.dtype.kind not in "iuf":
            continue
        rows = np.flatnonzero(np.abs(column.astype(np.float64)) > EXTREME)
        for row in rows:
            where = {} if len(column) == 1 else {"instance": int(row)}
            problems.append({**where, "feature": name,
                             "problem": f"the model cannot take this value (|value| above {EXTREME:.3g})"})
    return problems


def input_error(model: LoadedModel, inputs: Any, exc: Exception) -> Exception:
    """The error for a request the model failed on alone: 422 when its values explain it."""
    if not isinstance(exc, (ValueError, ArithmeticError)):
        return exc
    problems = _extreme(model, inputs)
    if problems or isinstance(exc, NonFiniteOutput):
        message = "the model cannot take some feature values" if problems else str(exc)
        return FeatureValidationError(message, {
            "problems": problems, "expected": [{"name": f.name, "type": f.type} for f in model.features]})
    return exc


@dataclass
class ExplanationCost:
    rows: int
    coalitions: int
    background_rows: int

    @property
    def total(self) -> int:
        return self.rows * self.coalitions * self.background_rows


def _linear(estimator: Any, model_type: str) -> bool:
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else estimator
    if getattr(final, "coef_", None) is None or getattr(final, "intercept_", None) is None:
        return False
    return model_type != "classification" or hasattr(final, "decision_function")


def explanation_cost(model: LoadedModel, rows: int, permutations: int) -> ExplanationCost:
    """The work of explaining ``rows`` rows (0 when the model is not explained at all)."""
    background = model.background
    m = min(len(background), MAX_BACKGROUND_ROWS) if background is not None else 0
    if model.estimator is None:
        return ExplanationCost(rows, 0, m)
    if _linear(model.estimator, model.model_type):
        return ExplanationCost(rows, 1, max(m, 1))
    n = len(model.features)
    if n <= EXACT_MAX_FEATURES:
        coalitions = 1 << n
    else:
        coalitions = (permutations + permutations % 2) * (n - 1) + 1
    return ExplanationCost(rows, coalitions, m)
