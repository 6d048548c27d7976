"""The OpenAPI document as the API behaves, so generated clients and contract tests go right.

FastAPI documents 200 and a 422 of its own validation schema for every route; this API answers
400 ``INVALID_REQUEST`` in the error envelope for a request that does not match its schema, and
401/403/404/409/413/422/429/500/503 in the same envelope. What each route can answer is declared
where the route is (``errors(...)`` in its router's or decorator's ``responses``); what every
route shares is added here from what the route is: 400 when it takes parameters or a body, 413
when it takes a body, 401/403/429 and the bearer scheme when it needs a token, 500 always."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serving_api.common_schemas import ErrorEnvelope
from serving_api.routes_index import api_routes, dependants

DESCRIPTIONS: dict[int, str] = {
    400: "INVALID_REQUEST: malformed JSON, a body, path or query that does not match the schema, or a rule beyond it",
    401: "UNAUTHORIZED: no bearer token, or one that is invalid or expired",
    403: "FORBIDDEN: the token lacks this route's scope",
    404: "not found (MODEL_NOT_FOUND, VERSION_NOT_FOUND, JOB_NOT_FOUND, ...): also another tenant's resource",
    409: "conflict (STAGE_CONFLICT, MODEL_ALREADY_EXISTS, IDEMPOTENCY_CONFLICT, OUTPUT_EXISTS, QUOTA_EXCEEDED, ...)",
    413: "PAYLOAD_TOO_LARGE: the body is over the size limit",
    422: "VALIDATION_ERROR (features that do not fit the model, one entry per feature) or INSUFFICIENT_DATA",
    429: "RATE_LIMITED or JOB_LIMIT_REACHED: retry after the Retry-After header's seconds",
    500: "INTERNAL_ERROR (no traceback in the body) or JOB_LAUNCH_FAILED",
    503: "a component is unavailable (SERVICE_UNAVAILABLE, RAY_UNAVAILABLE, MODEL_LOAD_FAILED, DEPLOYMENT_UNAVAILABLE, ...)",
}
ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` for a router or route: each status answered with the error envelope."""
    return {status: {"model": ErrorEnvelope, "description": DESCRIPTIONS[status]} for status in statuses}


def _envelope(status: int) -> dict[str, Any]:
    body: dict[str, Any] = {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": ENVELOPE_REF}}}
    if status == 429:
        body["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return body


def conform(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Rewrite FastAPI's document in place: see the module's text."""
    from serving_api.deps import authenticate

    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(envelope.pop("$defs", {}))
    schemas["ErrorEnvelope"] = envelope
    components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation["responses"]
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if default_422.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            statuses = {500}
            if operation.get("parameters") or operation.get("requestBody"):
                statuses.add(400)
            if operation.get("requestBody"):
                statuses.add(413)
            if any(d.call is authenticate for d in dependants(route.dependant)):
                statuses |= {401, 403, 429}
                operation["security"] = [{"bearerAuth": []}]
            for status in sorted(statuses):
                responses.setdefault(str(status), _envelope(status))
            operation["responses"] = dict(sorted(responses.items()))
    if "HTTPValidationError" not in str(schema["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = conform(get_openapi(title=app.title, version=app.version, description=app.description,
                                                     routes=app.routes), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
