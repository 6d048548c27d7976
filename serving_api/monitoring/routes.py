"""/api/v1/monitoring: drift of a tenant's model against its reference sample."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from mlservice.monitoring.drift_report import DEFAULT_ALPHA
from mlservice.monitoring.drift_stats import DEFAULT_CORRECTION
from serving_api.deps import FeedbackWriter, MonitoringReader, MonitoringWriter
from serving_api.monitoring.deps import MonitoringServiceDep
from serving_api.monitoring.schemas import (
    DriftHistoryPublic,
    DriftPublic,
    FeedbackBody,
    FeedbackPublic,
    PerformancePublic,
    PolicyBody,
    PolicyPublic,
    ReferenceBody,
    ReferencePublic,
)
from serving_api.openapi import errors

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"], responses=errors(404, 409, 422, 503))
MAX_FEATURES_PARAM = 4096


@router.get("/{model_id}/drift", response_model=DriftPublic)
async def drift(
    model_id: str,
    principal: MonitoringReader,
    service: MonitoringServiceDep,
    features: Annotated[str | None, Query(min_length=1, max_length=MAX_FEATURES_PARAM, description="comma-separated; default: all")] = None,
    version: Annotated[str | None, Query(min_length=1, max_length=64,
                                         description="semver or stage; default production, else newest")] = None,
    window_hours: Annotated[float | None, Query(description="the window ending now (default 24)")] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    alpha: float = DEFAULT_ALPHA,
    correction: str = DEFAULT_CORRECTION,
) -> DriftPublic:
    names = [name.strip() for name in features.split(",") if name.strip()] if features else None
    report = await service.drift(principal, model_id, features=names, version=version, window_hours=window_hours,
                                 start=start, end=end, alpha=alpha, correction=correction)
    return DriftPublic.model_validate(report)


@router.get("/{model_id}/performance", response_model=PerformancePublic)
async def performance(
    model_id: str,
    principal: MonitoringReader,
    service: MonitoringServiceDep,
    period_hours: Annotated[float | None, Query(description="the window ending now (default 24)")] = None,
    version: Annotated[str | None, Query(min_length=1, max_length=64, description="semver or stage; default every version")] = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> PerformancePublic:
    report = await service.performance(principal, model_id, period_hours=period_hours, version=version, start=start, end=end)
    return PerformancePublic.model_validate(report)


@router.post("/{model_id}/feedback", response_model=FeedbackPublic)
async def feedback(model_id: str, body: FeedbackBody, principal: FeedbackWriter, service: MonitoringServiceDep) -> FeedbackPublic:
    """Ground truth for answered predictions, joined by the tenant's request id (the ``request_id``
    of the prediction's answer). Sending an item again replaces its label."""
    items = [(item.request_id, item.label) for item in body.items]
    return FeedbackPublic.model_validate(await service.feedback_items(principal, model_id, items))


@router.get("/{model_id}/drift/history", response_model=DriftHistoryPublic)
async def drift_history(
    model_id: str,
    principal: MonitoringReader,
    service: MonitoringServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before_id: Annotated[int | None, Query(ge=1, description="the next page: next_before_id of the previous one")] = None,
) -> DriftHistoryPublic:
    """The scheduled drift reports of the model (the drift_report asset's runs), newest first."""
    return DriftHistoryPublic.model_validate(await service.history(principal, model_id, limit=limit, before_id=before_id))


@router.put("/{model_id}/policy", response_model=PolicyPublic)
async def put_policy(model_id: str, body: PolicyBody, principal: MonitoringWriter, service: MonitoringServiceDep) -> PolicyPublic:
    """What the retrain_on_drift sensor does for this model (replaces the previous policy)."""
    return PolicyPublic.model_validate(await service.put_policy(principal, model_id, body.model_dump()))


@router.get("/{model_id}/policy", response_model=PolicyPublic)
async def get_policy(model_id: str, principal: MonitoringReader, service: MonitoringServiceDep) -> PolicyPublic:
    return PolicyPublic.model_validate(await service.get_policy(principal, model_id))


@router.post("/{model_id}/reference", status_code=201, response_model=ReferencePublic)
async def set_reference(model_id: str, body: ReferenceBody, principal: MonitoringWriter,
                        service: MonitoringServiceDep) -> ReferencePublic:
    """The version's drift reference from now on (wins over the sample its training logged)."""
    return ReferencePublic.model_validate(await service.set_reference(principal, model_id, body.model_dump()))
