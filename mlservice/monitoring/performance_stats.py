"""Performance statistics of a served model: latency, throughput, prediction distribution, quality metrics and errors.

Pure functions over lists / numpy arrays returning JSON-ready dicts of Python floats and ints; a figure that is undefined
is None, never NaN. Quality metrics are scikit-learn's own (imported where used: it is a heavy import).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

MAX_HOURS = 24 * 31
_HOUR = timedelta(hours=1)
_QUANTILES = {"p05": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95}


def _finite(values: Iterable[Any]) -> np.ndarray:
    """The values as a float array, without None and non-finite entries (a failed request logs no latency)."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    return array[np.isfinite(array)]


def _float(value: Any) -> float | None:
    """A Python float, or None for NaN / infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


def label_key(label: Any) -> str:
    """The text a label is matched by: str(label), with an integral float (1.0 from JSON) written as the int ("1")."""
    if isinstance(label, float | np.floating) and math.isfinite(label) and float(label).is_integer():
        return str(int(label))
    if isinstance(label, np.generic):
        label = label.item()
    return str(label)


def latency_summary(latencies_ms: Iterable[float | None]) -> dict[str, float | None]:
    """p50/p95/p99 (numpy, linear interpolation), mean and max of the latencies; None entries are skipped."""
    values = _finite(latencies_ms)
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method="linear")
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(values.mean()), "max": float(values.max())}


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def hourly_throughput(timestamps: Iterable[datetime], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Requests per UTC hour, one bucket per hour from the hour holding start up to end, empty hours included.

    Only timestamps in [start, end) are counted; a bucket is labelled by its hour start (ISO 8601, UTC). At most
    MAX_HOURS buckets (a month), so a wide window cannot make an unbounded answer.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    first = start.replace(minute=0, second=0, microsecond=0)
    if end <= start:
        return []
    hours = math.ceil((end - first) / _HOUR)
    if hours > MAX_HOURS:
        raise ValueError(f"the window spans {hours} hours; at most {MAX_HOURS} are allowed")
    counts = [0] * hours
    for stamp in timestamps:
        moment = _utc(stamp, "timestamp")
        if start <= moment < end:
            counts[int((moment - first) // _HOUR)] += 1
    return [{"hour": (first + i * _HOUR).isoformat(), "requests": n} for i, n in enumerate(counts)]


def prediction_distribution(predictions: Iterable[Any], model_type: str) -> dict[str, Any]:
    """Shares of each predicted class (classification) or quantiles, mean and population std (regression)."""
    if model_type == "classification":
        labels = [label_key(p) for p in predictions if p is not None]
        counts = Counter(labels)
        return {"classes": {k: counts[k] / len(labels) for k in sorted(counts)}, "count": len(labels)}
    if model_type == "regression":
        values = _finite(predictions)
        if values.size == 0:
            return {"quantiles": dict.fromkeys(_QUANTILES), "mean": None, "std": None, "count": 0}
        points = np.percentile(values, list(_QUANTILES.values()), method="linear")
        return {"quantiles": {k: float(v) for k, v in zip(_QUANTILES, points, strict=True)},
                "mean": float(values.mean()), "std": float(values.std()), "count": int(values.size)}
    raise ValueError(f"unknown model type {model_type!r}; expected 'classification' or 'regression'")


def _class_lookup(classes: Sequence[Any]) -> dict[str, Any]:
    lookup = {label_key(c): c for c in classes}
    if len(lookup) != len(classes):
        raise ValueError("classes must be distinct")
    return lookup


def map_labels(labels: Iterable[Any], classes: Sequence[Any]) -> list[Any]:
    """Each label as the class it names (matched by label_key, so "1", 1 and 1.0 are class 1), or None when unknown."""
    lookup = _class_lookup(classes)
    return [None if label is None else lookup.get(label_key(label)) for label in labels]


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any], probabilities: Sequence[Sequence[float]] | None,
                           classes: Sequence[Any]) -> dict[str, Any]:
    """Accuracy, precision, recall, f1, ROC AUC and log loss, equal to scikit-learn's.

    Binary (two classes): positive class classes[1]. Multiclass: macro precision/recall/f1 over the labels present
    (zero_division=0), one-vs-rest macro ROC AUC. Rows whose true or predicted label is not a class are counted as
    unknown_labels and left out. probabilities: per-row lists in the order of classes, or None.
    """
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

    classes = list(classes)
    if len(classes) < 2:
        raise ValueError("classification metrics need at least two classes")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}")
    proba = None if probabilities is None else np.asarray(probabilities, dtype=float)
    if proba is not None and proba.shape != (len(y_true), len(classes)):
        raise ValueError(f"probabilities must be {len(y_true)} rows of {len(classes)} values, got shape {proba.shape}")
    truth, predicted = map_labels(y_true, classes), map_labels(y_pred, classes)
    keep = [i for i, (t, p) in enumerate(zip(truth, predicted, strict=True)) if t is not None and p is not None]
    result: dict[str, Any] = {"accuracy": None, "precision": None, "recall": None, "f1": None, "roc_auc": None, "log_loss": None,
                              "count": len(keep), "unknown_labels": len(truth) - len(keep)}
    if not keep:
        return result
    t = np.asarray([truth[i] for i in keep])
    p = np.asarray([predicted[i] for i in keep])
    binary = len(classes) == 2
    averaging = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
    result["accuracy"] = float(accuracy_score(t, p))
    result["precision"] = float(precision_score(t, p, zero_division=0, **averaging))
    result["recall"] = float(recall_score(t, p, zero_division=0, **averaging))
    result["f1"] = float(f1_score(t, p, zero_division=0, **averaging))
    if proba is None:
        return result
    proba = proba[keep]
    # scikit-learn reads the columns in sorted label order (log_loss; roc_auc insists labels are sorted).
    order = sorted(range(len(classes)), key=lambda i: classes[i])
    ordered, sorted_classes = proba[:, order], [classes[i] for i in order]
    result["log_loss"] = _float(log_loss(t, ordered, labels=sorted_classes))
    present = {label_key(label) for label in t}
    if binary and len(present) == 2:
        result["roc_auc"] = _float(roc_auc_score((t == classes[1]).astype(int), proba[:, 1]))
    elif not binary and len(present) == len(classes):  # ovr AUC is undefined for a class absent from y_true
        result["roc_auc"] = _float(roc_auc_score(t, ordered, multi_class="ovr", average="macro", labels=sorted_classes))
    return result


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, Any]:
    """MAE, RMSE and R² equal to scikit-learn's; R² is None with fewer than two rows."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        return {"mae": None, "rmse": None, "r2": None, "count": 0}
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return {"mae": _float(mean_absolute_error(t, p)), "rmse": _float(root_mean_squared_error(t, p)),
            "r2": _float(r2_score(t, p)) if t.size >= 2 else None, "count": int(t.size)}


def error_summary(status_codes: Iterable[int]) -> dict[str, Any]:
    """Requests, errors (any status outside 2xx), error rate (None without requests) and counts by status."""
    counts = Counter(int(code) for code in status_codes)
    requests = sum(counts.values())
    errors = sum(n for code, n in counts.items() if not 200 <= code < 300)
    return {"requests": requests, "errors": errors, "error_rate": errors / requests if requests else None,
            "by_status": {str(code): counts[code] for code in sorted(counts)}}
