"""What runs inside a deployment's Ray Serve applications: the replicas of a model version, each
application's ingress (``assets.deployments.serve_app``).

``ModelReplica`` loads its version through the model core (``inference.load_version``: the digest
check, the skops / torch rebuild, the verified fast predictor), checks each request's rows with
the online API's rules (``mlservice.inference.validation.model_inputs``), predicts the requests that arrive
together in one call (``@serve.batch`` -> ``mlservice.inference.joint_predict.predict_together``: one request's
bad row never fails another's), explains within the same cost bound as the API, and commits every
answered prediction to the platform's prediction log before it answers, with the same record
format (``resources.predictions.records``), so drift and performance reports see deployed
traffic. Its health check fails when the log's writer stopped.

A request (HTTP, behind Serve's proxy on loopback, from the API, which has authenticated the
caller, checked the tenant and chose the stable or the canary application):
``{"rows": [...], "request_id": str, "subject": str | None, "explain": bool}``. The answer:
``{"ok": true, "version", "role", "prediction", "probabilities", "confidence", "explanation",
"request_id", "latency_ms"}`` or ``{"ok": false, "error": {"code", "message", "details"}}``. The
tenant of the records is the replica's own, never the request's.

Imported only where Serve runs (the ``deploy_model`` run building the application, and the
replicas): ``ray.serve`` at the top.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ray import serve

from resources.deployments.serve_options import BATCH_WAIT_S, MAX_BATCH_SIZE
from resources.errors import DomainError

log = logging.getLogger("ray.serve")


def serve_grpc_on_node_address() -> None:
    """Ray Serve 2.60 starts an inter-deployment gRPC server in every replica, bound to ``[::]:0``:
    every interface of the host, whatever the cluster's node address (``replica.py``,
    ``_on_initialized``; the platform's launcher refuses to run when a process listens beyond
    loopback, and stops). Serve routes requests between deployments through Ray, not that server,
    unless ``RAY_SERVE_USE_GRPC_BY_DEFAULT`` is set. Called from the replica's constructor, which
    Serve runs before it starts the server: the server binds the node's own address instead
    (127.0.0.1 on the embedded platform, whose Ray node address is loopback)."""
    import ray
    from ray.serve._private import replica as serve_replica

    original = serve_replica.add_port_to_grpc_server
    if getattr(original, "mlservice_bound", False):
        return
    host = ray.util.get_node_ip_address()

    def on_node_address(server: Any, address: str) -> Any:
        if address.startswith("[::]:"):
            address = f"{host}:{address.rsplit(':', 1)[1]}"
        return original(server, address)

    on_node_address.mlservice_bound = True  # type: ignore[attr-defined]
    serve_replica.add_port_to_grpc_server = on_node_address


def _error(exc: DomainError) -> dict[str, Any]:
    return {"ok": False, "error": {"code": exc.code, "message": exc.message, "details": exc.details}}


class ModelReplica:
    def __init__(self, tenant_id: str, model_id: str, version: str, role: str, explain_max_cost: int) -> None:
        from mlservice.config.settings import Settings
        from mlservice.config.wiring import build_registry, build_state_store
        from mlservice.inference.loader import load_version
        from resources.predictions.log import PredictionLog
        from resources.predictions.records import PredictionRecorder

        serve_grpc_on_node_address()
        settings = Settings()
        state = build_state_store(settings)
        started = time.perf_counter()
        self.model = load_version(build_registry(settings, state), tenant_id, model_id, version)
        self.tenant_id, self.model_id, self.role, self.explain_max_cost = tenant_id, model_id, role, explain_max_cost
        self.log = PredictionLog(state, max_wait_s=0, max_payload_bytes=settings.prediction_log_max_payload_bytes)
        self.log.start()
        self.recorder = PredictionRecorder(self.log)
        log.info("model %s version %s (%s) loaded in %.1f s", model_id, self.model.version, role, time.perf_counter() - started)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve's ``user_config``: the fingerprint of the desired state this replica runs (read back
        from Serve's REST API to leave an unchanged application alone); nothing to change here."""
        self.fingerprint = (user_config or {}).get("fingerprint")

    async def __call__(self, request: Any) -> Any:
        """The HTTP ingress: the body parsed and the answer written with orjson (Serve's own encoding of
        a returned dict goes through ``jsonable_encoder``, measurably slower per request)."""
        import orjson
        from starlette.responses import Response

        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            reply = _error(DomainError("the body must be JSON"))
        else:
            reply = await self.answer(payload) if isinstance(payload, dict) else _error(DomainError("the body must be a JSON object"))
        return Response(orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    def check_health(self) -> None:
        thread = getattr(self.log, "_thread", None)
        if thread is None or not thread.is_alive():
            raise RuntimeError("the prediction log's writer is not running: answered predictions could not be recorded")

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _predict(self, parts: list[Any]) -> list[tuple[bool, Any]]:
        from mlservice.inference.joint_predict import predict_together

        answers, _ = await asyncio.to_thread(predict_together, self.model.batch_predict, parts)  # the loop stays free
        return answers

    async def answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        from mlservice.inference.bounds import input_error
        from mlservice.inference.explanations import check_cost, explain_row
        from mlservice.inference.validation import model_inputs
        from resources.predictions.records import Answer

        started = time.perf_counter()
        rows = payload.get("rows")
        if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
            return _error(DomainError("rows must be a non-empty list of objects"))
        explain = bool(payload.get("explain"))
        try:
            if explain:
                check_cost(self.model, len(rows), self.explain_max_cost)
            inputs = model_inputs(self.model, rows)
            ok, result = await self._predict(inputs)
            if not ok:
                raise input_error(self.model, inputs, result)
        except DomainError as exc:
            return _error(exc)
        predictions, probabilities = result
        prediction = [value.item() if hasattr(value, "item") else value for value in predictions]
        proba = confidence = None
        if probabilities is not None:
            proba = [[float(p) for p in row] for row in probabilities]
            confidence = [max(row) for row in proba]
        explanation = None
        if explain:
            explanation = [await asyncio.to_thread(explain_row, self.model, rows, index, self.explain_max_cost)
                           for index in range(len(rows))]
        answer = Answer(self.model_id, self.model.version, rows, prediction, proba, confidence)
        latency_ms, logged_id = await self.recorder.record(
            answer, request_id=str(payload.get("request_id") or f"serve-{time.time_ns()}")[:128], tenant_id=self.tenant_id,
            subject=payload.get("subject"), started=started)
        return {"ok": True, "version": self.model.version, "role": self.role, "prediction": prediction,
                "probabilities": proba, "confidence": confidence, "explanation": explanation, "request_id": logged_id,
                "latency_ms": latency_ms}

    def __del__(self) -> None:
        log_ = getattr(self, "log", None)
        if log_ is not None:
            log_.close(timeout=10)
