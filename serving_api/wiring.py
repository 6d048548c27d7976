"""Resources built from settings: the one place the API side (and the CLI) wires them."""

from __future__ import annotations

from resources.data_access import DataAccessPolicy
from resources.registry import ModelRegistry
from resources.state_db import StateStore
from serving_api.settings import Settings


def build_state_store(settings: Settings) -> StateStore:
    return StateStore(database_url=settings.effective_database_url)


def build_registry(settings: Settings, state: StateStore) -> ModelRegistry:
    return ModelRegistry(
        tracking_uri=settings.effective_tracking_uri, state=state, artifact_root=settings.experiment_artifact_root
    )


def build_data_policy(settings: Settings) -> DataAccessPolicy:
    return DataAccessPolicy(
        data_dir=str(settings.data_dir),
        data_roots=settings.data_roots,
        s3_buckets=settings.s3_buckets,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
