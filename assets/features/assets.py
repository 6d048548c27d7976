"""Feature assets: each tenant's feature sources and their materialization into its online store.

Lineage in the Dagster UI: ``feature_sources -> online_features -> training_set``. The views
are the tenant's own (``PUT /api/v1/features/definitions``; the demo tenant's are the churn
definitions), so they are not assets of their own: one run of ``online_features`` loads every
view of one tenant, or the views its config names, and reports each view's window to the job
record and to the asset's metadata.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.job_runs import job_of_run
from assets.training.assets import _fail
from resources.dagster_resources import FeatureStoreResource, StateStore
from resources.errors import DomainError
from resources.features.materialization_spec import MATERIALIZATION_ASSET, MaterializationConfig
from resources.jobs.records import JobStore

feature_sources = dg.AssetSpec(
    "feature_sources", group_name="features",
    description="Each tenant's feature source files (parquet in its data area or on s3://), as its feature "
                "definitions name them",
)


@dg.asset(name=MATERIALIZATION_ASSET, group_name="features", deps=[feature_sources],
          description="A tenant's feature views loaded from their sources into its online store (Feast "
                      "materialization): every view, or those the run names")
def online_features(
    context: dg.AssetExecutionContext, config: MaterializationConfig, feature_store: FeatureStoreResource,
    state: StateStore,
) -> Iterator[dg.Output[dict]]:
    jobs = JobStore(state)
    ctx = job_of_run(config.context, context, jobs)
    try:
        start, end = config.window()
        feature_store.ensure_applied(ctx.tenant_id)
        summary = feature_store.materialize(ctx.tenant_id, config.feature_views, incremental=config.incremental,
                                            start=start, end=end)
    except (DomainError, ValueError) as exc:
        raise _fail(str(getattr(exc, "message", exc)), jobs, ctx.job_id) from exc
    result = {view["name"]: {**view, "incremental": config.incremental} for view in summary["views"]}
    jobs.record_outcome(ctx.job_id, result=result)
    metadata: dict[str, Any] = {
        "tenant": ctx.tenant_id, "job_id": ctx.job_id, "incremental": config.incremental,
        "views": ", ".join(result), "window_end": summary["end"],
    }
    entities = [view["entities"] for view in summary["views"] if view["entities"] is not None]
    if entities:
        metadata["entities_written"] = sum(entities)
    for view in summary["views"]:
        context.log.info(f"{view['name']}: {view['start']} .. {view['end']}, {view['source_rows']} source row(s)")
    yield dg.Output(result, metadata=metadata)


FEATURE_ASSETS = [feature_sources, online_features]
