"""A drift report outside a request: what the scheduled ``drift_report`` asset computes.

The same steps as the API's (resolve the version, its signature, its reference, the window, the
statistics), with the model loaded through the model core instead of the API's cache, and every
outcome kept: a report, or the reason there is none (``insufficient_data``, ``no_reference``),
so the history says what happened at each run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resources.infra.state_db import StateStore
    from resources.models.registry import ModelRegistry


@dataclass
class ReportOutcome:
    status: str  # ok | insufficient_data | no_reference
    report: dict[str, Any] | None  # the report (ok) or the error's message and details
    version: str | None
    window: tuple[datetime, datetime]


def scheduled_drift(registry: ModelRegistry, state: StateStore, tenant_id: str, model_id: str, *, now: datetime,
                    window_hours: float = 24.0, alpha: float = 0.05, correction: str = "fdr_bh") -> ReportOutcome:
    """The drift of the model's production version (else its newest) over the window ending ``now``
    (blocking). Model and version errors propagate (the run fails); missing data is an outcome."""
    from mlservice.inference.loader import load_model_version
    from mlservice.monitoring.drift_report import drift_report
    from mlservice.monitoring.reference import version_reference
    from mlservice.monitoring.traffic_window import current_sample
    from resources.errors import InsufficientData, ReferenceNotFound

    window = (now - timedelta(hours=window_hours), now)
    resolved = registry.resolve_version(tenant_id, model_id, None)
    try:
        found = version_reference(registry, state, tenant_id, model_id, resolved)
        if found is None:
            raise ReferenceNotFound(f"version {resolved.version} has no reference sample",
                                    {"model_id": model_id, "version": resolved.version})
        reference, source, _ = found
        model = load_model_version(registry=registry, tenant_id=tenant_id, model_id=model_id, resolved=resolved)
        current = current_sample(state, tenant_id, model_id, model.feature_names, *window, version=resolved.version)
        report = drift_report(model_id=model_id, version=resolved.version, features=model.features, reference=reference,
                              reference_source=source, current=current, alpha=alpha, correction=correction)
        return ReportOutcome("ok", report, resolved.version, window)
    except InsufficientData as exc:
        return ReportOutcome("insufficient_data", {"message": exc.message, "details": exc.details}, resolved.version, window)
    except ReferenceNotFound as exc:
        return ReportOutcome("no_reference", {"message": exc.message, "details": exc.details}, resolved.version, window)
