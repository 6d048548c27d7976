"""Run configuration of the platform's Dagster jobs: one definition for both sides.

The API validates a request, builds these objects and sends ``run_config(...)`` through
GraphQL; the assets declare them as their ``config`` type. A person launching the same job from
the Dagster UI fills in the same fields, within the same bounds (``resources/jobs/limits.py``).
"""


from typing import Any, Literal

import dagster as dg
from pydantic import Field

from resources.jobs.limits import (
    MAX_BATCH_SIZE,
    MAX_CONCURRENT_TRIALS,
    MAX_EPOCHS,
    MAX_KEEP_COLUMNS,
    MAX_SCORING_BATCH_SIZE,
    MAX_TRIALS,
    MAX_WORKERS,
)
from resources.vocabulary import DeploymentAction, ModelType, OnInvalid, Promote
from resources.vocabulary import TrainableFramework as Framework

TRAINING_JOB = "training"  # the Dagster job whose assets take TrainingSetConfig + TrainedModelConfig
TUNING_JOB = "tuning"  # TrainingSetConfig + TuningConfig
BATCH_SCORING_JOB = "batch_scoring"  # BatchScoringConfig
DEPLOY_JOB = "deploy_model"  # DeploymentConfig


class JobContext(dg.Config):
    """Who asked: every run carries its tenant and the API's job id."""

    tenant_id: str = Field(description="tenant that owns the data and the model")
    job_id: str = Field(default="", description="the API's job id (also a run tag); leave empty when launching from the "
                        "Dagster UI: the run registers itself as a job of the tenant")
    requested_by: str = Field(default="dagster-ui", description="subject of the token that submitted the job")


class DataSpec(dg.Config):
    train_path: str = Field(description="parquet or CSV: relative to the tenant's data area, file:// or s3://")
    validation_path: str | None = Field(default=None, description="held-out data; split from train when absent")
    target_column: str = Field(description="label column")
    feature_columns: list[str] | None = Field(default=None, description="default: every other column except ids")
    validation_fraction: float = Field(default=0.2, gt=0, lt=1, description="used when validation_path is absent")
    feature_service: str | None = Field(
        default=None,
        description="Feast feature service of the tenant (e.g. churn_v1): train_path (and validation_path) are then "
        "entity frames (join keys, event_timestamp, target) and the features come from the offline store by a "
        "point-in-time join; feature_columns default to the service's features",
    )
    seed: int = Field(default=42, description="split and model seed")


class TrainerSpec(dg.Config):
    framework: Framework = "sklearn"
    model_type: ModelType = "classification"
    estimator: str | None = Field(
        default=None,
        description="sklearn estimator (random_forest, gradient_boosting, logistic_regression, sgd, mlp, ...); "
        "pytorch trains a tabular MLP",
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    strategy: Literal["data_parallel", "single"] = "data_parallel"
    num_workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    use_gpu: bool = False
    epochs: int = Field(default=20, ge=1, le=MAX_EPOCHS)
    learning_rate: float = Field(default=0.001, gt=0)
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH_SIZE, description="mini-batch size of iterative trainers")
    early_stopping: bool = False
    patience: int = Field(default=5, ge=1)


class TrainingSetConfig(dg.Config):
    context: JobContext
    data: DataSpec
    model_type: ModelType = "classification"


class TrainedModelConfig(dg.Config):
    context: JobContext
    model_name: str
    trainer: TrainerSpec
    promote: Promote = "none"  # where the new version goes (a retraining policy sets it)


class TuningConfig(dg.Config):
    context: JobContext
    model_name: str
    promote: Promote = "none"  # where the new version goes (a retraining policy sets it)
    trainer: TrainerSpec = Field(description="fixed settings; search_space values override hyperparameters")
    search_space: dict[str, dict[str, Any]] = Field(
        description='{"param": {"type": "choice"|"randint"|"uniform"|"loguniform"|"quniform", ...}}'
    )
    objective_metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    num_trials: int = Field(default=10, ge=1, le=MAX_TRIALS)
    algorithm: Literal["bayesian", "random", "grid"] = "bayesian"
    max_concurrent_trials: int = Field(default=2, ge=1, le=MAX_CONCURRENT_TRIALS)


class BatchScoringConfig(dg.Config):
    """A batch scoring job: a parquet input scored by one resolved version into an output folder."""

    context: JobContext
    model_id: str
    version: str = Field(description="the semantic version scored (the API resolves a stage or the default first)")
    input_path: str = Field(description="parquet file or folder: relative to the tenant's data area, file:// or s3://")
    output_path: str = Field(description="output folder (created): relative, file:// or s3://")
    batch_size: int = Field(default=1000, ge=1, le=MAX_SCORING_BATCH_SIZE, description="rows per scored batch")
    keep_columns: list[str] | None = Field(
        default=None, max_length=MAX_KEEP_COLUMNS,
        description="input columns copied to the output; default every column that is not a model feature")
    on_invalid: OnInvalid = Field(default="fail", description="rows that do not fit the signature: fail the job, or "
                                                               "skip them into _rejected/ with the reason")
    overwrite: bool = Field(default=False, description="replace what the output folder holds")


class DeploymentConfig(dg.Config):
    """A deployment's desired state applied to Ray Serve (or its application deleted). The state
    itself is read from the platform's database when the run starts: a newer change than the one
    that launched the run is applied as it is then."""

    context: JobContext
    deployment_id: str = Field(description="the API's deployment id (dep-...)")
    action: DeploymentAction = Field(default="apply", description="apply the desired state, or delete the application")
    generation: int = Field(default=0, ge=0, description="the generation that launched the run (for its log)")


def run_config(**ops: dg.Config) -> dict[str, Any]:
    """``{"ops": {name: {"config": ...}}}`` for the given asset configs."""
    return {"ops": {name: {"config": config.model_dump()} for name, config in ops.items()}}
