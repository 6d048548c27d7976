"""Feature assets: the source data of each feature view and its materialization.

Lineage in the Dagster UI: ``customer_source_data -> customer_features`` and
``order_source_data -> order_features`` (the tenant's parquet files, loaded from the offline
store into the online store). One asset per feature view; both take ``MaterializationConfig``,
apply the tenant's definitions when needed and report to the job record when the run has one.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.job_runs import job_of_run
from assets.training.assets import _fail
from resources.errors import DomainError
from resources.feature_job_specs import FEATURE_VIEWS, MaterializationConfig
from resources.feature_store import FeatureStoreResource
from resources.jobs import JobStore
from resources.state_db import StateStore

customer_source_data = dg.AssetSpec(
    "customer_source_data", group_name="features",
    description="Monthly customer snapshots per tenant: <data_dir>/tenants/<tenant>/features/customer_features.parquet",
)
order_source_data = dg.AssetSpec(
    "order_source_data", group_name="features",
    description="Monthly order-history snapshots per tenant: <data_dir>/tenants/<tenant>/features/order_features.parquet",
)


def materialize_view(
    context: dg.AssetExecutionContext, view: str, config: MaterializationConfig, feature_store: FeatureStoreResource,
    state: StateStore,
) -> Iterator[dg.Output[dict]]:
    jobs = JobStore(state)
    ctx = job_of_run(config.context, context, jobs)
    if config.feature_views is not None:
        unknown = sorted(set(config.feature_views) - set(FEATURE_VIEWS))
        if unknown:
            raise _fail(f"unknown feature view(s): {', '.join(unknown)}", jobs, ctx.job_id)
        if view not in config.feature_views:
            context.log.info(f"{view} not requested in this run: skipped")
            return
    try:
        start, end = config.window()
        feature_store.ensure_applied(ctx.tenant_id)
        summary = feature_store.materialize(ctx.tenant_id, [view], incremental=config.incremental, start=start, end=end)
    except (DomainError, ValueError) as exc:
        raise _fail(str(getattr(exc, "message", exc)), jobs, ctx.job_id) from exc
    done = summary["views"][0]
    jobs.record_outcome(ctx.job_id, result={view: {**done, "incremental": config.incremental}})
    metadata: dict[str, Any] = {
        "tenant": ctx.tenant_id, "job_id": ctx.job_id, "incremental": config.incremental,
        "window_start": done["start"], "window_end": done["end"],
    }
    if done["source_rows"] is not None:
        metadata.update(source_rows=done["source_rows"], entities_written=done["entities"])
    yield dg.Output(done, metadata=metadata)


@dg.asset(group_name="features", deps=[customer_source_data], output_required=False,
          description="customer_features loaded into the tenant's online store (Feast materialization)")
def customer_features(
    context: dg.AssetExecutionContext, config: MaterializationConfig, feature_store: FeatureStoreResource,
    state: StateStore,
) -> Iterator[dg.Output[dict]]:
    yield from materialize_view(context, "customer_features", config, feature_store, state)


@dg.asset(group_name="features", deps=[order_source_data], output_required=False,
          description="order_features loaded into the tenant's online store (Feast materialization)")
def order_features(
    context: dg.AssetExecutionContext, config: MaterializationConfig, feature_store: FeatureStoreResource,
    state: StateStore,
) -> Iterator[dg.Output[dict]]:
    yield from materialize_view(context, "order_features", config, feature_store, state)


FEATURE_ASSETS = [customer_source_data, order_source_data, customer_features, order_features]
