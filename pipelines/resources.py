"""Resources of the Dagster side, chosen per environment in one place.

They are built from the same ``MLSERVICE_*`` settings as the API (``mlservice.config.wiring``), so a
run worker, the webserver and the API agree on every location. ``mlservice up`` sets the
variables for the webserver, the daemon and the run workers they start.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from mlservice.config.settings import Settings
from mlservice.config.wiring import build_data_policy, build_feature_store, build_ray_cluster, build_registry, build_state_store


def local_resources() -> dict[str, dg.ConfigurableResource]:
    settings = Settings()
    state = build_state_store(settings)
    return {
        "state": state,
        "registry": build_registry(settings, state),
        "data_access": build_data_policy(settings),
        "ray_cluster": build_ray_cluster(settings),
        "feature_store": build_feature_store(settings),
    }


RESOURCES_BY_ENV: dict[str, Callable[[], dict[str, dg.ConfigurableResource]]] = {"local": local_resources}
