"""Resources built from settings: the one place the API, the Dagster code location and the CLI
wire them, so every process agrees on every location."""

from __future__ import annotations

import os

from mlservice.config.settings import Settings
from resources.data.access import DataAccessPolicy
from resources.features.store import FeatureStoreResource
from resources.infra.dagster_runs import DagsterRuns
from resources.infra.ray_cluster import RayCluster
from resources.infra.state_db import StateStore
from resources.jobs.records import JobStore
from resources.models.registry import ModelRegistry
from resources.tenants.quotas import TenantQuotas


def build_state_store(settings: Settings, *, serving: bool = False) -> StateStore:
    """``serving``: the API's store, whose SQLite WAL is checkpointed off the commit path."""
    return StateStore(database_url=settings.effective_database_url, background_checkpoint=serving)


def build_quotas(settings: Settings) -> TenantQuotas:
    """Per-tenant quotas: the defaults and, for each overridden tenant, ``Settings.quotas_for``."""
    return TenantQuotas(
        defaults=settings.quotas.model_dump(),
        tenants={tenant: settings.quotas_for(tenant).model_dump() for tenant in settings.quota_overrides},
    )


def build_registry(settings: Settings, state: StateStore) -> ModelRegistry:
    return ModelRegistry(
        tracking_uri=settings.effective_tracking_uri, state=state, artifact_root=settings.experiment_artifact_root,
        quotas=build_quotas(settings), redis_url=settings.redis_url,
    )


def build_data_policy(settings: Settings) -> DataAccessPolicy:
    return DataAccessPolicy(
        data_dir=str(settings.data_dir),
        data_roots=settings.data_roots,
        s3_buckets=settings.s3_buckets,
        s3_tenant_buckets=settings.s3_tenant_buckets,
        s3_endpoint_url=settings.s3_endpoint_url,
    )


def build_ray_cluster(settings: Settings) -> RayCluster:
    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if token_path is None and settings.ray_token_path.exists():
        token_path = str(settings.ray_token_path)
    return RayCluster(
        address=settings.effective_ray_address,
        dashboard_url=settings.effective_ray_dashboard_url,
        auth_token_path=token_path,
    )


def build_job_store(state: StateStore) -> JobStore:
    return JobStore(state)


def build_dagster_runs(settings: Settings) -> DagsterRuns:
    return DagsterRuns(settings.effective_dagster_url)


def build_feature_store(settings: Settings) -> FeatureStoreResource:
    """One Feast project per tenant under the data dir; SQLite online store unless configured."""
    return FeatureStoreResource(
        data_dir=str(settings.data_dir), online_store=settings.feast_online_store,
        online_store_url=settings.feast_online_store_url,
    )
