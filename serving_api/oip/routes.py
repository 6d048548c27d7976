"""The Open Inference Protocol (KServe v2 REST) over the same models, auth and tenancy.

Models are addressed by their name within the caller's tenant; a version is a semantic version
or a stage. Inputs are one tensor per feature (shape [N] or [N, 1]) or a single [N, F] tensor
in the signature's feature order. Outputs: ``predict`` ([N]) and, for classifiers,
``predict_proba`` ([N, C]). Tensor data as JSON or with the binary tensor data extension (the
default of ``tritonclient``), in the request and, when asked, in the answer (``serving_api/oip/tensors.py``).
Health needs no token; everything else does, with the same scopes as /api/v1.

Bounds as on /api/v1/predictions: at most ``MAX_INSTANCES`` rows per request (400), every row
beyond the first charged to the tenant's rate limit, large requests parsed, validated and
serialised in a worker thread. Metadata and ready (``models:read``) never load a model: ready is
whether the version is loaded in this process (production versions are loaded at start-up and
on promotion); metadata comes from the loaded model or from the artifact's registration record.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serving_api.deps import ModelCacheDep, ModelsReader, PredictionsWriter
from serving_api.errors import request_id_of
from serving_api.health.readiness import app_readiness
from serving_api.oip import tensors as oip
from serving_api.online.facts import ModelFacts, model_facts
from serving_api.openapi import errors
from serving_api.predictions.deps import PredictionServiceDep

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"], responses=errors(404, 422, 503))
OFFLOAD_BYTES = 16 << 10  # request bodies larger than this are parsed in a worker thread


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> dict[str, bool]:
    components = await app_readiness(request.app.state).components()
    return {"ready": components.get("mlflow") == "ok"}  # serving needs the registry, not Dagster or Ray


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "mlservice", "version": "0.1.0", "extensions": ["binary_tensor_data"]}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, principal: ModelsReader, cache: ModelCacheDep, version: str | None = None) -> dict[str, Any]:
    return oip.metadata(await model_facts(cache, principal.tenant_id, name, version))


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, principal: ModelsReader, cache: ModelCacheDep, version: str | None = None) -> JSONResponse:
    """The status code is the answer (the protocol: 200 ready, a 4xx not ready): ready means
    loaded in this process; asking never loads it (a prediction does)."""
    facts = await model_facts(cache, principal.tenant_id, name, version, need_io=False)
    return JSONResponse({"name": facts.name, "ready": facts.loaded}, status_code=200 if facts.loaded else 400)


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(
    name: str, request: Request, principal: PredictionsWriter, service: PredictionServiceDep, cache: ModelCacheDep,
    version: str | None = None,
) -> Any:
    started = time.perf_counter()
    raw = await request.body()
    binary_header = request.headers.get("inference-header-content-length")
    if binary_header is not None:
        parse = functools.partial(oip.parse_binary_request, length=oip.header_length(binary_header))
    else:
        parse = oip.parse_request
    body = parse(raw) if len(raw) <= OFFLOAD_BYTES else await service.off_loop(parse, raw)
    oip.check_data(body)
    n_rows = oip.claimed_rows(body)
    tenant_id = principal.tenant_id
    service.charge_rows(tenant_id, n_rows)
    model_id, model_name = await cache.model_id_for_name(tenant_id, name)
    request.state.model_id = model_id  # a refusal's audit record names the model (monitoring counts it)
    model = (await cache.get(tenant_id, model_id, version)).model
    rows = await service.offload(n_rows, oip.decode_rows, body, model.features)
    outcome = await service.predict_rows(tenant_id, model_id, model.version, rows)
    facts = ModelFacts(model_id, model_name, model.version, model.model_type, model.framework, model.features, model.classes, True)
    metadata = {o["name"]: o for o in oip.metadata(facts)["outputs"]}
    wanted = [o.name for o in body.outputs] if body.outputs else list(metadata)
    outputs = await service.offload(len(rows), oip.encode_outputs, wanted, metadata, outcome, len(rows))
    _, logged_id = await service.record(outcome.answer(model_id), request_id=request_id_of(request), tenant_id=tenant_id,
                                        subject=principal.subject, started=started)
    answer = {"model_name": model_name, "model_version": model.version, "id": body.id or logged_id,
              "outputs": outputs, "parameters": {"request_id": logged_id}}
    binary = oip.binary_outputs(body)
    if binary:
        content, length = await service.offload(len(rows), oip.binary_answer, answer, binary)
        return Response(content, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(length)})
    if len(rows) <= service.offload_rows:
        return answer
    return await service.offload(len(rows), JSONResponse, answer)
