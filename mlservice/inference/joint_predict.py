"""Predicting several requests' inputs in one model call, and telling each request its own answer.

What the API's micro-batcher and a Ray Serve replica's ``@serve.batch`` method both do with the
requests they gathered: one call on the combined inputs, split back in order; when that call
fails or answers a non-finite number, each request alone, so that one caller's bad row never fails
another caller's prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlservice.inference.errors import NonFiniteOutput

PredictFn = Callable[[Any], tuple[np.ndarray, "np.ndarray | None"]]


def combine(parts: list) -> pd.DataFrame | np.ndarray:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return pd.concat(parts, ignore_index=True)


def finite(values: Any) -> bool:
    if not isinstance(values, np.ndarray) or values.dtype.kind != "f":
        return True
    if values.size <= 16:  # one or a few rows: plain floats are cheaper than a numpy reduction
        return all(map(math.isfinite, values.ravel().tolist()))
    return bool(np.isfinite(values).all())


def checked_predict(predict_fn: PredictFn, inputs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's answer, or NonFiniteOutput when a value of it is NaN or infinite."""
    predictions, probabilities = predict_fn(inputs)
    if not (finite(predictions) and finite(probabilities)):
        raise NonFiniteOutput("the model's output is not a finite number for these inputs")
    return predictions, probabilities


def predict_together(predict_fn: PredictFn, parts: list) -> tuple[list[tuple[bool, Any]], bool]:
    """((True, (predictions, probabilities)) or (False, exception) per part, whether the parts were
    predicted alone after the combined call failed). Blocking: run it off the event loop."""
    try:
        predictions, probabilities = checked_predict(predict_fn, combine(parts))
    except Exception as exc:
        if len(parts) == 1:
            return [(False, exc)], False
        answers: list[tuple[bool, Any]] = []
        for part in parts:
            try:
                answers.append((True, checked_predict(predict_fn, part)))
            except Exception as alone:
                answers.append((False, alone))
        return answers, True
    answers, start = [], 0
    for part in parts:
        end = start + len(part)
        answers.append((True, (predictions[start:end], None if probabilities is None else probabilities[start:end])))
        start = end
    return answers, False
