"""One batch scoring job, from its config to a committed output (the asset's body).

input (checked path, parquet files, footers: rows and schema) -> the version loaded once here
(its signature and classes; every actor loads it again) -> the output planned and free -> Ray
Data scores into staging, progress into the job record -> commit (files + ``_SUCCESS``), or, on
any failure or cancellation, the staging folder removed and nothing visible.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from assets.scoring.scorer import ScoringSpec
from resources.batch_output import kept_columns, output_columns
from resources.errors import InvalidRequest
from resources.state_db import utcnow

if TYPE_CHECKING:
    from resources.data_access import DataAccessPolicy
    from resources.job_specs import BatchScoringConfig
    from resources.jobs import JobStore
    from resources.ray_cluster import RayCluster
    from resources.registry import ModelRegistry


def input_schema(files: list[str], fs: Any) -> Any:
    import pyarrow.parquet as pq

    with fs.open_input_file(files[0]) as handle:
        return pq.ParquetFile(handle).schema_arrow


def score_batch(config: BatchScoringConfig, policy: DataAccessPolicy, registry: ModelRegistry, ray_cluster: RayCluster,
                jobs: JobStore) -> dict[str, Any]:
    from assets.scoring.pipeline import run_scoring
    from inference.batch_inputs import schema_problems
    from inference.loaded import load_version
    from resources.batch_output import check_output_free, commit, discard, plan_output
    from resources.storage import filesystem, parquet_files, parquet_rows

    ctx = config.context
    source = policy.resolve(ctx.tenant_id, config.input_path)
    try:
        files = parquet_files(source, policy)
    except FileNotFoundError:
        raise InvalidRequest("the input path holds no parquet file", {"input_path": config.input_path}) from None
    input_fs, _ = filesystem(source, policy)
    rows = parquet_rows(source, policy)
    schema = input_schema(files, input_fs)
    model = load_version(registry, ctx.tenant_id, config.model_id, config.version)
    problems = schema_problems(model.features, schema)
    if problems:
        raise InvalidRequest("the input does not fit the model's signature: " + "; ".join(problems), {"problems": problems})
    keep = kept_columns(config.keep_columns, list(schema.names), model.feature_names)
    plan = plan_output(policy.resolve(ctx.tenant_id, config.output_path), policy, ctx.job_id)
    check_output_free(plan, config.overwrite)
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
        outcome = run_scoring(spec, model, files, input_fs, plan, rows=rows, batch_size=config.batch_size,
                              on_invalid=config.on_invalid, progress=progress)
        manifest = {
            "job_id": ctx.job_id, "tenant_id": ctx.tenant_id, "model_id": config.model_id, "model_version": model.version,
            "input_path": config.input_path, "rows": outcome.rows_done, "rejected_rows": outcome.rows_rejected,
            "columns": output_columns(keep, list(model.classes), model.model_type), "created_at": utcnow().isoformat(),
            "schema": _schema_of(plan),
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


def _schema_of(plan: Any) -> list[dict[str, str]]:
    import pyarrow.parquet as pq

    from resources.batch_output import staged_data_files

    for path in staged_data_files(plan):
        if path.endswith(".parquet") and "/_rejected/" not in path:
            with plan.fs.open_input_file(path) as handle:
                schema = pq.ParquetFile(handle).schema_arrow
            return [{"name": f.name, "type": str(f.type)} for f in schema]
    return []
