"""Health and metrics: no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from serving_api.health.readiness import app_readiness
from serving_api.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "not ready: the body names the components that do not answer"}})
async def ready(request: Request) -> JSONResponse:
    """200 when every dependency answers, else 503 naming those that do not; from a result at
    most ``settings.health_cache_s`` old."""
    components = await app_readiness(request.app.state).components()
    failing = sorted(name for name, status in components.items() if status != "ok")
    body = {"status": "ready" if not failing else "not_ready", "components": components}
    if failing:
        body["unavailable"] = failing
    return JSONResponse(body, status_code=200 if not failing else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
