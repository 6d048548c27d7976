"""Predict functions over a model: (labels, probabilities or None) for a DataFrame."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def single_threaded(estimator: Any) -> None:
    steps = estimator.steps if hasattr(estimator, "steps") else [(None, estimator)]
    for _, step in steps:
        if hasattr(step, "n_jobs"):
            try:
                step.set_params(n_jobs=1)
            except ValueError:
                pass


def sklearn_predictor(estimator: Any, model_type: str) -> Callable:
    if model_type == "classification" and hasattr(estimator, "predict_proba"):
        classes = np.asarray(estimator.classes_)

        def predict(frame: pd.DataFrame):
            proba = np.asarray(estimator.predict_proba(frame), dtype=float)
            return classes[proba.argmax(axis=1)], proba

        return predict

    def predict_values(frame: pd.DataFrame):
        return np.asarray(estimator.predict(frame)), None

    return predict_values


def outputs_predictor(outputs_fn: Callable, model_type: str, classes: list) -> Callable:
    """For models that answer class probabilities (classifiers) or values: the platform's torch MLP."""
    def predict(frame: pd.DataFrame):
        output = np.asarray(outputs_fn(frame), dtype=float)
        if model_type == "classification" and output.ndim == 2:
            labels = np.asarray(classes) if len(classes) == output.shape[1] else np.arange(output.shape[1])
            return labels[output.argmax(axis=1)], output
        return output.reshape(-1), None

    return predict
