"""The Open Inference Protocol (KServe v2 REST) over the same models, auth and tenancy.

Models are addressed by their name within the caller's tenant; a version is a semantic version
or a stage. Inputs are one tensor per feature (shape [N] or [N, 1]) or a single [N, F] tensor
in the signature's feature order. Outputs: ``predict`` ([N]) and, for classifiers,
``predict_proba`` ([N, C]). JSON tensor data only (the binary extension answers 400).
Health needs no token; everything else does, with the same scopes as /api/v1.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError

from resources.errors import InvalidRequest, ModelNotFound
from serving_api.deps import ModelsReader, PredictionServiceDep, PredictionsWriter, RegistryDep
from serving_api.errors import request_id_of
from serving_api.inference.loaded import FLOAT_TYPES, INTEGER_TYPES
from serving_api.readiness import check_dependencies
from serving_api.schemas.common import StrictModel

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])
DATATYPE = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL", "string": "BYTES"}


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
    components = await check_dependencies(request.app.state.settings, request.app.state.registry)
    return {"ready": components.get("mlflow") == "ok"}  # serving needs the registry, not Dagster or Ray


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "mlservice", "version": "0.1.0", "extensions": []}


async def _served(request: Request, registry, tenant_id: str, name: str, version: str | None):
    record = registry.find_by_name(tenant_id, name)
    if record is None:
        raise ModelNotFound(name)
    return record, await request.app.state.model_cache.get(tenant_id, record.model_id, version)


def _metadata(record, served) -> dict[str, Any]:
    model = served.model
    inputs = [{"name": f.name, "datatype": DATATYPE.get(f.type, "FP64"), "shape": [-1]} for f in model.features]
    outputs = [{"name": "predict", "datatype": "BYTES" if model.classes and isinstance(model.classes[0], str) else
                ("INT64" if model.model_type == "classification" else "FP64"), "shape": [-1]}]
    if model.model_type == "classification":
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes)]})
    return {"name": record.name, "versions": [model.version], "platform": model.framework, "inputs": inputs, "outputs": outputs}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, request: Request, principal: ModelsReader, registry: RegistryDep, version: str | None = None) -> dict[str, Any]:
    record, served = await _served(request, registry, principal.tenant_id, name, version)
    return _metadata(record, served)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, request: Request, principal: ModelsReader, registry: RegistryDep, version: str | None = None) -> dict[str, Any]:
    record, served = await _served(request, registry, principal.tenant_id, name, version)
    return {"name": record.name, "ready": True}


def _rows(body: InferenceRequest, features) -> list[dict[str, Any]]:
    names = [f.name for f in features]
    by_name = {t.name: t for t in body.inputs}
    if set(by_name) == set(names):
        counts = {len(t.data) for t in body.inputs}
        if len(counts) != 1:
            raise InvalidRequest("every input tensor must hold the same number of rows", {"inputs": {t.name: len(t.data) for t in body.inputs}})
        return [{n: by_name[n].data[i] for n in names} for i in range(counts.pop())]
    if len(body.inputs) == 1 and len(body.inputs[0].shape) == 2 and body.inputs[0].shape[1] == len(names):
        tensor = body.inputs[0]
        rows, width = tensor.shape
        if rows * width != len(tensor.data):
            raise InvalidRequest("tensor data does not match its shape", {"shape": tensor.shape, "elements": len(tensor.data)})
        return [dict(zip(names, tensor.data[r * width:(r + 1) * width])) for r in range(rows)]
    raise InvalidRequest(
        "inputs must be one tensor per feature, or one [N, F] tensor in feature order",
        {"expected_inputs": names, "given": [t.name for t in body.inputs]},
    )


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(
    name: str, request: Request, principal: PredictionsWriter, registry: RegistryDep, service: PredictionServiceDep,
    version: str | None = None,
) -> dict[str, Any]:
    if request.headers.get("inference-header-content-length"):
        raise InvalidRequest("the binary tensor extension is not supported: send JSON tensor data")
    started = time.perf_counter()
    try:
        body = InferenceRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        raise InvalidRequest("request does not match the inference request schema", details) from None
    record, served = await _served(request, registry, principal.tenant_id, name, version)
    rows = _rows(body, served.model.features)
    for row in rows:  # integral floats for integer features, as clients send numpy floats
        for spec in served.model.features:
            value = row.get(spec.name)
            if spec.type in INTEGER_TYPES and isinstance(value, float) and value.is_integer():
                row[spec.name] = int(value)
            elif spec.type in FLOAT_TYPES and isinstance(value, int) and not isinstance(value, bool):
                row[spec.name] = float(value)
    outcome = await service.predict_rows(principal.tenant_id, record.model_id, served.model.version, rows)
    metadata = {o["name"]: o for o in _metadata(record, served)["outputs"]}
    wanted = [o.name for o in body.outputs] if body.outputs else list(metadata)
    outputs = []
    for output in wanted:
        if output == "predict":
            outputs.append({"name": "predict", "datatype": metadata["predict"]["datatype"], "shape": [len(rows)], "data": outcome.prediction})
        elif output == "predict_proba" and outcome.probabilities is not None:
            width = len(outcome.probabilities[0])
            flat = [p for row in outcome.probabilities for p in row]
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [len(rows), width], "data": flat})
        else:
            raise InvalidRequest(f"unknown output '{output}'", {"outputs": list(metadata)})
    _, logged_id = await service.log_prediction(
        request_id=request_id_of(request), tenant_id=principal.tenant_id, subject=principal.subject, model_id=record.model_id,
        version=served.model.version, rows=rows, outputs={"prediction": outcome.prediction, "probabilities": outcome.probabilities},
        started=started,
    )
    return {"model_name": record.name, "model_version": served.model.version, "id": body.id or logged_id,
            "outputs": outputs, "parameters": {"request_id": logged_id}}

