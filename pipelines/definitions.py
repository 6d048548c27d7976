"""The one ``Definitions`` object that ``workspace.yaml`` loads.

Assets, jobs, schedules and sensors are added here as the platform grows (training, tuning,
scoring, features, monitoring); resources come from ``pipelines.resources`` for the
environment named by ``MLSERVICE_ENV`` (default ``local``).
"""

from __future__ import annotations

import os

import dagster as dg

from assets.training.assets import trained_model, training_set
from assets.tuning.assets import tuned_model
from pipelines.jobs import ALL_JOBS
from pipelines.resources import RESOURCES_BY_ENV


def build_definitions() -> dg.Definitions:
    environment = os.environ.get("MLSERVICE_ENV", "local")
    return dg.Definitions(
        assets=[training_set, trained_model, tuned_model],
        jobs=ALL_JOBS,
        resources=RESOURCES_BY_ENV[environment](),
    )


defs = build_definitions()
