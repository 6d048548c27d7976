"""The Dagster side: one materialization asset for a tenant's views (lineage: feature sources ->
online features -> training set), the job and the hourly schedule resolve in Definitions, runs
execute in process, materialize every view or those named, and report each view to the job record."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from assets.features.assets import FEATURE_ASSETS, online_features
from pipelines.jobs import feature_materialization_job
from pipelines.schedules import SCHEDULE_NAME, build_feature_schedule
from resources.features.materialization_spec import FEATURE_MATERIALIZATION_JOB, MaterializationConfig, materialization_run_config
from resources.features.store import FeatureStoreResource
from resources.infra.state_db import StateStore
from resources.jobs.records import JobStore
from resources.jobs.specs import JobContext
from tests.features.conftest import END, REFS, seed_tenant

TENANT = "dagster-tenant"


@pytest.fixture
def env(tmp_path):
    seed_tenant(tmp_path, TENANT, n=100)
    return {"feature_store": FeatureStoreResource(data_dir=str(tmp_path)),
            "state": StateStore(database_url=f"sqlite:///{tmp_path / 'state.db'}")}


def _config(job_id: str, **values) -> MaterializationConfig:
    return MaterializationConfig(context=JobContext(tenant_id=TENANT, job_id=job_id, requested_by="tester"), **values)


def test_definitions_hold_the_job_schedule_and_lineage(definitions):
    defs = definitions  # built on a data directory in tmp_path, checked loadable (tests/conftest.py)
    repository = defs.get_repository_def()
    job = repository.get_job(FEATURE_MATERIALIZATION_JOB)
    assert {n.name for n in job.graph.nodes} == {"online_features"}
    schedule = repository.get_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == "0 * * * *" and schedule.job_name == FEATURE_MATERIALIZATION_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert isinstance(defs.resources["feature_store"], FeatureStoreResource)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("online_features")).parent_keys == {dg.AssetKey("feature_sources")}
    assert graph.get(dg.AssetKey("training_set")).parent_keys == {dg.AssetKey("online_features")}
    assert graph.get(dg.AssetKey("online_features")).group_name == "features"


def test_schedule_requests_one_incremental_run_per_tenant_with_a_store(env, tmp_path):
    schedule = build_feature_schedule()
    tick = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    with dg.build_schedule_context(resources=env, scheduled_execution_time=tick) as context:
        assert isinstance(schedule(context), dg.SkipReason)  # nothing applied yet
    env["feature_store"].apply(TENANT)
    seed_tenant(tmp_path, "data-but-no-store", n=20)
    with dg.build_schedule_context(resources=env, scheduled_execution_time=tick) as context:
        requests = schedule(context)
    assert [r.tags["mlservice/tenant"] for r in requests] == [TENANT]
    config = requests[0].run_config["ops"]["online_features"]["config"]
    assert config["incremental"] is True and config["context"]["tenant_id"] == TENANT
    assert config["end_date"] == tick.isoformat() and config["feature_views"] is None  # every view of the tenant
    # each run is an API job (GET /api/v1/jobs finds it by the run's tag); a re-evaluated tick reuses it
    job = JobStore(env["state"]).get(TENANT, config["context"]["job_id"])
    assert job.kind == "materialization" and job.submitted_by.startswith("schedule:") and job.status == "submitted"
    assert requests[0].tags["mlservice/job_id"] == job.job_id
    with dg.build_schedule_context(resources=env, scheduled_execution_time=tick) as context:
        again = schedule(context)
    assert again[0].run_config == requests[0].run_config
    assert len(JobStore(env["state"]).list(TENANT, kind="materialization")) == 1


def test_materialize_assets_in_process_and_report_to_the_job(env):
    record, _ = JobStore(env["state"]).create(TENANT, kind="materialization", request={}, submitted_by="tester")
    config = _config(record.job_id, incremental=False, end_date=END.isoformat())
    result = dg.materialize(FEATURE_ASSETS, resources=env, run_config=materialization_run_config(config))
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.asset_key == dg.AssetKey("online_features")
    metadata = event.materialization.metadata
    assert metadata["views"].value == "customer_features, order_features" and metadata["entities_written"].value == 200
    job = JobStore(env["state"]).get(TENANT, record.job_id)
    assert set(job.result) == {"customer_features", "order_features"}
    assert job.result["customer_features"]["entities"] == 100 and job.result["customer_features"]["incremental"] is False
    answers = env["feature_store"].online_features(TENANT, [*REFS, "order_features:return_rate"], [{"customer_id": "cust-5"}])
    assert answers[0]["status"] == "ok"


def test_job_executes_only_the_requested_views(env):
    defs = dg.Definitions(assets=FEATURE_ASSETS, jobs=[feature_materialization_job], resources=env)
    config = _config("mat-job-none", feature_views=["customer_features"], incremental=True, end_date=END.isoformat())
    result = defs.resolve_job_def(FEATURE_MATERIALIZATION_JOB).execute_in_process(run_config=materialization_run_config(config))
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["views"].value == "customer_features"
    store = env["feature_store"]
    assert store.online_features(TENANT, REFS, [{"customer_id": "cust-5"}])[0]["status"] == "ok"
    assert store.online_features(TENANT, ["order_features:return_rate"], [{"customer_id": "cust-5"}])[0]["status"] == "missing"


def test_a_tenant_without_feature_data_fails_the_run_and_the_job(env):
    record, _ = JobStore(env["state"]).create("empty-tenant", kind="materialization", request={}, submitted_by="tester")
    config = MaterializationConfig(context=JobContext(tenant_id="empty-tenant", job_id=record.job_id))
    result = dg.materialize([online_features], resources=env,
                            run_config=materialization_run_config(config), raise_on_error=False)
    assert not result.success
    error = JobStore(env["state"]).get("empty-tenant", record.job_id).error
    assert error and "no feature data" in error


def test_a_tenants_own_views_materialize_through_the_same_asset(env):
    """Views a tenant defined itself (two join keys, another timestamp column): the same job
    loads them, and lookups by both keys answer the newest values."""
    from tests.utils.products import applied_products

    tenant = "dagster-shop"
    frames = applied_products(env["feature_store"], tenant)
    record, _ = JobStore(env["state"]).create(tenant, kind="materialization", request={}, submitted_by="tester")
    config = MaterializationConfig(context=JobContext(tenant_id=tenant, job_id=record.job_id), incremental=False)
    result = dg.materialize(FEATURE_ASSETS, resources=env, run_config=materialization_run_config(config))
    assert result.success
    job = JobStore(env["state"]).get(tenant, record.job_id)
    assert set(job.result) == {"sales", "prices"} and job.result["sales"]["entities"] == 60  # 3 stores x 20 skus
    [row] = env["feature_store"].online_features(tenant, ["sales:units_7d", "prices:price"], [{"store_id": "s1", "sku": 4}])
    newest = frames["sales"][(frames["sales"]["store_id"] == "s1") & (frames["sales"]["sku"] == 4)].sort_values("observed_at").iloc[-1]
    assert row["status"] == "ok" and row["units_7d"] == newest["units_7d"]
