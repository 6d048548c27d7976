"""Dependencies every feature shares (``Annotated[T, Depends(...)]``): authentication, scopes, the
``Idempotency-Key`` header, the model cache and the check of query names. Each feature declares
its own services beside its routes (``serving_api/<feature>/deps.py``).

Every getter is ``async def``: FastAPI runs a plain ``def`` dependency in its threadpool, one
thread hop per request for what is an attribute read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from serving_api.auth import Principal
from serving_api.errors import ApiError
from serving_api.online.cache import ModelCache


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


async def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


# who may do what: one alias per scope (or scopes) a route requires
ModelsReader = Annotated[Principal, Depends(require_scope("models:read"))]
ModelsWriter = Annotated[Principal, Depends(require_scope("models:write"))]
JobsReader = Annotated[Principal, Depends(require_scope("jobs:read"))]
JobsWriter = Annotated[Principal, Depends(require_scope("jobs:write"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)]
PredictionsWriter = Annotated[Principal, Depends(require_scope("predictions:write"))]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
MonitoringReader = Annotated[Principal, Depends(require_scope("monitoring:read"))]
MonitoringWriter = Annotated[Principal, Depends(require_scope("monitoring:write"))]
# ground truth comes from whoever knows the outcome: a monitoring client, or the application that asked for the prediction
FeedbackWriter = Annotated[Principal, Depends(require_any_scope("monitoring:write", "predictions:write"))]
FeaturesReader = Annotated[Principal, Depends(require_scope("features:read"))]
FeaturesWriter = Annotated[Principal, Depends(require_scope("features:write"))]
DeploymentsWriter = Annotated[Principal, Depends(require_scope("deployments:write"))]
# a deployment is how a model is served: who may read models may read its deployments
DeploymentsReader = Annotated[Principal, Depends(require_any_scope("deployments:write", "models:read"))]
