"""/api/v1/training: training jobs run as Dagster assets on Ray."""

from __future__ import annotations

from fastapi import APIRouter

from resources.errors import InvalidRequest
from resources.estimators import validate_trainer
from resources.job_specs import DataSpec, TrainedModelConfig, TrainerSpec, TrainingSetConfig, run_config
from serving_api.deps import FeatureStoreDep, IdempotencyKey, JobServiceDep, JobsWriter
from serving_api.schemas.jobs import JobAccepted, TrainingCreate, TrainingStatus
from serving_api.routes.job_routes import add_job_routes
from serving_api.services.job_views import training_status
from serving_api.services.jobs import JobService

router = APIRouter(prefix="/api/v1/training", tags=["training"])
JOB_NAME, KIND = "training", "training"


def data_spec(body) -> DataSpec:
    data = body.data_config
    return DataSpec(
        train_path=data.train_path, validation_path=data.validation_path, target_column=data.target_column,
        feature_columns=data.feature_columns, validation_fraction=data.validation_fraction,
        feature_service=data.feature_service,
    )


def check_data_config(service: JobService, store, tenant_id: str, data) -> None:
    """Before anything is stored: paths inside the tenant's area and present (400), and the named
    feature service the tenant's (404)."""
    service.check_data_paths(tenant_id, data.train_path, data.validation_path)
    if data.feature_service is not None:
        store.service_refs(tenant_id, data.feature_service)


def trainer_spec(body, settings=None, hyperparameters=None) -> TrainerSpec:
    settings = settings or body.training_config
    return TrainerSpec(
        framework=body.framework, model_type=body.model_type, estimator=body.estimator,
        hyperparameters=hyperparameters if hyperparameters is not None else dict(body.hyperparameters),
        strategy=settings.strategy, num_workers=settings.num_workers, use_gpu=settings.use_gpu,
        epochs=settings.epochs, learning_rate=settings.learning_rate, batch_size=body.data_config.batch_size,
        early_stopping=settings.early_stopping, patience=settings.patience,
    )


@router.post("", status_code=202, response_model=JobAccepted)
def submit_training(
    body: TrainingCreate, principal: JobsWriter, service: JobServiceDep, store: FeatureStoreDep,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    trainer = trainer_spec(body)
    problems = validate_trainer(trainer)  # hyperparameters within their bounds (resources/limits.py) among them
    if problems:
        raise InvalidRequest("invalid training request: " + "; ".join(problems), {"problems": problems})
    check_data_config(service, store, principal.tenant_id, body.data_config)
    service.check_model_room(principal.tenant_id, body.model_name)
    service.check_gpu(trainer.use_gpu)
    data = data_spec(body)
    record = service.submit(
        principal, kind=KIND, job_name=JOB_NAME, model_name=body.model_name,
        request=body.model_dump(mode="json"), idempotency_key=idempotency_key,
        run_config=lambda ctx: run_config(
            training_set=TrainingSetConfig(context=ctx, data=data, model_type=body.model_type),
            trained_model=TrainedModelConfig(context=ctx, model_name=body.model_name, trainer=trainer),
        ),
    )
    return JobAccepted(job_id=record.job_id, status=record.status, model_name=record.model_name)


add_job_routes(router, kind=KIND, view=training_status, model=TrainingStatus)
