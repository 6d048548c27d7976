"""One pure-ASGI middleware for what every request needs: a request id, a body-size limit,
metrics, the audit record, and a 500 envelope (never a traceback) for anything unhandled.

Unauthenticated refusals: a 401 or a request to an unknown route (404, or 405 for an unknown
method) charges the client address's unauthenticated bucket (the app's ``rate_limiter``); unknown
routes and the address limit's 429s are counted in ``mlservice_unauthenticated_refusals_total``
instead of one audit row each.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task or stream copy to the hot path.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from serving_api.errors import error_body

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from resources.tenants.audit import AuditLog
    from serving_api.metrics import ApiMetrics
    from serving_api.online.arrivals import Arrivals

log = logging.getLogger("mlservice.api")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_AUDITED_PREFIX = "/api/v1"
_READ_METHODS = {"GET", "HEAD", "OPTIONS"}
# Answered predictions each have a durable prediction-log row (with tenant and subject): no
# second, audit, row for them. Refused ones are audited like every other call.
_LOGGED_ELSEWHERE = {"/api/v1/predictions", "/api/v1/ensembles/{ensemble_id}/predict"}
# Open Inference Protocol predictions outside /api/v1: their refusals are audited too (with the
# model, for monitoring's error counts); answered ones are in the prediction log.
_OIP_INFER = {"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"}


class _BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body parsing lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds {limit} bytes")


def _repeated_query_names(query: bytes) -> list[str]:
    if b"&" not in query:
        return []
    from urllib.parse import parse_qsl

    seen: set[str] = set()
    repeated: set[str] = set()
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):  # linear: a query may hold thousands
        (repeated if name in seen else seen).add(name)
    return sorted(repeated)


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex[:20]}"


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, metrics: ApiMetrics, audit: AuditLog | None, arrivals: Arrivals | None = None,
    ) -> None:
        self.app, self.max_body_bytes, self.metrics, self.audit = app, max_body_bytes, metrics, audit
        self.arrivals = arrivals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID_RE.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        state: dict[str, Any] = {"status": 500, "started": False, "code": None}
        arrivals = self.arrivals
        ticket = arrivals.begin() if arrivals is not None and arrivals.counts(scope["method"], scope["path"]) else None

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = []
                for name, value in message.get("headers", []):
                    if name == b"x-error-code":
                        state["code"] = value.decode()
                    else:
                        kept.append((name, value))
                kept.append(rid_header)
                message["headers"] = kept
                state["status"] = message["status"]
                state["started"] = True
            await send(message)

        async def send_error(status: int, code: str, message: str, extra: list | None = None) -> None:
            body = json.dumps(error_body(code, message, None, request_id)).encode()
            state["code"] = code
            await send_wrapper({
                "type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + (extra or []),
            })
            await send({"type": "http.response.body", "body": body})

        length = headers.get(b"content-length")
        try:
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                await send_error(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {self.max_body_bytes} bytes")
            elif repeated := _repeated_query_names(scope.get("query_string") or b""):
                # no route takes a list in its query: a name given twice is ambiguous (the framework keeps the last)
                await send_error(400, "INVALID_REQUEST", f"query parameter given more than once: {', '.join(repeated)[:200]}")
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        except _BodyTooLarge:
            if not state["started"]:
                await send_error(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {self.max_body_bytes} bytes")
        except Exception:
            log.exception("unhandled error in request %s %s (%s)", scope.get("method"), scope.get("path"), request_id)
            if not state["started"]:
                await send_error(500, "INTERNAL_ERROR", "internal error; quote the request id when reporting it")
        finally:
            if ticket is not None:
                arrivals.end(ticket)
            self._finish(scope, state, time.perf_counter() - started, request_id)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        return wrapped

    def _finish(self, scope: Scope, state: dict[str, Any], seconds: float, request_id: str) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        status = state["status"]
        self.metrics.observe(method, template, status, seconds, state["code"])
        principal = scope.get("state", {}).get("principal")
        if principal is None and self._unauthenticated_refusal(scope, template, status):
            return
        path = scope.get("path", "")
        audited = status >= 400 or (method not in _READ_METHODS and template not in _LOGGED_ELSEWHERE)
        in_scope = path.startswith(_AUDITED_PREFIX) or (template in _OIP_INFER and status >= 400)
        if self.audit is not None and audited and in_scope:
            self.audit.record(
                request_id=request_id,
                tenant_id=getattr(principal, "tenant_id", None),
                subject=getattr(principal, "subject", None),
                method=method,
                path=path,
                status=status,
                error_code=state["code"],
                model_id=scope.get("state", {}).get("model_id"),
            )

    def _unauthenticated_refusal(self, scope: Scope, template: str, status: int) -> bool:
        """For a request no token was accepted for: charge the client address's unauthenticated
        bucket for a 401 or an unknown route or method (``serving_api.ratelimit.local``); True when the
        answer is counted in a metric instead of audited (unknown routes and methods, addresses
        past their limit), so a flood of them writes no audit rows. 401s stay audited: the limit
        bounds them per address."""
        unknown_route = (status == 404 and template == "unmatched") or status == 405  # no route for it
        if status == 401 or unknown_route:
            client = scope.get("client")
            limiter = getattr(getattr(scope.get("app"), "state", None), "rate_limiter", None)
            if limiter is not None:
                limiter.charge_address(client[0] if client else None)
        if unknown_route or status == 429:  # a 429 without a principal: the address limit
            self.metrics.unauthenticated_refusal("unknown_route" if unknown_route else "address_limited")
            return True
        return False
