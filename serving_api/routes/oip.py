"""The Open Inference Protocol (KServe v2 REST) over the same models, auth and tenancy.

Models are addressed by their name within the caller's tenant; a version is a semantic version
or a stage. Inputs are one tensor per feature (shape [N] or [N, 1]) or a single [N, F] tensor
in the signature's feature order. Outputs: ``predict`` ([N]) and, for classifiers,
``predict_proba`` ([N, C]). JSON tensor data only (the binary extension answers 400).
Health needs no token; everything else does, with the same scopes as /api/v1.

Bounds as on /api/v1/predictions: at most ``MAX_INSTANCES`` rows per request (400), every row
beyond the first charged to the tenant's rate limit, large requests parsed, validated and
serialised in a worker thread. Metadata and ready (``models:read``) never load a model: ready is
whether the version is loaded in this process (production versions are loaded at start-up and
on promotion); metadata comes from the loaded model or from the artifact's registration record.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from resources.errors import InvalidRequest
from serving_api.deps import ModelsReader, PredictionServiceDep, PredictionsWriter
from serving_api.errors import request_id_of
from serving_api.inference.facts import ModelFacts, model_facts
from serving_api.inference.loaded import FLOAT_TYPES, INTEGER_TYPES
from serving_api.readiness import app_readiness
from serving_api.schemas.common import StrictModel
from serving_api.schemas.predictions import MAX_INSTANCES

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])
DATATYPE = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL", "string": "BYTES"}
OFFLOAD_BYTES = 16 << 10  # request bodies larger than this are parsed in a worker thread


class Tensor(BaseModel):
    name: str = Field(max_length=256)
    shape: list[int] = Field(max_length=2)
    datatype: str = Field(max_length=16)
    data: list[Any] = Field(max_length=1_000_000)
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(StrictModel):
    id: str | None = Field(default=None, max_length=128)
    parameters: dict[str, Any] | None = None
    inputs: list[Tensor] = Field(min_length=1, max_length=1000)
    outputs: list[RequestedOutput] | None = None


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> dict[str, bool]:
    components = await app_readiness(request.app.state).components()
    return {"ready": components.get("mlflow") == "ok"}  # serving needs the registry, not Dagster or Ray


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "mlservice", "version": "0.1.0", "extensions": []}


def _metadata(facts: ModelFacts) -> dict[str, Any]:
    classes = facts.classes
    inputs = [{"name": f.name, "datatype": DATATYPE.get(f.type, "FP64"), "shape": [-1]} for f in facts.features]
    outputs = [{"name": "predict", "datatype": "BYTES" if classes and isinstance(classes[0], str) else
                ("INT64" if facts.model_type == "classification" else "FP64"), "shape": [-1]}]
    if facts.model_type == "classification":
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {"name": facts.name, "versions": [facts.version], "platform": facts.framework, "inputs": inputs, "outputs": outputs}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, request: Request, principal: ModelsReader, version: str | None = None) -> dict[str, Any]:
    return _metadata(await model_facts(request.app.state.model_cache, principal.tenant_id, name, version))


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, request: Request, principal: ModelsReader, version: str | None = None) -> JSONResponse:
    """The status code is the answer (the protocol: 200 ready, a 4xx not ready): ready means
    loaded in this process; asking never loads it (a prediction does)."""
    facts = await model_facts(request.app.state.model_cache, principal.tenant_id, name, version, need_io=False)
    return JSONResponse({"name": facts.name, "ready": facts.loaded}, status_code=200 if facts.loaded else 400)


def _claimed_rows(body: InferenceRequest) -> int:
    """Rows the tensors hold, before any model is looked at (the cap and the rate charge)."""
    def rows(t: Tensor) -> int:
        if len(t.shape) < 2 or t.shape[1] < 1:
            return len(t.data)
        return max(t.shape[0], len(t.data) // t.shape[1])

    return max(rows(t) for t in body.inputs)


def _rows(body: InferenceRequest, features) -> list[dict[str, Any]]:
    names = [f.name for f in features]
    by_name = {t.name: t for t in body.inputs}
    if set(by_name) == set(names):
        counts = {len(t.data) for t in body.inputs}
        if len(counts) != 1:
            raise InvalidRequest("every input tensor must hold the same number of rows", {"inputs": {t.name: len(t.data) for t in body.inputs}})
        rows = [{n: by_name[n].data[i] for n in names} for i in range(counts.pop())]
    elif len(body.inputs) == 1 and len(body.inputs[0].shape) == 2 and body.inputs[0].shape[1] == len(names):
        tensor = body.inputs[0]
        n_rows, width = tensor.shape
        if n_rows * width != len(tensor.data):
            raise InvalidRequest("tensor data does not match its shape", {"shape": tensor.shape, "elements": len(tensor.data)})
        rows = [dict(zip(names, tensor.data[r * width:(r + 1) * width])) for r in range(n_rows)]
    else:
        raise InvalidRequest(
            "inputs must be one tensor per feature, or one [N, F] tensor in feature order",
            {"expected_inputs": names, "given": [t.name for t in body.inputs]},
        )
    for row in rows:  # integral floats for integer features, as clients send numpy floats
        for spec in features:
            value = row.get(spec.name)
            if spec.type in INTEGER_TYPES and isinstance(value, float) and value.is_integer():
                row[spec.name] = int(value)
            elif spec.type in FLOAT_TYPES and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 1023:
                row[spec.name] = float(value)
    return rows


def _parse(raw: bytes) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        raise InvalidRequest("request does not match the inference request schema", details) from None


def _outputs(wanted: list[str], metadata: dict[str, Any], outcome, n_rows: int) -> list[dict[str, Any]]:
    outputs = []
    for output in wanted:
        if output == "predict":
            outputs.append({"name": "predict", "datatype": metadata["predict"]["datatype"], "shape": [n_rows], "data": outcome.prediction})
        elif output == "predict_proba" and outcome.probabilities is not None:
            width = len(outcome.probabilities[0])
            flat = [p for row in outcome.probabilities for p in row]
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [n_rows, width], "data": flat})
        else:
            raise InvalidRequest(f"unknown output '{output}'", {"outputs": list(metadata)})
    return outputs


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(
    name: str, request: Request, principal: PredictionsWriter, service: PredictionServiceDep, version: str | None = None,
) -> dict[str, Any]:
    if request.headers.get("inference-header-content-length"):
        raise InvalidRequest("the binary tensor extension is not supported: send JSON tensor data")
    started = time.perf_counter()
    raw = await request.body()
    body = _parse(raw) if len(raw) <= OFFLOAD_BYTES else await service.off_loop(_parse, raw)
    n_rows = _claimed_rows(body)
    if not 1 <= n_rows <= MAX_INSTANCES:
        raise InvalidRequest(f"an inference request holds 1 to {MAX_INSTANCES} rows; this one holds {n_rows}",
                             {"rows": n_rows, "max_rows": MAX_INSTANCES})
    tenant_id = principal.tenant_id
    service.charge_rows(tenant_id, n_rows)
    cache = request.app.state.model_cache
    model_id, model_name = await cache.model_id_for_name(tenant_id, name)
    model = (await cache.get(tenant_id, model_id, version)).model
    rows = await service.offload(n_rows, _rows, body, model.features)
    outcome = await service.predict_rows(tenant_id, model_id, model.version, rows)
    facts = ModelFacts(model_id, model_name, model.version, model.model_type, model.framework, model.features, model.classes, True)
    metadata = {o["name"]: o for o in _metadata(facts)["outputs"]}
    wanted = [o.name for o in body.outputs] if body.outputs else list(metadata)
    outputs = await service.offload(len(rows), _outputs, wanted, metadata, outcome, len(rows))
    _, logged_id = await service.log_prediction(
        request_id=request_id_of(request), tenant_id=tenant_id, subject=principal.subject, model_id=model_id,
        version=model.version, rows=rows, outputs={"prediction": outcome.prediction, "probabilities": outcome.probabilities},
        started=started,
    )
    answer = {"model_name": model_name, "model_version": model.version, "id": body.id or logged_id,
              "outputs": outputs, "parameters": {"request_id": logged_id}}
    if len(rows) <= service.offload_rows:
        return answer
    return await service.offload(len(rows), JSONResponse, answer)
