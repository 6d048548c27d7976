"""Batch scoring as a Dagster asset: parquet in, scored parquet out, on Ray Data.

Thin: config in, ``score_batch`` called, ``Output`` with the figures a person wants in the UI
out. Downstream of the trained and tuned models in the lineage (a batch job scores one of their
versions).
"""

from typing import Any

import dagster as dg

from assets.job_runs import job_of_run
from resources.dagster_resources import DataAccessPolicy, ModelRegistry, RayCluster, StateStore
from resources.errors import DomainError
from resources.jobs.records import JobStore
from resources.jobs.specs import BatchScoringConfig


@dg.asset(
    group_name="scoring",
    description="A parquet input scored by one model version on Ray Data: kept columns, prediction, class "
                "probabilities and model_version, written all-or-nothing with a _SUCCESS manifest",
    deps=[dg.AssetKey("trained_model"), dg.AssetKey("tuned_model")],
)
def batch_predictions(
    context: dg.AssetExecutionContext, config: BatchScoringConfig, data_access: DataAccessPolicy, registry: ModelRegistry,
    ray_cluster: RayCluster, state: StateStore,
) -> dg.Output[dict]:
    from assets.scoring.batch_job import score_batch
    from assets.scoring.pipeline import RejectedRows

    jobs = JobStore(state)
    config = config.model_copy(update={"context": job_of_run(config.context, context, jobs)})
    job_id = config.context.job_id
    try:
        result = score_batch(config, data_access, registry, ray_cluster, jobs, log=context.log.info)
    except (DomainError, RejectedRows, OSError) as exc:
        message = str(getattr(exc, "message", exc))
        details: dict[str, Any] = {}
        if isinstance(exc, RejectedRows):
            details = {"rows_rejected": exc.count, "rejected_examples": exc.examples}
        jobs.record_outcome(job_id, error=message, result=details or None)
        raise dg.Failure(description=message, allow_retries=False) from exc
    metadata: dict[str, Any] = {
        "tenant": config.context.tenant_id, "job_id": job_id, "model_id": result["model_id"], "version": result["version"],
        "rows": result["rows_total"], "rows_rejected": result["rows_rejected"], "output_path": result["output_path"],
        "throughput_rows_per_s": result["throughput_rows_per_s"] or 0.0, "seconds": result["seconds"],
    }
    return dg.Output(result, metadata=metadata)
