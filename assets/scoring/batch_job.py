"""One batch scoring job, from its config to a committed output (the asset's body).

the version loaded once here through the model core (the actors receive it through the object
store) -> its paths and input checked as the API checks them (``check_batch_input``: parquet
footers only) -> the output planned -> Ray Data scores into staging, progress into the job record
-> commit (files + ``_SUCCESS``), or, on any failure or cancellation, the staging folder removed
and nothing visible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from assets.scoring.scorer import ScoringSpec
from resources.data.staged_output import output_columns
from resources.infra.state_db import utcnow

if TYPE_CHECKING:
    from resources.dagster_resources import DataAccessPolicy, ModelRegistry, RayCluster
    from resources.jobs.records import JobStore
    from resources.jobs.specs import BatchScoringConfig


def score_batch(config: BatchScoringConfig, policy: DataAccessPolicy, registry: ModelRegistry, ray_cluster: RayCluster,
                jobs: JobStore, log: Callable[[str], None] = lambda _message: None) -> dict[str, Any]:
    """``log``: where the phases and their times go (the run's Dagster log)."""
    from assets.scoring.pipeline import run_scoring
    from mlservice.inference.batch_inputs import check_batch_input
    from mlservice.inference.loader import load_version
    from resources.data.staged_output import commit, discard, plan_output
    from resources.data.storage import filesystem

    ctx = config.context
    started = time.perf_counter()
    model = load_version(registry, ctx.tenant_id, config.model_id, config.version)
    log(f"model {model.name} version {model.version} loaded in {time.perf_counter() - started:.1f} s "
        f"({'verified fast predictor' if model.matrix_fn is not None else 'DataFrame predictor'})")
    mark = time.perf_counter()
    checked = check_batch_input(policy, ctx.tenant_id, input_path=config.input_path, output_path=config.output_path,
                                overwrite=config.overwrite, keep_columns=config.keep_columns, features=model.features)
    rows, keep = checked.rows, checked.keep_columns
    log(f"input checked in {time.perf_counter() - mark:.1f} s: {rows:,} rows in {len(checked.files)} file(s), "
        f"{checked.bytes / 1e6:,.1f} MB uncompressed; kept columns: {', '.join(keep) or 'none'}")
    input_fs, _ = filesystem(checked.source, policy)
    plan = plan_output(checked.target, policy, ctx.job_id)
    jobs.record_outcome(ctx.job_id, result={"model_id": config.model_id, "version": model.version, "rows_total": rows,
                                            "rows_done": 0, "rows_rejected": 0, "output_path": config.output_path})

    first: list[tuple[float, int]] = []  # the first progress with rows done: the speed is measured from there

    def progress(done: int, rejected: int) -> None:
        now, total = time.perf_counter(), done + rejected
        if total and not first:
            first.append((now, total))
        speed = None
        if first and now - first[0][0] >= 1.0:
            speed = round((total - first[0][1]) / (now - first[0][0]), 1)
        jobs.record_outcome(ctx.job_id, result={"rows_done": total, "rows_rejected": rejected, "throughput_rows_per_s": speed})

    spec = ScoringSpec(keep_columns=tuple(keep), rows_per_call=config.batch_size, rejected_dir=plan.staged_rejected,
                       rejected_fs=plan.fs)
    mark = time.perf_counter()
    ray_cluster.connect()
    log(f"connected to Ray in {time.perf_counter() - mark:.1f} s")
    scoring_started = time.perf_counter()
    try:
        outcome = run_scoring(spec, model, checked.files, input_fs, plan, input_bytes=checked.bytes,
                              on_invalid=config.on_invalid, progress=progress, log=log)
        manifest = {
            "job_id": ctx.job_id, "tenant_id": ctx.tenant_id, "model_id": config.model_id, "model_version": model.version,
            "input_path": config.input_path, "rows": outcome.rows_done, "rejected_rows": outcome.rows_rejected,
            "columns": output_columns(keep, list(model.classes), model.model_type), "created_at": utcnow().isoformat(),
            "schema": [{"name": f.name, "type": str(f.type)} for f in outcome.schema or []],
        }
        mark = time.perf_counter()
        files_out = commit(plan, manifest, overwrite=config.overwrite)
    except BaseException:  # failures and cancellation (the run worker interrupted): nothing stays visible
        discard(plan)
        raise
    seconds = time.perf_counter() - started
    log(f"committed {len(files_out)} file(s) in {time.perf_counter() - mark:.1f} s")
    startup = None if outcome.startup_seconds is None else scoring_started - started + outcome.startup_seconds
    result = {
        "rows_done": outcome.rows_done + outcome.rows_rejected, "rows_scored": outcome.rows_done,
        "rows_rejected": outcome.rows_rejected, "files": files_out, "seconds": round(seconds, 3),
        # start-up: the model loaded, the input checked, Ray Data and its actors started, the first rows written
        "startup_seconds": None if startup is None else round(startup, 3),
        "first_rows_at": None if startup is None else (utcnow() - timedelta(seconds=seconds - startup)).isoformat(),
        "throughput_rows_per_s": round(rows / seconds, 1) if seconds else None,  # the whole run's
        "scoring_rows_per_s": None if outcome.steady_rows_per_s is None else round(outcome.steady_rows_per_s, 1),  # after start-up
    }
    jobs.record_outcome(ctx.job_id, result=result)
    return {**result, "model_id": config.model_id, "version": model.version, "rows_total": rows,
            "output_path": config.output_path}

