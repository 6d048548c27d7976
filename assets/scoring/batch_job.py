"""One batch scoring job, from its config to a committed output (the asset's body).

the version loaded once here through the model core (the actors receive it through the object
store) -> its paths and input checked as the API checks them (``check_batch_input``: parquet
footers only) -> the output planned -> Ray Data scores into staging, progress into the job record
-> commit (files + ``_SUCCESS``), or, on any failure or cancellation, the staging folder removed
and nothing visible.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from assets.scoring.scorer import ScoringSpec
from resources.batch_output import output_columns
from resources.state_db import utcnow

if TYPE_CHECKING:
    from resources.data_access import DataAccessPolicy
    from resources.job_specs import BatchScoringConfig
    from resources.jobs import JobStore
    from resources.ray_cluster import RayCluster
    from resources.registry import ModelRegistry


def score_batch(config: BatchScoringConfig, policy: DataAccessPolicy, registry: ModelRegistry, ray_cluster: RayCluster,
                jobs: JobStore) -> dict[str, Any]:
    from assets.scoring.pipeline import run_scoring
    from inference.batch_inputs import check_batch_input
    from inference.loaded import load_version
    from resources.batch_output import commit, discard, plan_output
    from resources.storage import filesystem

    ctx = config.context
    model = load_version(registry, ctx.tenant_id, config.model_id, config.version)
    checked = check_batch_input(policy, ctx.tenant_id, input_path=config.input_path, output_path=config.output_path,
                                overwrite=config.overwrite, keep_columns=config.keep_columns, features=model.features)
    rows, keep = checked.rows, checked.keep_columns
    input_fs, _ = filesystem(checked.source, policy)
    plan = plan_output(checked.target, policy, ctx.job_id)
    started = time.perf_counter()
    jobs.record_outcome(ctx.job_id, result={"model_id": config.model_id, "version": model.version, "rows_total": rows,
                                            "rows_done": 0, "rows_rejected": 0, "output_path": config.output_path})

    def progress(done: int, rejected: int) -> None:
        elapsed = time.perf_counter() - started
        jobs.record_outcome(ctx.job_id, result={"rows_done": done + rejected, "rows_rejected": rejected,
                                                "throughput_rows_per_s": round((done + rejected) / elapsed, 1) if elapsed else None})

    spec = ScoringSpec(keep_columns=tuple(keep), rejected_dir=plan.staged_rejected, rejected_fs=plan.fs)
    ray_cluster.connect()
    try:
        outcome = run_scoring(spec, model, checked.files, input_fs, plan, rows=rows, batch_size=config.batch_size,
                              on_invalid=config.on_invalid, progress=progress)
        manifest = {
            "job_id": ctx.job_id, "tenant_id": ctx.tenant_id, "model_id": config.model_id, "model_version": model.version,
            "input_path": config.input_path, "rows": outcome.rows_done, "rejected_rows": outcome.rows_rejected,
            "columns": output_columns(keep, list(model.classes), model.model_type), "created_at": utcnow().isoformat(),
            "schema": [{"name": f.name, "type": str(f.type)} for f in outcome.schema or []],
        }
        files_out = commit(plan, manifest, overwrite=config.overwrite)
    except BaseException:  # failures and cancellation (the run worker interrupted): nothing stays visible
        discard(plan)
        raise
    seconds = time.perf_counter() - started
    result = {
        "rows_done": outcome.rows_done + outcome.rows_rejected, "rows_scored": outcome.rows_done,
        "rows_rejected": outcome.rows_rejected, "files": files_out, "seconds": round(seconds, 3),
        "scoring_seconds": round(outcome.seconds, 3),
        "throughput_rows_per_s": round(rows / outcome.seconds, 1) if outcome.seconds else None,
    }
    jobs.record_outcome(ctx.job_id, result=result)
    return {**result, "model_id": config.model_id, "version": model.version, "rows_total": rows,
            "output_path": config.output_path}

