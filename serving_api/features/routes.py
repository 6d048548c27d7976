"""/api/v1/features: the tenant's Feast feature store (online lookups, materialization jobs).

Lookups are synchronous Feast calls (about 0.2 ms for a few rows): plain ``def`` routes, run in
the threadpool, so the first call of a tenant (which opens its store) never blocks the loop.
Materialization is a job: a Dagster run of one asset per feature view, launched over GraphQL,
202 with the job id; ``GET /api/v1/jobs/{job_id}`` answers its status like every other job.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from resources.errors import InvalidRequest
from resources.features.definitions import FeatureDocument
from resources.features.materialization_spec import FEATURE_MATERIALIZATION_JOB, MaterializationConfig, materialization_run_config
from resources.features.store import utc
from serving_api.deps import FeaturesReader, FeaturesWriter, IdempotencyKey
from serving_api.features.deps import FeatureDefinitionsDep, FeatureStoreDep
from serving_api.features.schemas import (
    ApplyResult,
    DefinitionsApplied,
    DefinitionsRevision,
    FeatureCatalog,
    MaterializeAccepted,
    MaterializeRequest,
    OnlineFeaturesRequest,
    OnlineFeaturesResponse,
)
from serving_api.jobs.deps import JobServiceDep
from serving_api.openapi import errors

router = APIRouter(prefix="/api/v1/features", tags=["features"], responses=errors(404, 409, 422, 503))
KIND = "materialization"


@router.post("/online", response_model=OnlineFeaturesResponse)
def online_features(body: OnlineFeaturesRequest, principal: FeaturesReader, store: FeatureStoreDep) -> OnlineFeaturesResponse:
    if body.feature_service is not None:
        results = store.online_features_for_service(principal.tenant_id, body.feature_service, body.entity_rows)
    else:
        results = store.online_features(principal.tenant_id, body.feature_refs, body.entity_rows)
    return OnlineFeaturesResponse(results=results)


@router.get("/views", response_model=FeatureCatalog)
def feature_catalog(principal: FeaturesReader, store: FeatureStoreDep) -> FeatureCatalog:
    return FeatureCatalog(feature_views=store.feature_views(principal.tenant_id),
                          feature_services=store.feature_services(principal.tenant_id))


@router.put("/definitions", response_model=DefinitionsApplied, responses=errors(400, 404, 409))
def put_definitions(
    document: FeatureDocument, principal: FeaturesWriter, service: FeatureDefinitionsDep,
    dry_run: Annotated[bool, Query(description="check and plan only: nothing is applied or stored")] = False,
) -> DefinitionsApplied:
    """The tenant's feature definitions as a whole (entities, sources, feature views, feature
    services): checked (400 listing every problem), planned against the current revision, refused
    when a production model's feature service would lose what it reads (409), applied with Feast
    and kept as the next revision."""
    return DefinitionsApplied(**service.put(principal.tenant_id, document, applied_by=principal.subject, dry_run=dry_run))


@router.get("/definitions", response_model=DefinitionsRevision, responses=errors(404))
def get_definitions(
    principal: FeaturesReader, service: FeatureDefinitionsDep,
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="default: the current revision")] = None,
) -> DefinitionsRevision:
    found, revisions = service.get(principal.tenant_id, revision)
    return DefinitionsRevision(revisions=revisions, **found.public())


@router.post("/apply", response_model=ApplyResult)
def apply_definitions(principal: FeaturesWriter, store: FeatureStoreDep) -> ApplyResult:
    """Register the demo's churn definitions over the tenant's churn files (idempotent), unless it
    has a feature store already; a tenant's own definitions go through PUT /definitions."""
    result = store.ensure_applied(principal.tenant_id)
    return ApplyResult(project=result["project"], feature_views=result["feature_views"],
                       feature_services=result["feature_services"], applied=result["applied"])


@router.post("/materialize", status_code=202, response_model=MaterializeAccepted)
def materialize(
    body: MaterializeRequest, principal: FeaturesWriter, store: FeatureStoreDep, service: JobServiceDep,
    idempotency_key: IdempotencyKey = None,
) -> MaterializeAccepted:
    # 404 without a store or for an unknown view, 400 for a bad window: before a job is stored
    views, start, _ = store.check_materialization(principal.tenant_id, body.feature_views, body.incremental,
                                                  body.start_date, body.end_date)
    if not views:  # definitions without a view: nothing to load, no run
        raise InvalidRequest("this tenant's feature definitions have no feature view to materialize",
                             {"tenant_id": principal.tenant_id})
    end = utc(body.end_date, None)  # unset: the run's own "now"
    record = service.submit(
        principal, kind=KIND, job_name=FEATURE_MATERIALIZATION_JOB, model_name=None,
        request=body.model_dump(mode="json"), idempotency_key=idempotency_key, needs_ray=False,
        run_config=lambda ctx: materialization_run_config(MaterializationConfig(
            context=ctx, feature_views=views, incremental=body.incremental,
            start_date=start.isoformat() if body.start_date else None, end_date=end.isoformat() if end else None,
        )),
    )
    return MaterializeAccepted(job_id=record.job_id, status=record.status, feature_views=views,
                               incremental=body.incremental)
