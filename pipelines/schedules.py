"""Schedules: incremental materialization of every tenant's feature views (hourly by default).

Each tick records one job per tenant in the API's job table (kind ``materialization``, submitted
by the schedule, the run key as idempotency key, so a re-evaluated tick reuses it): scheduled runs
answer at ``GET /api/v1/jobs`` like the ones the API launched.
"""

import dagster as dg

from mlservice.config.settings import Settings
from pipelines.jobs import feature_materialization_job
from resources.dagster_resources import FeatureStoreResource, StateStore
from resources.features.materialization_spec import MaterializationConfig, materialization_run_config
from resources.jobs.records import JobStore
from resources.jobs.specs import JobContext
from resources.vocabulary import job_run_tags

HOURLY = "0 * * * *"
SCHEDULE_NAME = "feature_materialization_hourly"


def build_feature_schedule(cron: str = HOURLY) -> dg.ScheduleDefinition:
    """One run per tenant with an applied feature store, each incremental up to the tick."""

    @dg.schedule(
        name=SCHEDULE_NAME, job=feature_materialization_job, cron_schedule=cron, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Incremental materialization of every tenant's feature views",
    )
    def feature_materialization_hourly(
        context: dg.ScheduleEvaluationContext, feature_store: FeatureStoreResource, state: StateStore,
    ):
        tick = context.scheduled_execution_time
        submitter = f"schedule:{SCHEDULE_NAME}"
        settings = Settings()  # dagster/max_runtime, as the API's runs
        requests = []
        for tenant in feature_store.tenants():
            run_key = f"{tenant}:{tick.isoformat()}"
            request = {"feature_views": None, "incremental": True, "start_date": None, "end_date": tick.isoformat()}
            record, _ = JobStore(state).create(tenant, kind="materialization", request=request, submitted_by=submitter,
                                               idempotency_key=run_key)
            config = MaterializationConfig(
                context=JobContext(tenant_id=tenant, job_id=record.job_id, requested_by=submitter),
                incremental=True, end_date=tick.isoformat(),
            )
            requests.append(dg.RunRequest(
                run_key=run_key, run_config=materialization_run_config(config),
                tags=job_run_tags(tenant, record.job_id, "materialization", settings.max_run_minutes_for(tenant)),
            ))
        return requests or dg.SkipReason("no tenant has a feature store yet")

    return feature_materialization_hourly
