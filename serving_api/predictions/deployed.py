"""Predictions answered by a Ray Serve deployment: a request that names ``deployment_id``.

The API authenticates the caller, charges its rate limit and checks the deployment (the caller's
tenant's, of the model named, serving the version named if one is), picks the version (the
canary's application takes its ``traffic_percent`` once it runs, the stable's the rest; a
request that names the canary's version goes to it), then forwards the rows over HTTP to that
application's route on Serve's proxy (loopback). The replica checks the rows with the same rules
as the in-process path, predicts, explains within the same bound and commits the prediction-log
record before it answers; a refusal comes back with the same code and details (422
VALIDATION_ERROR naming the feature, 400 for an explanation past its bound). Serve unreachable,
overloaded (its queue bound) or the deployment not serving: 503 DEPLOYMENT_UNAVAILABLE, and nothing
was recorded.

What each version answered (requests, errors, latency) is counted here, per 10-second slot, and
written every ``FLUSH_S`` (``resources.deployments.traffic``): the reconciler judges a canary on it.
A request the canary failed is sent once to the stable version: a bad canary costs its users
latency, not errors, while its error rate is what rolls it back.

Why an explicit ``deployment_id`` rather than every request for a deployed model: a request
without a version means "production" to the in-process path, a deployment serves the version it
was given (and a canary); routing silently would change which version answers. The deployment's
``endpoint`` says what to send.

Deployment records are read once a second at most per deployment and API process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

import orjson

from resources.deployments.store import SERVING_STATUSES, DeploymentRecord, DeploymentStore
from resources.deployments.traffic import TrafficCounter
from resources.errors import DomainError, InvalidRequest
from serving_api.predictions.schemas import PredictionResponse

if TYPE_CHECKING:
    import aiohttp

    from serving_api.auth import Principal
    from serving_api.predictions.schemas import PredictionRequest

log = logging.getLogger("mlservice.deployed_predictions")
RECORD_TTL_S = 1.0
FLUSH_S = 5.0  # traffic counts are written this often (and when the API stops)
# Serve's proxy answers 500/502 or drops the connection when the replica that took a request stops
# during a roll: such a request is sent once more (to the stable version). The replica commits its
# log record before it answers, so a request whose answer was lost after that is logged twice,
# never not at all.
RETRIES, RETRY_AFTER_S = 1, 0.05
CLIENT_ERRORS = ("VALIDATION_ERROR", "INVALID_REQUEST")  # refusals of the client's input: not the version's errors


class DeploymentUnavailable(DomainError):
    code = "DEPLOYMENT_UNAVAILABLE"


class DeployedPredictions:
    def __init__(self, store: DeploymentStore, serve_url: str, *, timeout_s: float = 30.0, max_connections: int = 64,
                 traffic: Any = None) -> None:
        self.store, self.serve_url = store, serve_url.rstrip("/")
        self.timeout_s, self.max_connections = timeout_s, max_connections
        self._client: aiohttp.ClientSession | None = None
        self._records: dict[tuple[str, str], tuple[float, DeploymentRecord]] = {}
        self.counter = TrafficCounter()
        self._traffic = traffic  # a TrafficStore; built from the deployments' state store when first needed
        self._flusher: asyncio.Task | None = None

    @property
    def client(self) -> aiohttp.ClientSession:
        """One session of keep-alive connections to Serve's proxy (aiohttp: measured ~0.2 ms of CPU a
        request against ~1.6-2.2 ms for httpx's async client, which was a tenth of the path's cost)."""
        import aiohttp

        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections), trust_env=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), json_serialize=_dumps)
        return self._client

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        await self.flush()
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def traffic(self) -> Any:
        if self._traffic is None:
            from resources.deployments.traffic import TrafficStore

            self._traffic = TrafficStore(self.store.state)
        return self._traffic

    async def flush(self) -> None:
        counts = self.counter.drain()
        if not counts:
            return
        try:
            await asyncio.to_thread(self.traffic.add_all, counts)
        except Exception as exc:  # counts are best effort: predictions never wait on them
            log.warning("deployment traffic not recorded: %s", exc)

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush()

    def _count(self, record: DeploymentRecord, role: str, ok: bool, latency_ms: float) -> None:
        self.counter.add(record.deployment_id, role, record.version_of(role), ok, latency_ms)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def record(self, tenant_id: str, deployment_id: str) -> DeploymentRecord:
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
        reply = await self._send(record, _role(record, body.version), payload, fallback=body.version is None)
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
        if record.canary and body.version == record.canary["version"] and not record.canary_serving:
            raise DeploymentUnavailable(f"the canary {body.version} of deployment '{record.deployment_id}' is not running yet",
                                        {"deployment_id": record.deployment_id, "version": body.version})
        if record.status not in SERVING_STATUSES:
            raise DeploymentUnavailable(f"deployment '{record.deployment_id}' is {record.status}: it serves no predictions now",
                                        {"deployment_id": record.deployment_id, "status": record.status,
                                         "reason": record.reason})

    async def _send(self, record: DeploymentRecord, role: str, payload: dict[str, Any], *, fallback: bool) -> dict[str, Any]:
        """The reply of the ``role``'s application, each attempt counted for its version. A request
        the canary failed goes to the stable version (unless it asked for the canary's version:
        ``fallback`` False); one the stable version's replica dropped (a roll) is sent once more; a
        full queue (503) is backpressure and answered as such."""
        failure, details = "", {}
        for attempt in range(1 + RETRIES):
            started = time.perf_counter()
            reply, failure, details = await self._post(record, role, payload)
            ok = reply is not None and (bool(reply.get("ok")) or (reply.get("error") or {}).get("code") in CLIENT_ERRORS)
            self._count(record, role, ok, (time.perf_counter() - started) * 1000)
            if ok:
                return reply
            if role == "canary" and fallback:
                role = "stable"
                continue
            if reply is not None or details.get("serve_status_code") == 503 or attempt == RETRIES:
                break
            await asyncio.sleep(RETRY_AFTER_S)
        if reply is not None:
            return reply  # the replica's own error: answered as its refusal
        raise DeploymentUnavailable(failure, {"deployment_id": record.deployment_id, **details})

    async def _post(self, record: DeploymentRecord, role: str,
                    payload: dict[str, Any]) -> tuple[dict[str, Any] | None, str, dict[str, Any]]:
        import aiohttp

        name = f"deployment '{record.deployment_id}'"
        try:
            async with self.client.post(self.serve_url + record.route_of(role), json=payload) as response:
                status, body = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return None, f"Ray Serve did not answer for {name} ({type(exc).__name__})", {}
        if status != 200:
            reason = "overloaded: its queue is full, retry" if status == 503 else f"HTTP {status}"
            return None, f"Ray Serve could not answer for {name}: {reason}", {"serve_status_code": status}
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, "Ray Serve answered something that is not JSON", {}
        if not isinstance(reply, dict):
            return None, "Ray Serve answered something that is not a JSON object", {}
        return reply, "", {}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _role(record: DeploymentRecord, version: str | None) -> str:
    """The application that answers: the one of the version asked for, else the canary for its share
    of the requests once its application runs, else the stable one."""
    if record.canary and version is not None:
        return "canary" if version == record.canary["version"] else "stable"
    if record.canary_serving and random.random() * 100 < float(record.canary["traffic_percent"]):
        return "canary"
    return "stable"


def _refusal(error: dict[str, Any]) -> DomainError:
    """The replica's refusal as the same error the in-process path raises."""
    code = str(error.get("code") or "INVALID_REQUEST")
    refusal = DomainError(str(error.get("message") or "refused by the deployment"), error.get("details"))
    refusal.code = code if code in ("VALIDATION_ERROR", "INVALID_REQUEST") else "DEPLOYMENT_UNAVAILABLE"
    return refusal
