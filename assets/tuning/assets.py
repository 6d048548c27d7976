"""Tuning asset: a Ray Tune search over a search space; the best model is registered."""


import tempfile
from dataclasses import asdict

import dagster as dg

from assets.job_runs import job_of_run
from assets.training.assets import FitRequest, FitSystems, _fail, fit_and_register, output_metadata
from assets.training.training_data import TrainingData
from resources.dagster_resources import ModelRegistry, RayCluster, StateStore
from resources.errors import DomainError
from resources.jobs.records import JobStore
from resources.jobs.search_space import grid_size
from resources.jobs.specs import TuningConfig


@dg.asset(group_name="tuning", description="Best model of a hyperparameter search on Ray Tune, registered as a new version")
def tuned_model(
    context: dg.AssetExecutionContext, config: TuningConfig, training_set: TrainingData, registry: ModelRegistry,
    ray_cluster: RayCluster, state: StateStore,
) -> dg.Output[dict]:
    from assets.tuning.tune_run import run_tuning

    jobs = JobStore(state)
    ctx = job_of_run(config.context, context, jobs)
    trials: list[dict] = []
    summary: dict = {}

    total = grid_size(config.search_space) if config.algorithm == "grid" else config.num_trials

    def on_trial_done(trial, done: int) -> None:
        trials.append(asdict(trial))
        jobs.record_outcome(ctx.job_id, result={"trials_done": done, "trials_total": total, "trials": trials})

    def fit(progress):
        with tempfile.TemporaryDirectory(prefix="mlservice-tune-") as storage:
            outcome = run_tuning(config, training_set, batch_size=config.trainer.batch_size, storage_dir=storage,
                                 on_trial_done=on_trial_done)
        summary.update(best_config=outcome.best_config, best_metric=outcome.best_metric,
                       trials=[asdict(t) for t in outcome.trials])
        import mlflow

        mlflow.log_params({f"best.{k}": str(v)[:500] for k, v in outcome.best_config.items()})
        mlflow.log_metric(f"best_{config.objective_metric}", outcome.best_metric)
        jobs.record_outcome(ctx.job_id, result={**summary, "trials_done": len(outcome.trials)})
        return outcome.best_model

    params = {"objective_metric": config.objective_metric, "mode": config.mode, "num_trials": config.num_trials,
              "algorithm": config.algorithm, "max_concurrent_trials": config.max_concurrent_trials,
              "estimator": config.trainer.estimator or "default"}
    try:
        result = fit_and_register(
            FitRequest(ctx, config.model_name, config.trainer, training_set, params=params,
                       extra_tags={"mlservice.kind": "tuning"}, promote=config.promote),
            FitSystems(registry, ray_cluster, jobs), fit=fit,
        )
    except (DomainError, ValueError) as exc:
        raise _fail(str(getattr(exc, "message", exc)), jobs, ctx.job_id) from exc
    metadata = output_metadata(result, ctx)
    metadata.update(best_metric=float(summary["best_metric"]), trials=len(summary["trials"]),
                    best_config=dg.MetadataValue.json(summary["best_config"]))
    return dg.Output({**result, **summary}, metadata=metadata)
