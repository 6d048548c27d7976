"""Training assets: the training set and the trained (registered) model.

Thin: config in, resources called, ``Output`` with the figures a person wants in the UI out.
The fit runs on Ray (scikit-learn fits as Ray tasks, torch with Ray Train); per-epoch progress
goes to the job's MLflow run, where the API reads it while the job runs.
"""


from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from assets.job_runs import job_of_run
from assets.training.datasets import DataProblem, build_training_data
from assets.training.training_data import TrainingData
from resources.dagster_resources import DataAccessPolicy, FeatureStoreResource, ModelRegistry, RayCluster, StateStore
from resources.errors import DomainError
from resources.features.materialization_spec import MATERIALIZATION_ASSET
from resources.jobs.records import JobStore
from resources.jobs.specs import JobContext, TrainedModelConfig, TrainerSpec, TrainingSetConfig
from resources.vocabulary import FINAL_METRIC_PREFIX, T_FEATURE_SERVICE, T_JOB_ID, T_TENANT


def _fail(message: str, jobs: JobStore | None = None, job_id: str | None = None) -> dg.Failure:
    if jobs is not None and job_id is not None:
        jobs.record_outcome(job_id, error=message)
    return dg.Failure(description=message, allow_retries=False)


@dg.asset(
    group_name="training",
    description="Features and labels of a training job, split into train and validation (from files, or from the "
                "feature views by a point-in-time join when the job names a feature service)",
    # lineage in the UI: feature sources -> online features -> training set -> model
    deps=[dg.AssetKey(MATERIALIZATION_ASSET)],
)
def training_set(
    context: dg.AssetExecutionContext, config: TrainingSetConfig, data_access: DataAccessPolicy, state: StateStore,
    feature_store: FeatureStoreResource,
) -> dg.Output[TrainingData]:
    jobs = JobStore(state)
    job = job_of_run(config.context, context, jobs)
    try:
        data = build_training_data(config.data, config.model_type, job.tenant_id, data_access, feature_store)
    except (DataProblem, DomainError) as exc:
        raise _fail(str(getattr(exc, "message", exc)), jobs, job.job_id) from None
    metadata: dict[str, Any] = {
        "tenant": job.tenant_id,
        "job_id": job.job_id,
        "train_rows": len(data.x_train),
        "validation_rows": len(data.x_val),
        "features": ", ".join(data.feature_columns),
        "target": data.target_column,
    }
    if data.classes:
        metadata["classes"] = ", ".join(map(str, data.classes))
    if data.feature_service:
        metadata["feature_service"] = data.feature_service
    return dg.Output(data, metadata=metadata)


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass(frozen=True)
class FitRequest:
    """What one training or tuning run fits and registers: the job, the model it adds a version to,
    the trainer and its data, the parameters logged to MLflow, extra run tags and the promotion
    a retraining policy chose."""

    context: JobContext
    model_name: str
    trainer: TrainerSpec
    data: TrainingData
    params: dict[str, Any]
    extra_tags: dict[str, str] = field(default_factory=dict)
    promote: str = "none"


@dataclass(frozen=True)
class FitSystems:
    """The systems a fit reports to: the registry (MLflow), the Ray cluster and the job records."""

    registry: ModelRegistry
    ray_cluster: RayCluster
    jobs: JobStore


def fit_and_register(request: FitRequest, systems: FitSystems, fit: Callable[[Any], Any]) -> dict[str, Any]:
    """Open the job's MLflow run, run ``fit(progress) -> FitOutcome`` on Ray, log the model and
    register it as a new development version of the tenant's model. Shared by training and tuning."""
    import mlflow

    from assets.training.model_logging import log_fitted_model
    from assets.training.progress import MlflowProgress
    from mlservice.monitoring.reference import log_reference

    context, model_name, trainer, data = request.context, request.model_name, request.trainer, request.data
    registry, jobs = systems.registry, systems.jobs
    systems.ray_cluster.connect()
    experiment_id = registry.ensure_experiment(context.tenant_id, model_name)
    mlflow.set_tracking_uri(registry.tracking_uri)
    tags = {T_TENANT: context.tenant_id, T_JOB_ID: context.job_id, **request.extra_tags}
    if data.feature_service:
        tags[T_FEATURE_SERVICE] = data.feature_service
    with mlflow.start_run(experiment_id=experiment_id, run_name=context.job_id, tags=tags) as run:
        run_id = run.info.run_id
        jobs.record_outcome(context.job_id, result={"mlflow_run_id": run_id, "mlflow_experiment_id": experiment_id})
        mlflow.log_params({k: str(v)[:500] for k, v in request.params.items()})
        outcome = fit(MlflowProgress(registry.tracking_uri, run_id))
        mlflow.log_metrics({f"{FINAL_METRIC_PREFIX}{k}": v for k, v in outcome.metrics.items()})
        mlflow.log_metrics({"epochs_run": outcome.epochs_run, "best_epoch": outcome.best_epoch})
        log_fitted_model(outcome, data)
        log_reference(data.x_train)  # what drift reports of this version compare traffic against
    model = registry.find_by_name(context.tenant_id, model_name)
    if model is None:
        model = registry.create_model(
            context.tenant_id, name=model_name, model_type=data.model_type, framework=trainer.framework,
            actor=context.requested_by, description=f"trained by job {context.job_id}",
        )
    # the run's feature-service tag passes to the version: predictions by entity read it there
    version = registry.register_version(context.tenant_id, model.model_id, model_uri=run_id, actor=context.requested_by)
    result = {
        "model_id": model.model_id, "version": version.version, "metrics": outcome.metrics,
        "epochs_run": outcome.epochs_run, "best_epoch": outcome.best_epoch,
        "mlflow_run_url": mlflow_run_url(registry.tracking_uri, experiment_id, run_id),
    }
    if outcome.resources:
        result["resources"] = outcome.resources
    if data.feature_service:
        result["feature_service"] = data.feature_service
    if request.promote != "none":  # a retraining policy's choice (the retrain_on_drift sensor sets it)
        from assets.training.promotion import promote_version

        result["promotion"] = promote_version(registry, context.tenant_id, model.model_id, version.version, request.promote, data,
                                              context.requested_by)
    jobs.record_outcome(context.job_id, result=result)
    return result


def output_metadata(result: dict[str, Any], context: JobContext) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "tenant": context.tenant_id, "job_id": context.job_id, "model_id": result["model_id"],
        "version": result["version"], "epochs_run": result["epochs_run"],
    }
    metadata.update({k: float(v) for k, v in result["metrics"].items()})
    if result.get("mlflow_run_url"):
        metadata["mlflow_run"] = dg.MetadataValue.url(result["mlflow_run_url"])
    return metadata


@dg.asset(group_name="training", description="A model fitted on Ray, logged to MLflow and registered as a new version")
def trained_model(
    context: dg.AssetExecutionContext, config: TrainedModelConfig, training_set: TrainingData, registry: ModelRegistry,
    ray_cluster: RayCluster, state: StateStore,
) -> dg.Output[dict]:
    from assets.training.fitting import fit_on_ray
    from resources.jobs.estimators import validate_trainer

    jobs = JobStore(state)
    ctx, trainer = job_of_run(config.context, context, jobs), config.trainer
    problems = validate_trainer(trainer)
    if problems:
        raise _fail("; ".join(problems), jobs, ctx.job_id)
    batch_size = trainer.batch_size
    params = {"framework": trainer.framework, "estimator": trainer.estimator or "default", "num_workers": trainer.num_workers,
              "epochs": trainer.epochs, "learning_rate": trainer.learning_rate, "early_stopping": trainer.early_stopping,
              "patience": trainer.patience, "batch_size": batch_size, **trainer.hyperparameters}
    try:
        result = fit_and_register(
            FitRequest(ctx, config.model_name, trainer, training_set, params=params, promote=config.promote),
            FitSystems(registry, ray_cluster, jobs),
            fit=lambda progress: fit_on_ray(trainer, training_set, batch_size, progress),
        )
    except (DomainError, ValueError) as exc:
        raise _fail(str(getattr(exc, "message", exc)), jobs, ctx.job_id) from exc
    return dg.Output(result, metadata=output_metadata(result, ctx))
