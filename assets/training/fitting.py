"""Fit a ``TrainerSpec`` on ``TrainingData``: in this process (``fit_sklearn``) or on Ray (``fit_on_ray``).

Metrics (the same definitions for both frameworks, see ``evaluate``):
  classification: train_accuracy, val_accuracy, train_loss, val_loss (log loss over the known classes)
  regression:     train_loss, val_loss (MSE), val_rmse, val_r2
Per-epoch payloads (``on_epoch`` / progress.report / ``FitOutcome.history``) add
``current_loss`` (= train_loss), ``best_loss`` (lowest val_loss so far) and, where the estimator
has one, ``learning_rate``. ``best_epoch`` is the epoch with the lowest val_loss; the returned model
is that epoch's when ``trainer.early_stopping`` is on, else the last epoch's.
"""

from __future__ import annotations

import copy
import math
import types
from collections.abc import Callable

from assets.training.epochs import EpochRunner
from assets.training.outcome import FitOutcome, class_labels, evaluate, report_safely
from assets.training.progress import NullProgress
from resources.jobs.estimators import build_estimator, is_iterative, validate_trainer

OnEpoch = Callable[[int, dict[str, float]], None]


class GpuUnavailable(ValueError):
    """The trainer asks for a GPU the Ray cluster does not have."""


def epoch_payload(metrics: dict[str, float], best_loss: float, learning_rate: float | None) -> dict[str, float]:
    payload = {**metrics, "current_loss": metrics["train_loss"], "best_loss": best_loss}
    if learning_rate is not None:
        payload["learning_rate"] = float(learning_rate)
    return payload


def fit_sklearn(trainer, data, batch_size: int = 64, on_epoch: OnEpoch | None = None,
                n_jobs: int | None = None, seed: int | None = None) -> FitOutcome:
    """Fit in the current process. ``seed`` is the random_state default (hyperparameters win)."""
    on_epoch = on_epoch or (lambda epoch, payload: None)
    model = build_estimator(trainer, n_jobs=n_jobs, seed=seed)
    x_train, y_train = data.x_train[data.feature_columns], data.y_train
    if not is_iterative(trainer):
        model.fit(x_train, y_train)
        metrics = evaluate(model, data)
        payload = epoch_payload(metrics, metrics["val_loss"], final_learning_rate(model))
        on_epoch(1, payload)
        return FitOutcome(model, metrics, 1, 1, [{"epoch": 1, **payload}], "sklearn")

    classes = class_labels(data) if trainer.model_type == "classification" else None
    runner = EpochRunner(model, trainer, x_train, y_train, classes, batch_size, seed)
    best_loss, best_epoch, best_model, best_metrics, stale = math.inf, 0, None, None, 0
    history: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    epoch = 0
    for epoch in range(1, (runner.epochs or trainer.epochs) + 1):
        runner.run_epoch(epoch)
        metrics = evaluate(model, data)
        if metrics["val_loss"] < best_loss:
            best_loss, best_epoch, best_metrics, stale = metrics["val_loss"], epoch, metrics, 0
            if trainer.early_stopping:
                best_model = copy.deepcopy(model)
        else:
            stale += 1
        payload = epoch_payload(metrics, best_loss, runner.learning_rate)
        history.append({"epoch": epoch, **payload})
        on_epoch(epoch, payload)
        if trainer.early_stopping and stale >= trainer.patience:
            break
    if best_model is not None:  # early stopping: restore the best epoch's estimator
        model, metrics = best_model, best_metrics
    return FitOutcome(model, metrics, epoch, best_epoch or epoch, history, "sklearn")


def final_learning_rate(model) -> float | None:
    from resources.jobs.estimators import final_estimator

    value = final_estimator(model).get_params().get("learning_rate")
    return float(value) if isinstance(value, (int, float)) else None


def plain_trainer(trainer):
    """A picklable copy of the spec that does not need dagster to unpickle (for Ray workers)."""
    if hasattr(trainer, "model_dump"):
        return types.SimpleNamespace(**trainer.model_dump())
    return trainer


def _sklearn_task(trainer, data, batch_size: int, progress, n_jobs: int, seed: int | None) -> FitOutcome:
    return fit_sklearn(trainer, data, batch_size,
                       on_epoch=lambda epoch, payload: report_safely(progress, epoch, payload),
                       n_jobs=n_jobs, seed=seed)


def fit_on_ray(trainer, data, batch_size: int = 64, progress=None, seed: int | None = None) -> FitOutcome:
    """Fit on the Ray cluster the caller has already connected to (``ray.init``).

    sklearn: one Ray task with k = min(num_workers, CPUs free now) CPUs and ``n_jobs=k``.
    pytorch: Ray Train ``TorchTrainer`` (``assets.training.torch_model.fit_torch_on_ray``).
    Progress is reported from inside the task / rank-0 worker every epoch.
    """
    import ray

    from resources.infra.ray_tasks import wait_for

    progress = progress or NullProgress()
    resources = ray.cluster_resources()
    if trainer.use_gpu and resources.get("GPU", 0) < 1:
        raise GpuUnavailable("use_gpu is true but the Ray cluster has no GPU")
    problems = validate_trainer(trainer)
    if problems:
        raise ValueError("; ".join(problems))
    if trainer.framework == "pytorch":
        from assets.training.torch_model import fit_torch_on_ray

        return fit_torch_on_ray(trainer, data, batch_size, progress, seed=seed)
    from resources.infra.ray_capacity import workers_now

    cpus = workers_now(trainer.num_workers)  # the CPUs free now, not the total (others' replicas and jobs hold some)
    task = ray.remote(num_cpus=cpus, max_retries=0)(_sklearn_task)
    ref = task.remote(plain_trainer(trainer), ray.put(data), batch_size, progress, cpus, seed)
    outcome = wait_for(ref)
    outcome.resources = {"workers": cpus, "gpus": 0}  # one task of `cpus` CPUs, n_jobs=cpus
    return outcome
