"""Typed dependencies for route handlers (``Annotated[T, Depends(...)]``).

Every getter is ``async def``: FastAPI runs a plain ``def`` dependency in its threadpool, one
thread hop per request for what is an attribute read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from config.settings import Settings
from resources.feature_store import FeatureStoreResource
from resources.prediction_log import PredictionLog
from resources.registry import ModelRegistry
from serving_api.auth import Principal
from serving_api.errors import ApiError
from serving_api.online.cache import ModelCache
from serving_api.services.deployments import DeploymentService
from serving_api.services.ensembles import EnsembleService
from serving_api.services.feature_definitions import FeatureDefinitionService
from serving_api.services.jobs import JobService
from serving_api.services.models import ModelService
from serving_api.services.monitoring import MonitoringService
from serving_api.services.predictions import PredictionService


async def known_query_names(request: Request) -> None:
    """Every route refuses query parameters it does not take (as bodies refuse unknown fields): a
    misspelt filter is a 400, not a silently unfiltered list."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    from serving_api.routes_index import dependants

    known = {param.alias for d in dependants(dependant) for param in d.query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError("INVALID_REQUEST", f"unknown query parameter(s): {', '.join(unknown)[:200]}",
                       {"unknown": unknown[:20], "known": sorted(known)})


async def authenticate(request: Request) -> Principal:
    """Verify the bearer token, then charge the tenant's rate limit.

    A token verified recently passes at once. Otherwise the client address must have
    unauthenticated budget left (429 before any verification once it has spent it on failed
    authentications and unknown routes: the middleware charges those), then the token is verified.
    """
    state = request.app.state
    header = request.headers.get("authorization")
    principal = state.verifier.remembered(header)
    if principal is None:
        client = request.scope.get("client")
        state.rate_limiter.check_address(client[0] if client else None)
        principal = state.verifier.verify_header(header)
    request.state.principal = principal  # for the audit record
    state.rate_limiter.check(principal.tenant_id)
    return principal


def require_scope(scope: str) -> Callable:
    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has_scope(scope):
            raise ApiError("FORBIDDEN", f"token lacks the '{scope}' scope", {"required_scope": scope})
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by the route audit test
    return dependency


def require_any_scope(*scopes: str) -> Callable:
    """A principal holding at least one of ``scopes``."""
    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not any(principal.has_scope(scope) for scope in scopes):
            raise ApiError("FORBIDDEN", f"token lacks one of the scopes {', '.join(scopes)}", {"required_scope": list(scopes)})
        return principal

    dependency.required_scope = scopes  # type: ignore[attr-defined]
    return dependency


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_job_service(request: Request) -> JobService:
    return request.app.state.job_service


async def get_prediction_service(request: Request) -> PredictionService:
    return request.app.state.prediction_service


async def get_ensemble_service(request: Request) -> EnsembleService:
    return request.app.state.ensemble_service


async def get_feature_store(request: Request) -> FeatureStoreResource:
    return request.app.state.feature_store


async def get_feature_definitions(request: Request) -> FeatureDefinitionService:
    return request.app.state.feature_definitions


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


async def get_model_service(request: Request) -> ModelService:
    return request.app.state.model_service


async def get_prediction_log(request: Request) -> PredictionLog:
    return request.app.state.prediction_log


async def get_monitoring_service(request: Request) -> MonitoringService:
    return request.app.state.monitoring_service


async def get_deployment_service(request: Request) -> DeploymentService:
    return request.app.state.deployment_service


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ModelsReader = Annotated[Principal, Depends(require_scope("models:read"))]
ModelsWriter = Annotated[Principal, Depends(require_scope("models:write"))]
JobServiceDep = Annotated[JobService, Depends(get_job_service)]
JobsReader = Annotated[Principal, Depends(require_scope("jobs:read"))]
JobsWriter = Annotated[Principal, Depends(require_scope("jobs:write"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)]
PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
PredictionsWriter = Annotated[Principal, Depends(require_scope("predictions:write"))]
EnsembleServiceDep = Annotated[EnsembleService, Depends(get_ensemble_service)]
FeatureStoreDep = Annotated[FeatureStoreResource, Depends(get_feature_store)]
FeatureDefinitionsDep = Annotated[FeatureDefinitionService, Depends(get_feature_definitions)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
ModelServiceDep = Annotated[ModelService, Depends(get_model_service)]
PredictionLogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
MonitoringServiceDep = Annotated[MonitoringService, Depends(get_monitoring_service)]
MonitoringReader = Annotated[Principal, Depends(require_scope("monitoring:read"))]
MonitoringWriter = Annotated[Principal, Depends(require_scope("monitoring:write"))]
# ground truth comes from whoever knows the outcome: a monitoring client, or the application that asked for the prediction
FeedbackWriter = Annotated[Principal, Depends(require_any_scope("monitoring:write", "predictions:write"))]
FeaturesReader = Annotated[Principal, Depends(require_scope("features:read"))]
FeaturesWriter = Annotated[Principal, Depends(require_scope("features:write"))]
DeploymentServiceDep = Annotated[DeploymentService, Depends(get_deployment_service)]
DeploymentsWriter = Annotated[Principal, Depends(require_scope("deployments:write"))]
# a deployment is how a model is served: who may read models may read its deployments
DeploymentsReader = Annotated[Principal, Depends(require_any_scope("deployments:write", "models:read"))]
