"""Predictions answered by a Ray Serve deployment: a request that names ``deployment_id``.

The API authenticates the caller, charges its rate limit and checks the deployment (the caller's
tenant's, of the model named, serving the version named if one is), then forwards the rows over
HTTP to the deployment's route on Serve's proxy (loopback). The replica checks the rows with the
same rules as the in-process path, predicts, explains within the same bound and commits the
prediction-log record before it answers; a refusal comes back with the same code and details
(422 VALIDATION_ERROR naming the feature, 400 for an explanation past its bound). Serve
unreachable, overloaded (its queue bound) or the deployment not serving: 503
DEPLOYMENT_UNAVAILABLE, and nothing was recorded.

Why an explicit ``deployment_id`` rather than every request for a deployed model: a request
without a version means "production" to the in-process path, a deployment serves the version it
was given (and a canary); routing silently would change which version answers. The deployment's
``endpoint`` says what to send.

Deployment records are read once a second at most per deployment and API process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from resources.deployments import SERVING_STATUSES, DeploymentRecord, DeploymentStore
from resources.errors import DomainError, InvalidRequest
from serving_api.schemas.predictions import PredictionResponse

if TYPE_CHECKING:
    import httpx

    from serving_api.auth import Principal
    from serving_api.schemas.predictions import PredictionRequest

RECORD_TTL_S = 1.0
# Serve's proxy answers 500/502 or drops the connection when the router replica that took a
# request stops during a roll (measured: 3 of ~1,500 requests across four rolls): such a request is
# sent once more. The replica commits its log record before it answers, so a request whose
# answer was lost after that is logged twice, never not at all.
RETRIES, RETRY_AFTER_S = 1, 0.05


class DeploymentUnavailable(DomainError):
    code = "DEPLOYMENT_UNAVAILABLE"


class DeployedPredictions:
    def __init__(self, store: DeploymentStore, serve_url: str, *, timeout_s: float = 30.0, max_connections: int = 64) -> None:
        self.store, self.serve_url = store, serve_url.rstrip("/")
        self.timeout_s, self.max_connections = timeout_s, max_connections
        self._client: httpx.AsyncClient | None = None
        self._records: dict[tuple[str, str], tuple[float, DeploymentRecord]] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, trust_env=False,
                limits=httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections))
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def record(self, tenant_id: str, deployment_id: str) -> DeploymentRecord:
        import asyncio

        key = (tenant_id, deployment_id)
        cached = self._records.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < RECORD_TTL_S:
            return cached[1]
        record = await asyncio.to_thread(self.store.get, tenant_id, deployment_id)  # 404 for another tenant's
        if len(self._records) > 10_000:
            self._records.clear()
        self._records[key] = (now, record)
        return record

    async def answer(self, body: PredictionRequest, principal: Principal, request_id: str | None, *, explain: bool,
                     started: float) -> PredictionResponse:
        record = await self.record(principal.tenant_id, body.deployment_id or "")
        self._check(record, body)
        payload = {"rows": body.rows(), "request_id": request_id, "subject": principal.subject, "explain": explain}
        reply = await self._send(record, payload)
        if not reply.get("ok"):
            raise _refusal(reply.get("error") or {})
        single = body.single
        probabilities = reply.get("probabilities")
        confidence = reply.get("confidence")
        explanation = reply.get("explanation")
        return PredictionResponse(
            request_id=reply["request_id"], model_id=body.model_id, version=reply["version"],
            prediction=reply["prediction"],
            probabilities=probabilities if body.options.return_probabilities else None,
            confidence=(confidence[0] if single else confidence) if confidence else None,
            explanation=(explanation[0] if single else explanation) if explanation is not None else None,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            served_by={"path": "deployment", "deployment_id": record.deployment_id, "role": reply.get("role")},
        )

    @staticmethod
    def _check(record: DeploymentRecord, body: PredictionRequest) -> None:
        if record.model_id != body.model_id:
            raise InvalidRequest(f"deployment '{record.deployment_id}' serves model '{record.model_id}', not '{body.model_id}'",
                                 {"deployment_id": record.deployment_id, "model_id": record.model_id})
        served = [record.version] + ([record.canary["version"]] if record.canary else [])
        if body.version is not None and body.version not in served:
            raise InvalidRequest(f"deployment '{record.deployment_id}' serves version(s) {', '.join(served)}: send one of "
                                 "them or no version", {"deployment_id": record.deployment_id, "versions": served})
        if body.by_entity:
            raise InvalidRequest("predictions by entity are answered in process: send 'features' or 'instances' to a "
                                 "deployment, or leave deployment_id out", {"deployment_id": record.deployment_id})
        if record.status not in SERVING_STATUSES:
            raise DeploymentUnavailable(f"deployment '{record.deployment_id}' is {record.status}: it serves no predictions now",
                                        {"deployment_id": record.deployment_id, "status": record.status,
                                         "reason": record.reason})

    async def _send(self, record: DeploymentRecord, payload: dict[str, Any]) -> dict[str, Any]:
        import asyncio

        import httpx

        where = {"deployment_id": record.deployment_id}
        for attempt in range(1 + RETRIES):
            try:
                response = await self.client.post(self.serve_url + record.route_prefix, json=payload)
            except httpx.HTTPError as exc:
                if attempt < RETRIES:
                    await asyncio.sleep(RETRY_AFTER_S)
                    continue
                raise DeploymentUnavailable(f"Ray Serve did not answer for deployment '{record.deployment_id}' "
                                            f"({type(exc).__name__})", where) from None
            if response.status_code in (500, 502) and attempt < RETRIES:  # a router replica stopping mid-roll
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            break
        if response.status_code != 200:
            reason = "overloaded: its queue is full, retry" if response.status_code == 503 else f"HTTP {response.status_code}"
            raise DeploymentUnavailable(f"Ray Serve could not answer for deployment '{record.deployment_id}': {reason}",
                                        {**where, "serve_status_code": response.status_code})
        try:
            reply = response.json()
        except ValueError:
            raise DeploymentUnavailable("Ray Serve answered something that is not JSON", where) from None
        if not isinstance(reply, dict):
            raise DeploymentUnavailable("Ray Serve answered something that is not a JSON object", where)
        return reply


def _refusal(error: dict[str, Any]) -> DomainError:
    """The replica's refusal as the same error the in-process path raises."""
    code = str(error.get("code") or "INVALID_REQUEST")
    refusal = DomainError(str(error.get("message") or "refused by the deployment"), error.get("details"))
    refusal.code = code if code in ("VALIDATION_ERROR", "INVALID_REQUEST") else "DEPLOYMENT_UNAVAILABLE"
    return refusal
