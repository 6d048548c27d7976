"""Monitoring for the API: drift reports of a tenant's model over a window of its traffic.

Every step that blocks (the registry, the reference artifact, the prediction log, the statistics)
runs off the event loop. A version's reference sample is kept in a small LRU (it never changes
for a version) and windows that end now are read incrementally (``mlservice.monitoring.window_cache``), so a
repeated report reads only the records logged since the previous one.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from resources.errors import ReferenceNotFound

if TYPE_CHECKING:
    import pandas as pd

    from resources.data.access import DataAccessPolicy
    from resources.infra.state_db import StateStore
    from resources.models.registry import ModelRegistry, ResolvedVersion
    from serving_api.auth import Principal
    from serving_api.online.cache import ModelCache

REFERENCES_KEPT = 32


class MonitoringService:
    def __init__(self, registry: ModelRegistry, state: StateStore, models: ModelCache, data_access: DataAccessPolicy) -> None:
        from mlservice.monitoring.window_cache import WindowCache
        from resources.predictions.feedback import FeedbackStore

        self.windows = WindowCache(state)
        self.data_access = data_access
        self.registry = registry
        self.state = state
        self.models = models
        self.feedback = FeedbackStore(state)
        self._references: OrderedDict[tuple[str, str, str], tuple[pd.DataFrame, str, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    async def drift(self, principal: Principal, model_id: str, *, features: list[str] | None, version: str | None,
                    window_hours: float | None, start: datetime | None, end: datetime | None, alpha: float,
                    correction: str) -> dict[str, Any]:
        from mlservice.monitoring.drift_report import check_parameters, drift_report, select_features
        from mlservice.monitoring.traffic_window import window_bounds

        tenant = principal.tenant_id
        check_parameters(alpha, correction)
        now = datetime.now(UTC)
        window = window_bounds(now, window_hours=window_hours, start=start, end=end)
        resolved = await asyncio.to_thread(self.registry.resolve_version, tenant, model_id, version)
        served = await self.models.get(tenant, model_id, resolved.version)
        chosen = select_features(served.model.features, features)
        reference, source = await asyncio.to_thread(self._reference, tenant, model_id, resolved)
        names = [spec.name for spec in chosen]
        current = await asyncio.to_thread(self.windows.sample, tenant, model_id, names, *window, version=resolved.version,
                                          now=now)
        return await asyncio.to_thread(
            drift_report, model_id=model_id, version=resolved.version, features=chosen, reference=reference,
            reference_source=source, current=current, alpha=alpha, correction=correction)

    async def performance(self, principal: Principal, model_id: str, *, period_hours: float | None, version: str | None,
                          start: datetime | None, end: datetime | None) -> dict[str, Any]:
        from mlservice.monitoring.performance_report import performance_report
        from mlservice.monitoring.traffic_window import window_bounds
        from mlservice.monitoring.training_metrics import validation_metrics

        tenant = principal.tenant_id
        window = window_bounds(datetime.now(UTC), window_hours=period_hours, start=start, end=end)
        record = await asyncio.to_thread(self.registry.get_model, tenant, model_id)
        if version is not None:
            version = (await asyncio.to_thread(self.registry.resolve_version, tenant, model_id, version)).version
        classes: list[Any] = []
        if record.model_type == "classification" and record.current_version:
            served = await self.models.get(tenant, model_id, version or record.current_version)
            classes = list(served.model.classes)
        report = await asyncio.to_thread(
            performance_report, self.state, self.feedback, tenant_id=tenant, model_id=model_id, start=window[0], end=window[1],
            version=version, model_type=record.model_type, classes=classes,
            training_metrics=lambda v: validation_metrics(self.registry, tenant, model_id, v))
        hours = (window[1] - window[0]).total_seconds() / 3600
        return {**report, "period_hours": round(hours, 6)}

    async def feedback_items(self, principal: Principal, model_id: str, items: list[tuple[str, Any]]) -> dict[str, Any]:
        tenant = principal.tenant_id
        await asyncio.to_thread(self.registry.get_model, tenant, model_id)  # 404 for another tenant's model
        outcome = await asyncio.to_thread(self.feedback.submit, tenant, model_id, items)
        return {"model_id": model_id, "received": len(items), "matched": outcome.matched, "stored": outcome.stored,
                "unknown": len(outcome.unknown), "unknown_request_ids": outcome.unknown[:100], "rejected": outcome.rejected[:100]}

    async def history(self, principal: Principal, model_id: str, *, limit: int, before_id: int | None) -> dict[str, Any]:
        from dataclasses import asdict

        from resources.monitoring.drift_history import DriftReportStore

        await asyncio.to_thread(self.registry.get_model, principal.tenant_id, model_id)  # 404 for another tenant's model
        records = await asyncio.to_thread(DriftReportStore(self.state).history, principal.tenant_id, model_id, limit=limit,
                                          before_id=before_id)
        reports = [{k: v for k, v in asdict(r).items() if k != "tenant_id"} for r in records]
        return {"model_id": model_id, "reports": reports, "count": len(reports),
                "next_before_id": records[-1].id if len(records) == limit else None}

    async def put_policy(self, principal: Principal, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import asdict

        from resources.monitoring.policies import PolicyStore

        await asyncio.to_thread(self.registry.get_model, principal.tenant_id, model_id)
        record = await asyncio.to_thread(PolicyStore(self.state).put, principal.tenant_id, model_id, actor=principal.subject,
                                         **body)
        return {k: v for k, v in asdict(record).items() if k != "tenant_id"}

    async def get_policy(self, principal: Principal, model_id: str) -> dict[str, Any]:
        from dataclasses import asdict

        from resources.monitoring.policies import PolicyStore

        await asyncio.to_thread(self.registry.get_model, principal.tenant_id, model_id)
        record = await asyncio.to_thread(PolicyStore(self.state).get, principal.tenant_id, model_id)
        if record is None:
            from resources.errors import PolicyNotFound

            raise PolicyNotFound(f"model '{model_id}' has no monitoring policy", {"model_id": model_id})
        return {k: v for k, v in asdict(record).items() if k != "tenant_id"}

    def _reference(self, tenant: str, model_id: str, resolved: ResolvedVersion) -> tuple[pd.DataFrame, str]:
        """The version's reference, from the LRU while the newest one set through the API is still
        the one cached (one indexed query: another worker may have set a new one)."""
        from mlservice.monitoring.reference import version_reference
        from resources.monitoring.stored_references import ReferenceStore

        key = (tenant, model_id, resolved.version)
        stored_id = ReferenceStore(self.state).latest_id(tenant, model_id, resolved.version)
        with self._lock:
            cached = self._references.get(key)
            if cached is not None and cached[2] == stored_id:
                self._references.move_to_end(key)
                return cached[0], cached[1]
        found = version_reference(self.registry, self.state, tenant, model_id, resolved)
        if found is None:
            raise ReferenceNotFound(
                f"version {resolved.version} has no reference sample: versions trained by the platform log one; "
                "set one with POST /api/v1/monitoring/{model_id}/reference",
                {"model_id": model_id, "version": resolved.version})
        with self._lock:
            self._references[key] = found
            while len(self._references) > REFERENCES_KEPT:
                self._references.popitem(last=False)
        return found[0], found[1]

    async def set_reference(self, principal: Principal, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a reference for a version from a parquet file under the data-access policy or from
        a window of the version's own traffic; it wins over the training sample from now on."""
        from mlservice.monitoring.drift_report import MIN_SAMPLES
        from mlservice.monitoring.reference import read_reference_file, reference_bytes
        from mlservice.monitoring.traffic_window import current_sample, window_bounds
        from resources.errors import InsufficientData
        from resources.monitoring.stored_references import ReferenceStore

        tenant = principal.tenant_id
        resolved = await asyncio.to_thread(self.registry.resolve_version, tenant, model_id, body.get("version"))
        served = await self.models.get(tenant, model_id, resolved.version)
        features = served.model.feature_names
        if body["source"] == "path":
            location = self.data_access.resolve(tenant, body["path"])
            frame = await asyncio.to_thread(read_reference_file, location, self.data_access, features)
            detail = body["path"]
        else:
            import pandas as pd

            window = window_bounds(datetime.now(UTC), window_hours=body.get("window_hours"), start=body.get("start"),
                                   end=body.get("end"))
            sample = await asyncio.to_thread(current_sample, self.state, tenant, model_id, features, *window,
                                             version=resolved.version)
            if sample.rows < MIN_SAMPLES:
                raise InsufficientData(f"the window holds {sample.rows} rows of version {resolved.version}; a reference "
                                       f"needs at least {MIN_SAMPLES}", {"rows": sample.rows, "minimum": MIN_SAMPLES})
            frame = pd.DataFrame(sample.columns)
            detail = f"{window[0].isoformat()}/{window[1].isoformat()}"
        data, rows = await asyncio.to_thread(reference_bytes, frame, features)
        reference_id = await asyncio.to_thread(ReferenceStore(self.state).put, tenant, model_id, resolved.version,
                                               source=body["source"], detail=detail, rows=rows, data=data,
                                               actor=principal.subject)
        return {"model_id": model_id, "version": resolved.version, "reference_id": reference_id, "source": body["source"],
                "rows": rows, "features": features}
