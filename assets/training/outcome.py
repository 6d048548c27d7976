"""What a fit produces and how it is measured, for every trainer (scikit-learn in-process or on
Ray, the torch MLP on Ray Train): ``FitOutcome``, ``evaluate`` (the metric definitions) and
best-effort progress reporting."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FitOutcome:
    model: Any  # fitted sklearn estimator/pipeline, or TorchModelState for pytorch
    metrics: dict[str, float]
    epochs_run: int
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    framework: str = "sklearn"
    # what Ray gave the fit ({"workers", "gpus"}: the task's CPUs, Ray Train's workers, trials at once); empty in process
    resources: dict[str, int] = field(default_factory=dict)


def class_labels(data) -> list:
    if data.classes:
        return list(data.classes)
    return sorted(set(data.y_train.tolist()) | set(data.y_val.tolist()))


def _aligned_proba(model, x, classes: list) -> np.ndarray:
    """predict_proba with one column per entry of ``classes`` (zeros for classes the model lacks)."""
    proba = np.asarray(model.predict_proba(x), dtype=float)
    model_classes = list(model.classes_)
    if model_classes == list(classes):
        return proba
    aligned = np.zeros((len(proba), len(classes)))
    for column, label in enumerate(model_classes):
        aligned[:, classes.index(label)] = proba[:, column]
    return aligned


def evaluate(model, data) -> dict[str, float]:
    """Train/validation metrics of a fitted model (anything with sklearn-style predict/predict_proba)."""
    from sklearn import metrics as skm

    x_train, x_val = data.x_train[data.feature_columns], data.x_val[data.feature_columns]
    if data.model_type == "classification":
        classes = class_labels(data)
        out = {}
        for split, x, y in (("train", x_train, data.y_train), ("val", x_val, data.y_val)):
            accuracy = float(skm.accuracy_score(y, model.predict(x)))
            out[f"{split}_accuracy"] = accuracy
            if hasattr(model, "predict_proba"):
                out[f"{split}_loss"] = float(skm.log_loss(y, _aligned_proba(model, x, classes), labels=classes))
            else:
                # No probabilities (e.g. sgd with loss="hinge"): the loss is the error rate, 1 - accuracy.
                out[f"{split}_loss"] = 1.0 - accuracy
        return out
    val_pred = model.predict(x_val)
    val_mse = float(skm.mean_squared_error(data.y_val, val_pred))
    return {
        "train_loss": float(skm.mean_squared_error(data.y_train, model.predict(x_train))),
        "val_loss": val_mse,
        "val_rmse": math.sqrt(val_mse),
        "val_r2": float(skm.r2_score(data.y_val, val_pred)),
    }


def report_safely(progress, epoch: int, payload: dict[str, float]) -> None:
    """Progress is best effort: an unreachable tracking server must not kill a long fit."""
    try:
        progress.report(epoch, payload)
    except Exception as exc:
        warnings.warn(f"progress report for epoch {epoch} failed: {exc!r}", RuntimeWarning, stacklevel=2)
