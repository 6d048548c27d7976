"""Response bodies of jobs: the generic view, training progress, tuning trials, batch progress."""

from __future__ import annotations

from typing import Any

from resources.jobs.estimators import ITERATIVE
from resources.jobs.records import JobRecord
from resources.jobs.search_space import ignored_search_space
from serving_api.batch.schemas import BatchStatus
from serving_api.jobs.schemas import JobPublic, JobsPublic, Progress, Resources, TrainingStatus, Trial, TuningStatus
from serving_api.jobs.service import JobService

PER_EPOCH_SETTINGS = ("epochs", "early_stopping", "patience")  # what a one-fit estimator has no use for


def jobs_page(service: JobService, tenant_id: str, *, limit: int, cursor: str | None, **filters: Any) -> JobsPublic:
    records = service.list(tenant_id, limit=limit, before=cursor, **filters)
    data = [JobPublic.model_validate(service.public(r)) for r in records]
    return JobsPublic(data=data, count=len(data), next_cursor=records[-1].job_id if len(records) == limit else None)


def _resources(service: JobService, record: JobRecord) -> Resources:
    """What the fit was given by Ray (written by the run when the fit ends), not the request's numbers."""
    allocated = record.result.get("resources") or {}
    return Resources(workers=allocated.get("workers"), gpus=allocated.get("gpus"), duration_minutes=service.duration_minutes(record))


def _iterative(request: dict[str, Any]) -> bool:
    return request.get("framework") == "pytorch" or request.get("estimator") in ITERATIVE


def _total_epochs(request: dict[str, Any], settings: dict[str, Any]) -> int:
    return int(settings.get("epochs", 1)) if _iterative(request) else 1


def ignored_settings(request: dict[str, Any]) -> dict[str, str]:
    """The per-epoch settings a one-fit estimator was given (other than their defaults), reported rather than dropped."""
    if _iterative(request):
        return {}
    from serving_api.jobs.schemas import TrainingSettings

    settings, defaults = request.get("training_config") or {}, TrainingSettings()
    estimator = request.get("estimator") or "random_forest"
    return {f"training_config.{name}": f"{estimator} fits in one pass: {name} has no effect"
            for name in PER_EPOCH_SETTINGS if name in settings and settings[name] != getattr(defaults, name)}


def training_status(service: JobService, record: JobRecord) -> TrainingStatus:
    request, result = record.request, record.result
    settings = request.get("training_config") or {}
    live = service.live_metrics(record)
    metric_keys = ("train_accuracy", "val_accuracy", "train_loss", "val_loss", "val_rmse", "val_r2")
    metrics = {k: float(live[k]) for k in metric_keys if k in live}
    metrics.update({k: float(v) for k, v in (result.get("metrics") or {}).items() if k in metric_keys})
    epoch = live.get("epoch")
    progress = Progress(
        current_epoch=int(result.get("epochs_run") or epoch) if (result.get("epochs_run") or epoch) else None,
        total_epochs=_total_epochs(request, settings), iterative=_iterative(request),
        current_loss=live.get("current_loss", live.get("train_loss")),
        best_loss=live.get("best_loss"),
        learning_rate=live.get("learning_rate", settings.get("learning_rate")),
    )
    return TrainingStatus(
        job_id=record.job_id, status=record.status, model_name=record.model_name, progress=progress, metrics=metrics,
        resources=_resources(service, record), model_id=result.get("model_id"),
        model_version=result.get("version"), error=record.reason, created_at=record.created_at,
        started_at=record.started_at, finished_at=record.finished_at, dagster_run_id=record.dagster_run_id,
        dagster_run_url=service.run_url(record), mlflow_run_url=result.get("mlflow_run_url"),
        ignored_settings=ignored_settings(request),
    )


def _trial(raw: dict[str, Any]) -> Trial:
    return Trial(trial_id=str(raw.get("trial_id")), config=raw.get("config") or {}, metric=raw.get("metric"),
                 status=str(raw.get("status")), epochs=raw.get("epochs"))


def tuning_status(service: JobService, record: JobRecord) -> TuningStatus:
    request, result = record.request, record.result
    trials = [_trial(t) for t in result.get("trials") or []]
    best = None
    if result.get("best_config") is not None:
        best = next((t for t in trials if t.config == result["best_config"] and t.metric == result.get("best_metric")), None)
        best = best or Trial(trial_id="best", config=result["best_config"], metric=result.get("best_metric"), status="completed")
    return TuningStatus(
        job_id=record.job_id, status=record.status, model_name=record.model_name,
        objective_metric=request.get("objective_metric", "val_accuracy"), mode=request.get("mode", "max"),
        trials_done=int(result.get("trials_done", len(trials))), trials_total=int(result.get("trials_total", request.get("num_trials", 0))),
        trials=trials, best_trial=best, model_id=result.get("model_id"), model_version=result.get("version"),
        error=record.reason, resources=_resources(service, record),
        created_at=record.created_at, started_at=record.started_at, finished_at=record.finished_at,
        dagster_run_id=record.dagster_run_id, dagster_run_url=service.run_url(record), mlflow_run_url=result.get("mlflow_run_url"),
        ignored_settings=ignored_search_space(request.get("search_space") or {}, request.get("estimator"),
                                              request.get("framework", "sklearn")),
    )


def batch_status(service: JobService, record: JobRecord) -> BatchStatus:
    from serving_api.batch.service import estimated_completion, rates

    request, result = record.request, record.result
    rows_total = result.get("rows_total", request.get("rows_total"))
    estimate = None
    if rows_total is not None:
        estimate = estimated_completion(record, int(rows_total), *rates(service, record.tenant_id))
    return BatchStatus(
        job_id=record.job_id, status=record.status, model_id=request.get("model_id", ""),
        version=result.get("version", request.get("resolved_version")), input_path=request.get("input_path", ""),
        output_path=request.get("output_path", ""), rows_total=rows_total, rows_done=int(result.get("rows_done") or 0),
        rows_rejected=int(result.get("rows_rejected") or 0), throughput_rows_per_s=result.get("throughput_rows_per_s"),
        scoring_rows_per_s=result.get("scoring_rows_per_s"), first_rows_at=result.get("first_rows_at"),
        estimated_completion=estimate, files=list(result.get("files") or []) if record.status == "succeeded" else [],
        error=record.reason, rejected_examples=list(result.get("rejected_examples") or []),
        created_at=record.created_at, started_at=record.started_at, finished_at=record.finished_at,
        dagster_run_id=record.dagster_run_id, dagster_run_url=service.run_url(record),
    )
