"""Schedules: incremental materialization of every tenant's feature views (hourly by default)."""

import dagster as dg

from pipelines.jobs import feature_materialization_job
from resources.feature_job_specs import MaterializationConfig, materialization_run_config
from resources.feature_store import FeatureStoreResource
from resources.job_specs import JobContext

HOURLY = "0 * * * *"
SCHEDULE_NAME = "feature_materialization_hourly"


def build_feature_schedule(cron: str = HOURLY) -> dg.ScheduleDefinition:
    """One run per tenant with an applied feature store, each incremental up to the tick."""

    @dg.schedule(
        name=SCHEDULE_NAME, job=feature_materialization_job, cron_schedule=cron, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Incremental materialization of every tenant's feature views",
    )
    def feature_materialization_hourly(context: dg.ScheduleEvaluationContext, feature_store: FeatureStoreResource):
        tick = context.scheduled_execution_time
        requests = []
        for tenant in feature_store.tenants():
            config = MaterializationConfig(
                context=JobContext(tenant_id=tenant, job_id=f"schedule-{tenant}-{tick:%Y%m%dT%H%M}",
                                   requested_by=f"schedule:{SCHEDULE_NAME}"),
                incremental=True, end_date=tick.isoformat(),
            )
            requests.append(dg.RunRequest(
                run_key=f"{tenant}:{tick.isoformat()}", run_config=materialization_run_config(config),
                tags={"mlservice/tenant": tenant, "mlservice/kind": "materialization"},
            ))
        return requests or dg.SkipReason("no tenant has a feature store yet")

    return feature_materialization_hourly
