"""Monitoring on the Dagster side: the drift-report job, the sensor that adds a partition per
monitored model, and the schedule that reports on every monitored model.

A model is monitored once it has a production version: ``monitored_models`` adds its partition
(``<tenant>:<model_id>``). ``drift_reports_hourly`` asks for one run per partition per tick, with a
run key per partition and tick, so a re-evaluated tick launches nothing twice. At most
``MAX_MONITORED`` models are monitored and reported per tick (the cost of a tick is bounded).
"""

import dagster as dg

from assets.monitoring.assets import drift_report, monitored_models
from resources.dagster_resources import ModelRegistry
from resources.monitoring.drift_job_spec import DRIFT_REPORT_JOB, monitored_key, parse_monitored_key
from resources.vocabulary import RUN_KIND, RUN_TENANT

HOURLY = "15 * * * *"  # a quarter past: away from the feature materialization on the hour
MAX_MONITORED = 1000

drift_report_job = dg.define_asset_job(
    DRIFT_REPORT_JOB, selection=dg.AssetSelection.assets(drift_report), partitions_def=monitored_models,
    description="A drift report of one model's production version (one partition per model)",
    tags={RUN_KIND: "drift_report"},
)


def build_monitored_models_sensor(interval_s: int = 60) -> dg.SensorDefinition:
    @dg.sensor(name="monitored_models", minimum_interval_seconds=interval_s, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Adds a drift_report partition for every model that has a production version")
    def monitored_models_sensor(context: dg.SensorEvaluationContext, registry: ModelRegistry):
        known = set(context.instance.get_dynamic_partitions(monitored_models.name))
        wanted = {monitored_key(tenant, model_id) for tenant, model_id in registry.production_models(limit=MAX_MONITORED)}
        new = sorted(wanted - known)[: max(0, MAX_MONITORED - len(known))]
        if not new:
            return dg.SkipReason("every model with a production version is monitored")
        return dg.SensorResult(dynamic_partitions_requests=[monitored_models.build_add_request(new)])

    return monitored_models_sensor


def build_drift_schedule(cron: str = HOURLY) -> dg.ScheduleDefinition:
    @dg.schedule(name="drift_reports_hourly", job=drift_report_job, cron_schedule=cron, execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="A drift report of every monitored model over the last 24 hours")
    def drift_reports_hourly(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.isoformat()
        keys = sorted(context.instance.get_dynamic_partitions(monitored_models.name))[:MAX_MONITORED]
        if not keys:
            return dg.SkipReason("no monitored model yet")
        return [dg.RunRequest(run_key=f"{key}:{tick}", partition_key=key, tags={RUN_TENANT: parse_monitored_key(key)[0]})
                for key in keys]

    return drift_reports_hourly
