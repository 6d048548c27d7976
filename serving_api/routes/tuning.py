"""/api/v1/tuning: hyperparameter searches on Ray Tune, run as a Dagster asset."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError

from resources.errors import InvalidRequest
from resources.job_specs import TrainingSetConfig, TuningConfig, run_config
from resources.search_space import validate_search_space, validate_tuning
from serving_api.deps import FeatureStoreDep, IdempotencyKey, JobServiceDep, JobsWriter
from serving_api.routes.training import check_data_config, data_spec, trainer_spec
from serving_api.schemas.jobs import DataConfig, JobAccepted, TrainingSettings, TuningCreate, TuningStatus
from serving_api.routes.job_routes import add_job_routes
from serving_api.services.job_views import tuning_status
from serving_api.services.jobs import JobService

router = APIRouter(prefix="/api/v1/tuning", tags=["tuning"])
JOB_NAME, KIND = "tuning", "tuning"


def _with_training_defaults(body: TuningCreate, service: JobService, tenant_id: str) -> TuningCreate:
    """Fill data_config, estimator, model_type and settings from the model's last training job."""
    if body.data_config is not None and body.model_type is not None:
        return body
    previous = next(iter(service.jobs.list(tenant_id, kind="training", model_name=body.model_name, limit=1)), None)
    if previous is None and body.data_config is None:
        raise InvalidRequest(
            "data_config is required: the model has no training job to take its data from",
            {"model_name": body.model_name},
        )
    earlier = previous.request if previous else {}
    try:  # an earlier request may lie beyond today's bounds (resources/limits.py)
        return body.model_copy(update={
            "data_config": body.data_config or DataConfig.model_validate(earlier["data_config"]),
            "model_type": body.model_type or earlier.get("model_type", "classification"),
            "estimator": body.estimator or earlier.get("estimator"),
            "training_config": body.training_config or (TrainingSettings.model_validate(earlier["training_config"]) if earlier.get("training_config") else None),
        })
    except ValidationError as exc:
        raise InvalidRequest("the model's last training job has settings beyond the current bounds; give data_config "
                             "and training_config", {"problems": [e["msg"] for e in exc.errors()]}) from None


@router.post("", status_code=202, response_model=JobAccepted)
def submit_tuning(
    body: TuningCreate, principal: JobsWriter, service: JobServiceDep, store: FeatureStoreDep,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    body = _with_training_defaults(body, service, principal.tenant_id)
    trainer = trainer_spec(body, settings=body.training_config or TrainingSettings(), hyperparameters=dict(body.hyperparameters))
    tuning = TuningConfig(
        context={"tenant_id": principal.tenant_id, "job_id": "validation"}, model_name=body.model_name, trainer=trainer,
        search_space=body.search_space, objective_metric=body.objective_metric, mode=body.mode,
        num_trials=body.num_trials, algorithm=body.algorithm, max_concurrent_trials=body.max_concurrent_trials,
    )
    validate_search_space(body.search_space, body.algorithm)  # structured details per parameter
    problems = validate_tuning(tuning)  # every value of the space within its bound (resources/limits.py)
    if problems:
        raise InvalidRequest("invalid tuning request: " + "; ".join(problems), {"problems": problems})
    check_data_config(service, store, principal.tenant_id, body.data_config)
    service.check_model_room(principal.tenant_id, body.model_name)
    data = data_spec(body)
    record = service.submit(
        principal, kind=KIND, job_name=JOB_NAME, model_name=body.model_name,
        request=body.model_dump(mode="json"), idempotency_key=idempotency_key,
        run_config=lambda ctx: run_config(
            training_set=TrainingSetConfig(context=ctx, data=data, model_type=body.model_type),
            tuned_model=tuning.model_copy(update={"context": ctx}),
        ),
    )
    return JobAccepted(job_id=record.job_id, status=record.status, model_name=record.model_name)


add_job_routes(router, kind=KIND, view=tuning_status, model=TuningStatus)
