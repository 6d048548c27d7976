"""Hyperparameter tuning of scikit-learn trainers with Ray Tune.

``run_tuning`` runs one Tune experiment on the Ray cluster the caller connected to (``ray.init``
is the caller's job). Each trial is a 1-CPU function trainable that runs ``fit_sklearn`` and
reports its metrics once per epoch (``tune.report``), so ASHA can stop poor trials of iterative
estimators early. The best configuration is then refit once, in this (driver) process, on the same
data and seed, to give the model to register.

Decisions:
* "bayesian" is Optuna's TPE (``OptunaSearch``, seeded); "random" is Tune's seeded
  ``BasicVariantGenerator``; "grid" expands choice/randint to ``grid_search`` with
  ``num_samples=1``, so the grid size is the number of trials. ``num_trials`` is the budget: a grid
  larger than it is refused (``validate_tuning``), a smaller one runs once in full.
* Concurrency is enforced by the search algorithm (``ConcurrencyLimiter`` around Optuna,
  ``max_concurrent`` of ``BasicVariantGenerator``); ``TuneConfig.max_concurrent_trials`` stays unset
  because Tune would only log that it ignores it.
* How a trial's config becomes a trainer: ``trial_trainer`` (``search_space``), re-exported here.
* Trial statuses: "completed", "stopped_early" (ASHA stopped it before its last epoch), "error".
  The best trial is taken among completed ones (stopped ones only if none completed).

Ray, Optuna, dagster (``resources.jobs.specs``) and the trainer are imported inside functions:
importing this module is cheap, and trial workers never import dagster.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resources.errors import InvalidRequest
from resources.jobs.search_space import (  # noqa: F401  (validate_tuning, trial_trainer: re-exported)
    OBJECTIVE_METRICS,
    TUNABLE_TRAINER_FIELDS,
    _plain,
    _trial_values,
    to_tune_space,
    trial_trainer,
    validate_search_space,
    validate_tuning,
)

if TYPE_CHECKING:
    from assets.training.outcome import FitOutcome
    from assets.training.training_data import TrainingData
    from resources.jobs.specs import TuningConfig

log = logging.getLogger(__name__)


@dataclass
class TrialResult:
    trial_id: str
    config: dict  # the searched parameters only
    metric: float | None  # last reported value of the objective metric
    status: str  # "completed" | "stopped_early" (ASHA) | "error"; else Tune's, lower-cased ("pending")
    epochs: int  # epochs (reports) the trial ran


@dataclass
class TuningOutcome:
    best_config: dict
    best_metric: float
    trials: list[TrialResult] = field(default_factory=list)
    best_model: FitOutcome | None = None  # None when run with refit=False


def run_tuning(
    tuning: TuningConfig,
    data: TrainingData,
    *,
    batch_size: int | None = 64,
    storage_dir: str,
    on_trial_done: Callable[[TrialResult, int], Any] | None = None,
    name: str | None = None,
    seed: int = 42,
    refit: bool = True,
) -> TuningOutcome:
    """Run the search of ``tuning`` over ``data`` on the connected Ray cluster.

    ``batch_size`` applies to every trial unless the search space tunes ``batch_size`` (None: the
    trainer's). ``seed`` seeds the sampler and every fit. ``on_trial_done(trial, done_count)`` is
    called in this process as each trial ends; its errors are logged, never raised. The experiment's
    files go under ``storage_dir/name``. Raises ``InvalidRequest`` for a request that
    ``validate_search_space``/``validate_tuning`` refuse, ``RuntimeError`` when no trial reported the
    objective metric.
    """
    validate_search_space(tuning.search_space, tuning.algorithm)
    problems = validate_tuning(tuning)
    if problems:
        raise InvalidRequest("invalid tuning request: " + "; ".join(problems), {"problems": problems})

    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from resources.jobs.estimators import is_iterative

    trainer, limit = tuning.trainer, tuning.max_concurrent_trials
    num_samples = tuning.num_trials
    if tuning.algorithm == "bayesian":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        searcher = ConcurrencyLimiter(OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed)), max_concurrent=limit)
    elif tuning.algorithm == "random":
        searcher = BasicVariantGenerator(max_concurrent=limit, random_state=seed)
    else:
        searcher, num_samples = BasicVariantGenerator(max_concurrent=limit), 1  # each grid point once
    if is_iterative(trainer):
        # stop_last_trials=False: reaching max_t never cuts a trial, only the rung cut-offs do.
        max_t = max(_planned_epochs(trainer.model_dump(), epochs) for epochs in _epoch_bounds(tuning))
        scheduler = _recording_asha_class()(time_attr="training_iteration", grace_period=1, max_t=max(1, max_t),
                                            stop_last_trials=False)
    else:
        scheduler = FIFOScheduler()
    collector = _collector_class()(tuning.objective_metric, scheduler, trainer.model_dump(), on_trial_done)
    trainable = tune.with_resources(
        tune.with_parameters(_trial, fields=trainer.model_dump(), data=data, batch_size=batch_size, seed=seed),
        {"cpu": 1},
    )
    storage = storage_dir if "://" in storage_dir else os.path.abspath(storage_dir)
    # reuse_actors: a trial runs in the actor of a finished one (every trial asks for the same 1 CPU), not
    # in a new process that imports Ray, scikit-learn and the trainer again (2-3 s of CPU a trial on the 2-core
    # machine): tests/tuning/test_tune_run.py took 22 s instead of 36
    tuner = tune.Tuner(
        trainable,
        param_space=to_tune_space(tuning.search_space, tuning.algorithm),
        tune_config=tune.TuneConfig(metric=tuning.objective_metric, mode=tuning.mode, search_alg=searcher,
                                    scheduler=scheduler, num_samples=num_samples, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name=name or f"tune-{uuid.uuid4().hex[:12]}",
                                  verbose=0, callbacks=[collector]),
    )
    # Dagster stops a run with SIGINT; Tune's own handler would end the experiment "gracefully" and
    # this function would register the best trial of a stopped run. Without it the stop raises here.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    tuner.fit()
    trials = collector.final

    sign = 1 if tuning.mode == "max" else -1
    for wanted in (("completed",), ("completed", "stopped_early")):  # prefer trials that ran in full
        candidates = [t for t in trials if t.status in wanted and t.metric is not None]
        if candidates:
            break
    else:
        failed = [t.trial_id for t in trials if t.status == "error"]
        raise RuntimeError(f"no trial of {len(trials)} reported {tuning.objective_metric!r} (errored: {failed}); "
                           f"see the trial logs under {storage}")
    best = max(candidates, key=lambda t: sign * t.metric)
    best_model = None
    if refit:  # in this process: the data is already here, and the model is logged from here
        from assets.training.fitting import fit_sklearn

        spec = trial_trainer(trainer, best.config)
        best_model = fit_sklearn(spec, data, _batch(spec, best.config, batch_size), seed=seed)
    if best_model is not None:  # the trials ran at most `limit` at once, one CPU each, on the cluster's CPUs
        cpus = int(ray.cluster_resources().get("CPU", 1))
        best_model.resources = {"workers": max(1, min(tuning.max_concurrent_trials, cpus)), "gpus": 0}
    return TuningOutcome(dict(best.config), best.metric, trials, best_model)


def _trial(config: dict, fields: dict, data: TrainingData, batch_size: int | None, seed: int) -> None:
    """The function trainable: one fit on 1 CPU, one ``tune.report`` per epoch."""
    from ray import tune

    from assets.training.fitting import fit_sklearn

    spec = types.SimpleNamespace(**_trial_values(fields, config))
    reported = 0

    def on_epoch(epoch: int, metrics: dict) -> None:
        nonlocal reported
        reported += 1
        tune.report({**_numeric(metrics), "epoch": int(epoch)})

    outcome = fit_sklearn(spec, data, _batch(spec, config, batch_size), on_epoch=on_epoch, n_jobs=1, seed=seed)
    if not reported:
        tune.report({**_numeric(outcome.metrics), "epoch": int(outcome.epochs_run or 1)})


def _batch(spec, config: dict, batch_size: int | None) -> int:
    return int(spec.batch_size if batch_size is None or "batch_size" in config else batch_size)


def _numeric(metrics: dict) -> dict[str, float]:
    values = {str(k): _plain(v) for k, v in (metrics or {}).items()}
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _epoch_bounds(tuning: TuningConfig) -> list[int]:
    spec = tuning.search_space.get("epochs")
    if not spec:
        return [tuning.trainer.epochs]
    return [int(v) for v in spec["values"]] if spec["type"] == "choice" else [int(spec["max"])]


def _planned_epochs(fields: dict, epochs: int | None = None) -> int:
    """Epochs a trial runs in full (gradient_boosting: its n_estimators schedule)."""
    from resources.jobs.estimators import boosting_schedule, estimator_name

    epochs = int(epochs if epochs is not None else fields["epochs"])
    if estimator_name(types.SimpleNamespace(**fields)) == "gradient_boosting":
        return len(boosting_schedule(int(fields["hyperparameters"].get("n_estimators", 100)), epochs))
    return epochs


@functools.cache
def _recording_asha_class():
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        """ASHA that remembers the trials it stopped."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.stopped: set[str] = set()

        def on_trial_result(self, tune_controller, trial, result):
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP:
                self.stopped.add(trial.trial_id)
            return action

    return RecordingASHA


@functools.cache
def _collector_class():
    from ray.tune import Callback

    class TrialCollector(Callback):
        """Turns ended trials into ``TrialResult`` and hands them to the caller's sink (driver side)."""

        def __init__(self, metric: str, scheduler, fields: dict, sink):
            self.metric, self.scheduler, self.fields, self.sink = metric, scheduler, fields, sink
            self.done = 0
            self.final: list[TrialResult] = []

        def __getstate__(self):  # Tune pickles its configuration once: the sink need not be picklable
            return {**self.__dict__, "sink": None, "scheduler": None}

        def result_of(self, trial, ended: str | None = None) -> TrialResult:
            """``ended``: "complete"/"error" from the hooks, where ``trial.status`` is not final yet."""
            last = trial.last_result or {}
            metric = _plain(last.get(self.metric))
            metric = float(metric) if isinstance(metric, (int, float)) and math.isfinite(metric) else None
            epochs = int(last.get("training_iteration") or 0)
            config = {k: _plain(v) for k, v in (trial.config or {}).items()}
            status = str(trial.status).lower()
            if ended == "error" or trial.status == "ERROR":
                status = "error"
            elif (ended == "complete" or trial.status == "TERMINATED") and epochs > 0:
                planned = _planned_epochs(_trial_values(self.fields, config))
                stopped = trial.trial_id in getattr(self.scheduler, "stopped", ())
                status = "stopped_early" if stopped and epochs < planned else "completed"
            return TrialResult(trial.trial_id, config, metric, status, epochs)

        def _ended(self, trial, ended: str) -> None:
            self.done += 1
            if self.sink is not None:
                try:
                    self.sink(self.result_of(trial, ended), self.done)
                except Exception:  # progress must never end the search
                    log.warning("on_trial_done failed for trial %s", trial.trial_id, exc_info=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._ended(trial, "complete")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._ended(trial, "error")

        def on_experiment_end(self, trials, **info):
            self.final = [self.result_of(t) for t in trials]

    return TrialCollector
