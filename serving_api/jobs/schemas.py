"""Request and response bodies of training, tuning and the generic jobs API.

Bounds on what a job can cost come from one table (``resources/jobs/limits.py``); past one, the request
is 400 ``INVALID_REQUEST`` with the field and its bound in the details.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from resources.jobs.limits import MAX_BATCH_SIZE, MAX_CONCURRENT_TRIALS, MAX_EPOCHS, MAX_TRIALS, MAX_WORKERS
from resources.vocabulary import ModelType, TrainableFrameworkName
from serving_api.common_schemas import StrictModel
from serving_api.models.schemas import NAME_PATTERN

Scalar = str | int | float | bool | None


class DataConfig(StrictModel):
    train_path: str = Field(min_length=1, max_length=1024, description="relative to the tenant's data area, file:// or s3://")
    validation_path: str | None = Field(default=None, min_length=1, max_length=1024)
    target_column: str = Field(min_length=1, max_length=256)
    feature_columns: list[str] | None = Field(default=None, max_length=1000)
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH_SIZE)
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    feature_service: str | None = Field(
        default=None, max_length=128,
        description="Feast feature service (e.g. churn_v1): train_path is then an entity frame (join keys, "
                    "event_timestamp, target) and features come from a point-in-time join",
    )


class TrainingSettings(StrictModel):
    strategy: Literal["data_parallel", "single"] = "data_parallel"
    num_workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    use_gpu: bool = False
    epochs: int = Field(default=20, ge=1, le=MAX_EPOCHS)
    learning_rate: float = Field(default=0.001, gt=0, le=10)
    early_stopping: bool = False
    patience: int = Field(default=5, ge=1, le=1000)


class TrainingCreate(StrictModel):
    model_name: str = Field(pattern=NAME_PATTERN)
    framework: TrainableFrameworkName = "sklearn"
    model_type: ModelType = "classification"
    estimator: str | None = Field(default=None, max_length=64, description="sklearn estimator; default random_forest")
    data_config: DataConfig
    training_config: TrainingSettings = Field(default_factory=TrainingSettings)
    hyperparameters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, max_length=100)


class TuningCreate(StrictModel):
    model_name: str = Field(pattern=NAME_PATTERN)
    framework: Literal["sklearn"] = "sklearn"
    model_type: ModelType | None = None
    estimator: str | None = Field(default=None, max_length=64)
    data_config: DataConfig | None = Field(default=None, description="default: the data of the model's last training job")
    training_config: TrainingSettings | None = None
    hyperparameters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, max_length=100)
    search_space: dict[str, dict[str, Any]] = Field(min_length=1, max_length=50)
    objective_metric: str = Field(default="val_accuracy", max_length=64)
    mode: Literal["max", "min"] = "max"
    num_trials: int = Field(default=10, ge=1, le=MAX_TRIALS)
    algorithm: Literal["bayesian", "random", "grid"] = "bayesian"
    max_concurrent_trials: int = Field(default=2, ge=1, le=MAX_CONCURRENT_TRIALS)


class JobAccepted(BaseModel):
    job_id: str
    status: str
    model_name: str | None


class Progress(BaseModel):
    current_epoch: int | None = None
    total_epochs: int | None = None
    iterative: bool | None = Field(default=None, description="trains epoch by epoch; false: one fit (total_epochs 1)")
    current_loss: float | None = None
    best_loss: float | None = None
    learning_rate: float | None = None


class Resources(BaseModel):
    workers: int | None = Field(default=None, description="what Ray allocated (the fit task's CPUs, Ray Train's workers, "
                                "trials at once); null until the fit got them")
    gpus: int | None = Field(default=None, description="GPUs Ray allocated; null until the fit got them")
    duration_minutes: float | None


class JobPublic(BaseModel):
    job_id: str
    kind: str
    status: str
    model_name: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    dagster_run_id: str | None
    dagster_run_url: str | None
    error: str | None
    result: dict[str, Any] = Field(default_factory=dict)
    # the token's subject, or the schedule / sensor that submitted it (e.g. "sensor:retrain_on_drift")
    submitted_by: str | None = None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int
    next_cursor: str | None


class TrainingStatus(BaseModel):
    job_id: str
    status: str
    model_name: str | None
    progress: Progress
    metrics: dict[str, float]
    resources: Resources
    model_id: str | None = None
    model_version: str | None = None
    error: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dagster_run_id: str | None
    dagster_run_url: str | None
    mlflow_run_url: str | None = None
    ignored_settings: dict[str, str] = Field(default_factory=dict,
                                             description="training_config settings given that have no effect on this estimator, and why")


class Trial(BaseModel):
    trial_id: str
    config: dict[str, Any]
    metric: float | None
    status: str
    epochs: int | None = None


class TuningStatus(BaseModel):
    job_id: str
    status: str
    model_name: str | None
    objective_metric: str
    mode: str
    trials_done: int
    trials_total: int
    trials: list[Trial]
    best_trial: Trial | None
    model_id: str | None = None
    model_version: str | None = None
    error: str | None = None
    resources: Resources
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dagster_run_id: str | None
    dagster_run_url: str | None
    mlflow_run_url: str | None = None
    ignored_settings: dict[str, str] = Field(default_factory=dict,
                                             description="search space parameters with no effect on this estimator, and why")
