"""The error envelope: every error body is
``{"error": {"code", "message", "details", "request_id"}}``.

Domain errors (``resources.errors``) and HTTP-level errors (``ApiError``) are mapped to status
codes here, in one table, by one set of handlers.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from resources.errors import DomainError

log = logging.getLogger("mlservice.api")

STATUS_BY_CODE: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "MODEL_NOT_FOUND": 404,
    "VERSION_NOT_FOUND": 404,
    "JOB_NOT_FOUND": 404,
    "ENSEMBLE_NOT_FOUND": 404,
    "FEATURE_STORE_NOT_FOUND": 404,
    "FEATURE_VIEW_NOT_FOUND": 404,
    "FEATURE_NOT_FOUND": 404,
    "FEATURE_SERVICE_NOT_FOUND": 404,
    "FEATURE_DEFINITIONS_NOT_FOUND": 404,
    "FEATURE_DEFINITION_IN_USE": 409,
    "FEATURE_DEFINITIONS_CONFLICT": 409,
    "REFERENCE_NOT_FOUND": 404,
    "POLICY_NOT_FOUND": 404,  # a version without a drift reference sample
    "DEPLOYMENT_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "MODEL_ALREADY_EXISTS": 409,
    "VERSION_ALREADY_EXISTS": 409,
    "STAGE_CONFLICT": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "ENSEMBLE_ALREADY_EXISTS": 409,
    "JOB_ALREADY_FINISHED": 409,
    "OUTPUT_EXISTS": 409,  # a batch job's output path holds files and overwrite is false
    "DEPLOYMENT_EXISTS": 409,  # the tenant has a deployment of this model version
    "DEPLOYMENT_CONFLICT": 409,  # a change to a deployment that is being deleted
    "QUOTA_EXCEEDED": 409,  # the tenant holds as many models / versions / ensembles as it may
    "PAYLOAD_TOO_LARGE": 413,
    "VALIDATION_ERROR": 422,
    "INSUFFICIENT_DATA": 422,  # too few values in the reference or the window to test drift
    "RATE_LIMITED": 429,
    "JOB_LIMIT_REACHED": 429,  # the tenant has as many unfinished jobs as it may: retry when one ends
    "ENSEMBLE_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
    "RAY_UNAVAILABLE": 503,
    "DEPLOYMENT_UNAVAILABLE": 503,  # a deployment that does not serve now, or Ray Serve did not answer
    "MODEL_NOT_VERIFIED": 503,  # a version with no record of its artifact (not registered through the platform)
    "MODEL_ARTIFACT_CHANGED": 503,  # the artifact's files differ from the digest recorded at registration
    "MODEL_LOAD_FAILED": 503,  # a verified version that does not load (the server logs why)
    "JOB_LAUNCH_FAILED": 500,  # Dagster refused a run configuration the platform built: a platform fault
}


class ApiError(Exception):
    """An HTTP-level refusal (auth, scope, rate limit, size) with optional response headers."""

    def __init__(self, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.details, self.headers = code, message, details, headers or {}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_body(code: str, message: str, details: Any, request_id: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": _json_safe(details), "request_id": request_id}}


def _json_safe(value: Any) -> Any:
    """Details as JSON can carry them: a non-finite number a client sent (``?period_hours=inf``)
    echoed back as its text, never a failure to write the error."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def error_response(
    request_id: str | None, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    response = JSONResponse(
        jsonable_encoder(error_body(code, message, details, request_id)),
        status_code=STATUS_BY_CODE.get(code, 500),
        headers=headers,
    )
    # Lets the audit and metrics middleware see the code without parsing the body.
    response.headers["x-error-code"] = code
    return response


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        details.append({"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg"), "type": err.get("type")})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request_id_of(request), exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
        if STATUS_BY_CODE.get(exc.code, 500) >= 500:
            log.warning("request %s: %s: %s", request_id_of(request), exc.code, exc.message)
        headers = dict(getattr(exc, "headers", None) or {})
        retry_after_s = getattr(exc, "retry_after_s", None)
        if retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
        return error_response(request_id_of(request), exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            message = "request body is not valid JSON"
        else:
            message = "request does not match the schema"
        return error_response(request_id_of(request), "INVALID_REQUEST", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(exc.status_code)
        if code is None:
            code = "INVALID_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR"
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route that matched it
            headers["Allow"] = ", ".join(allowed_methods(request))
        response = error_response(request_id_of(request), code, message, None, headers)
        response.status_code = exc.status_code
        return response


def allowed_methods(request: Request) -> list[str]:
    """The methods the request's path answers, over all routes (GET /x and POST /x are two routes)."""
    from starlette.routing import Match

    from serving_api.routes_index import api_routes

    scope = {**request.scope, "method": "\0"}  # no route matches this method: a path match is PARTIAL
    methods = {method for route in api_routes(request.app.routes) if route.matches(scope)[0] == Match.PARTIAL
               for method in route.methods}
    return sorted(methods)
