"""/api/v1/ensembles: weighted ensembles of the tenant's models."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, Response

from serving_api.deps import ModelsReader, ModelsWriter, PredictionsWriter
from serving_api.ensembles.deps import EnsembleServiceDep
from serving_api.errors import request_id_of
from serving_api.openapi import errors
from serving_api.predictions.schemas import (
    EnsembleCreate,
    EnsemblePredictionResponse,
    EnsemblePublic,
    EnsemblesPublic,
    FeatureRows,
)

router = APIRouter(prefix="/api/v1/ensembles", tags=["ensembles"], responses=errors(404, 409, 422, 503))


def _public(record) -> EnsemblePublic:
    return EnsemblePublic.model_validate({**asdict(record), "models": record.members})


@router.post("", status_code=201, response_model=EnsemblePublic)
async def create_ensemble(body: EnsembleCreate, principal: ModelsWriter, service: EnsembleServiceDep) -> EnsemblePublic:
    return _public(await service.create(principal.tenant_id, principal.subject, body))


@router.get("", response_model=EnsemblesPublic)
def list_ensembles(principal: ModelsReader, service: EnsembleServiceDep) -> EnsemblesPublic:
    data = [_public(r) for r in service.store.list(principal.tenant_id)]
    return EnsemblesPublic(data=data, count=len(data))


@router.get("/{ensemble_id}", response_model=EnsemblePublic)
def get_ensemble(ensemble_id: str, principal: ModelsReader, service: EnsembleServiceDep) -> EnsemblePublic:
    return _public(service.store.get(principal.tenant_id, ensemble_id))


@router.delete("/{ensemble_id}", status_code=204)
def delete_ensemble(ensemble_id: str, principal: ModelsWriter, service: EnsembleServiceDep) -> Response:
    service.store.delete(principal.tenant_id, ensemble_id)
    return Response(status_code=204)


@router.post("/{ensemble_id}/predict", response_model=EnsemblePredictionResponse)
async def predict_ensemble(
    ensemble_id: str, body: FeatureRows, request: Request, principal: PredictionsWriter, service: EnsembleServiceDep,
) -> EnsemblePredictionResponse:
    return await service.answer(ensemble_id, body, principal, request_id_of(request))
