"""The retention job and its daily schedule: each tenant's prediction log, audit log, finished
jobs and idempotency keys past their retention (``settings.retention``, per tenant
``settings.retention_overrides``) are removed by ``resources.retention.apply_retention``.

The op reads the settings from the ``MLSERVICE_*`` environment at run time, as
``pipelines/resources.py`` does for the resources, and the ``state`` resource is the API's store.
"""

import dagster as dg

from mlservice.config.settings import Settings
from resources import vocabulary
from resources.dagster_resources import StateStore
from resources.retention import apply_retention

RETENTION_JOB = "retention"
SCHEDULE_NAME = "retention_daily"
DAILY = "17 3 * * *"  # settings.retention_cron's default


@dg.op(description="Delete each tenant's records past its retention, in batches")
def apply_retention_op(context: dg.OpExecutionContext, state: StateStore) -> dg.Output[dict]:
    counts = apply_retention(state, Settings())
    context.log.info(f"retention removed or cleared: {counts}")
    return dg.Output(counts, metadata={name: dg.MetadataValue.int(count) for name, count in counts.items()})


@dg.job(name=RETENTION_JOB, description="Apply the retention settings to the platform's own tables",
        tags={vocabulary.RUN_KIND: "retention"}, executor_def=dg.in_process_executor)
def retention_job() -> None:
    apply_retention_op()


def build_retention_schedule(cron: str = DAILY) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=SCHEDULE_NAME, job=retention_job, cron_schedule=cron, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily retention of prediction log, audit log, finished jobs and idempotency keys",
    )
