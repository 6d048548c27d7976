"""The one ``Definitions`` object that ``workspace.yaml`` loads.

Assets, jobs, schedules and sensors are added here as the platform grows (training, tuning,
scoring, features, monitoring); resources come from ``pipelines.resources`` for the
environment named by ``MLSERVICE_ENV`` (default ``local``).
"""

from __future__ import annotations

import os

import dagster as dg

from assets.deployments.assets import model_deployment
from assets.features.assets import FEATURE_ASSETS
from assets.monitoring.assets import drift_report, predictions
from assets.scoring.assets import batch_predictions
from assets.training.assets import trained_model, training_set
from assets.tuning.assets import tuned_model
from mlservice.config.settings import Settings
from pipelines.deployment_reconciler import build_deployment_reconciler
from pipelines.jobs import ALL_JOBS
from pipelines.monitoring import build_drift_schedule, build_monitored_models_sensor, drift_report_job
from pipelines.resources import RESOURCES_BY_ENV
from pipelines.retention import build_retention_schedule, retention_job
from pipelines.retrain_on_drift import build_retrain_sensor
from pipelines.schedules import HOURLY, build_feature_schedule


def build_definitions() -> dg.Definitions:
    environment = os.environ.get("MLSERVICE_ENV", "local")
    feature_cron = os.environ.get("MLSERVICE_FEATURE_MATERIALIZATION_CRON", HOURLY)
    settings = Settings()
    return dg.Definitions(
        assets=[*FEATURE_ASSETS, training_set, trained_model, tuned_model, predictions, drift_report, batch_predictions,
                model_deployment],
        jobs=[*ALL_JOBS, retention_job, drift_report_job],
        schedules=[build_feature_schedule(feature_cron), build_retention_schedule(settings.retention_cron),
                   build_drift_schedule(settings.drift_report_cron)],
        sensors=[build_monitored_models_sensor(settings.monitoring_sensor_interval_s),
                 build_retrain_sensor(settings.monitoring_sensor_interval_s),
                 build_deployment_reconciler(settings.deployment_sensor_interval_s)],
        resources=RESOURCES_BY_ENV[environment](),
    )


defs = build_definitions()
