"""The resources the training and tuning assets take under ``dg.materialize``, on one folder, and
the job a run of them belongs to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resources.data.access import DataAccessPolicy
from resources.features.store import FeatureStoreResource
from resources.infra.ray_cluster import RayCluster
from resources.infra.state_db import StateStore
from resources.jobs.records import JobStore
from resources.jobs.specs import JobContext
from resources.models.registry import ModelRegistry


def asset_resources(root: Path) -> dict[str, Any]:
    """State tables, an MLflow registry (SQLite, artifacts under ``root``), the data-path rule and
    the feature store on ``root``; Ray at ``address="auto"``, whose connect() reuses the process's
    initialized Ray (the ``local_ray`` fixture must be running before the assets run)."""
    state = StateStore(database_url=f"sqlite:///{root / 'state.db'}")
    (root / "mlflow").mkdir()
    return {
        "state": state,
        "registry": ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", state=state,
                                  artifact_root=(root / "mlflow" / "artifacts").as_uri()),
        "data_access": DataAccessPolicy(data_dir=str(root)),
        "ray_cluster": RayCluster(address="auto"),
        "feature_store": FeatureStoreResource(data_dir=str(root)),
    }


def submitted_job(state: StateStore, tenant: str, kind: str, request: dict[str, Any] | None = None) -> JobContext:
    """The job row the API writes at submit, and the context the assets' run config carries for it."""
    record, _ = JobStore(state).create(tenant, kind=kind, request=request or {}, submitted_by="tester")
    return JobContext(tenant_id=tenant, job_id=record.job_id, requested_by="tester")
