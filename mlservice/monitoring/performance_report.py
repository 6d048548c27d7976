"""A performance report: what a model's traffic looked like in a window, and how right it was.

From the prediction log (the model's own answered records; an ensemble's records are the
ensemble's): requests and rows, latency percentiles, requests per hour, the prediction
distribution, a breakdown per version. From the audit log: requests refused for the model, by
status (the API notes the model id of a refused prediction when it knows it). From the feedback
table: ground truth joined by request id, its coverage, and quality metrics equal to
scikit-learn's, beside the version's validation metrics from training so a degradation shows.
At most ``MAX_WINDOW_ROWS`` records are read, newest first (``sampled`` says when there were more).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlservice.monitoring.performance_stats import (
    classification_metrics,
    error_summary,
    hourly_throughput,
    latency_summary,
    prediction_distribution,
    regression_metrics,
)
from mlservice.monitoring.traffic_window import MAX_WINDOW_ROWS

if TYPE_CHECKING:
    from resources.infra.state_db import StateStore
    from resources.predictions.feedback import FeedbackStore

MAX_VERSIONS = 10  # versions broken down in one report (each asks the registry for its training metrics)


def performance_report(state: StateStore, feedback: FeedbackStore, *, tenant_id: str, model_id: str, start: datetime,
                       end: datetime, version: str | None, model_type: str, classes: list[Any],
                       training_metrics: Callable[[str], dict[str, float] | None], max_rows: int = MAX_WINDOW_ROWS,
                       max_versions: int = MAX_VERSIONS) -> dict[str, Any]:
    """The report as ``GET /monitoring/{model_id}/performance`` answers it (blocking).
    ``training_metrics(version)`` gives a version's validation metrics from training; it is asked
    for the ``max_versions`` versions with the most requests in the window."""
    records = _records(state, tenant_id, model_id, start, end, version, max_rows)
    refused = _refused(state, tenant_id, model_id, start, end)
    by_version: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_version[record["version"]].append(record)
    errors = error_summary([200] * len(records) + refused)
    labelled = feedback.labelled(tenant_id, model_id, start, end, version=version, max_rows=max_rows)
    rows = sum(r["rows"] for r in records)
    return {
        "model_id": model_id,
        "version": version,
        "model_type": model_type,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "requests": errors["requests"],
        "answered": len(records),
        "rows": rows,
        "errors": errors["errors"],
        "error_rate": errors["error_rate"],
        "errors_by_status": {code: n for code, n in errors["by_status"].items() if not code.startswith("2")},
        "latency_ms": latency_summary(r["latency_ms"] for r in records),
        "throughput_per_hour": hourly_throughput([r["at"] for r in records], start, end),
        "predictions": _distribution(records, model_type),
        "sampled": len(records) >= max_rows,
        "versions": {v: {"requests": len(rs), "rows": sum(r["rows"] for r in rs),
                         "latency_ms": latency_summary(r["latency_ms"] for r in rs),
                         "predictions": _distribution(rs, model_type),
                         "ground_truth": _quality([lr for lr in labelled if lr.model_version == v], sum(r["rows"] for r in rs),
                                                  model_type, classes),
                         "training_metrics": training_metrics(v)}
                     for v, rs in sorted(by_version.items(), key=lambda item: -len(item[1]))[:max_versions]},
        "ground_truth": _quality(labelled, rows, model_type, classes),
    }


def _records(state: StateStore, tenant_id: str, model_id: str, start: datetime, end: datetime, version: str | None,
             max_rows: int) -> list[dict[str, Any]]:
    import orjson
    import sqlalchemy as sa

    from resources.infra.state_db import as_utc
    from resources.predictions.log import answered
    from resources.predictions.log import prediction_log as t

    condition = answered(tenant_id, start, end, model_id=model_id, version=version or None)
    query = (sa.select(t.c.model_version, t.c.at, t.c.latency_ms, t.c.outputs).where(*condition)
             .order_by(t.c.at.desc(), t.c.id.desc()).limit(max_rows))
    found = []
    with state.engine.connect() as conn:
        for model_version, at, latency_ms, raw in conn.execute(query):
            outputs = orjson.loads(raw or b"{}")
            predictions = outputs.get("prediction") if isinstance(outputs, dict) else None
            predictions = predictions if isinstance(predictions, list) else []
            found.append({"version": model_version, "at": as_utc(at), "latency_ms": latency_ms,
                          "predictions": predictions, "rows": len(predictions)})
    return found


def _refused(state: StateStore, tenant_id: str, model_id: str, start: datetime, end: datetime) -> list[int]:
    import sqlalchemy as sa

    from resources.tenants.audit import audit_log as a

    query = sa.select(a.c.status).where(a.c.tenant_id == tenant_id, a.c.model_id == model_id, a.c.at >= start, a.c.at < end,
                                        a.c.status >= 400).limit(MAX_WINDOW_ROWS)
    with state.engine.connect() as conn:
        return [int(status) for (status,) in conn.execute(query)]


def _distribution(records: list[dict[str, Any]], model_type: str) -> dict[str, Any]:
    return prediction_distribution([p for r in records for p in r["predictions"]], model_type)


def _quality(labelled: list[Any], rows: int, model_type: str, classes: list[Any]) -> dict[str, Any]:
    """Coverage of the ground truth and, where any arrived, the metrics on the labelled rows."""
    coverage = {"labelled_rows": len(labelled), "coverage": (len(labelled) / rows) if rows else None}
    if not labelled:
        return {**coverage, "metrics": None}
    y_true = [lr.label for lr in labelled]
    y_pred = [lr.prediction for lr in labelled]
    if model_type == "classification":
        probabilities = [lr.probabilities for lr in labelled]
        usable = all(isinstance(p, list) and len(p) == len(classes) for p in probabilities)
        metrics = classification_metrics(y_true, y_pred, probabilities if usable else None, classes)
    else:
        pairs = [(t, p) for t, p in zip(y_true, y_pred, strict=True) if _is_number(t) and _is_number(p)]
        metrics = {**regression_metrics([float(t) for t, _ in pairs], [float(p) for _, p in pairs]),
                   "unknown_labels": len(y_true) - len(pairs)}
    return {**coverage, "metrics": metrics}


def _is_number(value: Any) -> bool:
    import math

    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
