"""Training and tuning requests: from the API's schemas to the run configs of the Dagster jobs,
with every check that answers before anything is stored (bounds, data paths, the feature service,
the model and version quotas, a GPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from resources.errors import InvalidRequest
from resources.jobs.estimators import validate_trainer
from resources.jobs.search_space import validate_search_space, validate_tuning
from resources.jobs.specs import (
    TRAINING_JOB,
    TUNING_JOB,
    DataSpec,
    TrainedModelConfig,
    TrainerSpec,
    TrainingSetConfig,
    TuningConfig,
    run_config,
)
from serving_api.auth import Principal
from serving_api.jobs.schemas import DataConfig, TrainingCreate, TrainingSettings, TuningCreate
from serving_api.jobs.service import JobService

if TYPE_CHECKING:
    from resources.features.store import FeatureStoreResource
    from resources.jobs.records import JobRecord


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


def with_training_defaults(body: TuningCreate, service: JobService, tenant_id: str) -> TuningCreate:
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
    try:  # an earlier request may lie beyond today's bounds (resources/jobs/limits.py)
        return body.model_copy(update={
            "data_config": body.data_config or DataConfig.model_validate(earlier["data_config"]),
            "model_type": body.model_type or earlier.get("model_type", "classification"),
            "estimator": body.estimator or earlier.get("estimator"),
            "training_config": body.training_config or (
                TrainingSettings.model_validate(earlier["training_config"]) if earlier.get("training_config") else None),
        })
    except ValidationError as exc:
        raise InvalidRequest("the model's last training job has settings beyond the current bounds; give data_config "
                             "and training_config", {"problems": [e["msg"] for e in exc.errors()]}) from None


def submit_training(
    service: JobService, store: FeatureStoreResource, principal: Principal, body: TrainingCreate,
    idempotency_key: str | None,
) -> JobRecord:
    trainer = trainer_spec(body)
    problems = validate_trainer(trainer)  # hyperparameters within their bounds (resources/jobs/limits.py) among them
    if problems:
        raise InvalidRequest("invalid training request: " + "; ".join(problems), {"problems": problems})
    check_data_config(service, store, principal.tenant_id, body.data_config)
    service.check_model_room(principal.tenant_id, body.model_name)
    service.check_gpu(trainer.use_gpu)
    data = data_spec(body)
    record = service.submit(
        principal, kind="training", job_name=TRAINING_JOB, model_name=body.model_name,
        request=body.model_dump(mode="json"), idempotency_key=idempotency_key,
        run_config=lambda ctx: run_config(
            training_set=TrainingSetConfig(context=ctx, data=data, model_type=body.model_type),
            trained_model=TrainedModelConfig(context=ctx, model_name=body.model_name, trainer=trainer),
        ),
    )
    return record


def submit_tuning(
    service: JobService, store: FeatureStoreResource, principal: Principal, body: TuningCreate,
    idempotency_key: str | None,
) -> JobRecord:
    body = with_training_defaults(body, service, principal.tenant_id)
    trainer = trainer_spec(body, settings=body.training_config or TrainingSettings(), hyperparameters=dict(body.hyperparameters))
    tuning = TuningConfig(
        context={"tenant_id": principal.tenant_id, "job_id": "validation"}, model_name=body.model_name, trainer=trainer,
        search_space=body.search_space, objective_metric=body.objective_metric, mode=body.mode,
        num_trials=body.num_trials, algorithm=body.algorithm, max_concurrent_trials=body.max_concurrent_trials,
    )
    validate_search_space(body.search_space, body.algorithm)  # structured details per parameter
    problems = validate_tuning(tuning)  # every value of the space within its bound (resources/jobs/limits.py)
    if problems:
        raise InvalidRequest("invalid tuning request: " + "; ".join(problems), {"problems": problems})
    check_data_config(service, store, principal.tenant_id, body.data_config)
    service.check_model_room(principal.tenant_id, body.model_name)
    data = data_spec(body)
    record = service.submit(
        principal, kind="tuning", job_name=TUNING_JOB, model_name=body.model_name,
        request=body.model_dump(mode="json"), idempotency_key=idempotency_key,
        run_config=lambda ctx: run_config(
            training_set=TrainingSetConfig(context=ctx, data=data, model_type=body.model_type),
            tuned_model=tuning.model_copy(update={"context": ctx}),
        ),
    )
    return record
