"""Dependencies of the monitoring routes: ``MonitoringServiceDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving_api.monitoring.service import MonitoringService


async def get_monitoring_service(request: Request) -> MonitoringService:
    return request.app.state.monitoring_service


MonitoringServiceDep = Annotated[MonitoringService, Depends(get_monitoring_service)]
