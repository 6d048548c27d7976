"""The demo tenant that ``mlservice up`` seeds on first start, through the platform's own path.

Tenant ``acme-corp`` gets its churn population (``mlservice.demo.feature_data``: customers ``cust-1``
... ``cust-20000``, feature snapshots and labels) under its data area; through the running API its
feature definitions are applied and materialized (a Dagster run), then a training job on feature
service ``churn_v1`` runs (point-in-time join, Dagster assets, fit on Ray, logged to MLflow,
registered) and the new version of ``customer_churn_predictor`` is promoted to staging and
production; then demo traffic with one shifted feature, and labels, go through the API
(``mlservice.demo.traffic``). Skipped when the model already has a production version.
"""

from __future__ import annotations

import json
import time
from datetime import UTC

import httpx

from mlservice.config.settings import Settings
from mlservice.demo.traffic import SHIFT_DAYS, SHIFTED_FEATURE, send_demo_traffic
from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token

DEMO_TENANT = "acme-corp"
DEMO_MODEL = "customer_churn_predictor"
DEMO_SUBJECT = "system:demo-seed"
FEATURE_SERVICE = "churn_v1"
LABELS = "features/churn_labels.parquet"  # relative to the tenant's data area
TRAINING_REQUEST = {
    "model_name": DEMO_MODEL,
    "framework": "sklearn",
    "estimator": "gradient_boosting",
    # an entity frame (customer_id, event_timestamp, churned): the features come from the feature
    # store by a point-in-time join, and the model records churn_v1 for predictions by entity
    "data_config": {"train_path": LABELS, "target_column": "churned", "feature_service": FEATURE_SERVICE,
                    "batch_size": 256},
    "training_config": {"num_workers": 1, "epochs": 10, "early_stopping": True, "patience": 3},
    "hyperparameters": {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1},
}
TERMINAL = ("succeeded", "failed", "cancelled")


def write_demo_data(settings: Settings) -> None:
    """The demo population's feature tables and labels, dated up to today (midnight UTC) so the
    feature views' ttl holds for live lookups; written once."""
    from datetime import datetime

    from mlservice.demo.feature_data import FILES, write_feature_data

    folder = settings.tenants_dir / DEMO_TENANT / "features"
    if all((folder / name).exists() for name in FILES.values()):
        return
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    write_feature_data(folder, as_of=today)


def _wait(api: httpx.Client, path: str, what: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = api.get(path).raise_for_status().json()
        if status["status"] in TERMINAL:
            if status["status"] != "succeeded":
                raise RuntimeError(f"demo {what} {status['status']}: {status.get('error')}")
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo {what} did not finish within {timeout_s:.0f} s ({path})")
        time.sleep(1)


def seed_features(api: httpx.Client, timeout_s: float) -> None:
    """Apply the demo's feature definitions (the churn document, as any tenant would PUT its own)
    and materialize them (a Dagster run, through the API)."""
    from resources.features.definitions import CHURN_DOCUMENT

    document = json.loads(CHURN_DOCUMENT.read_text())
    applied = api.put("/api/v1/features/definitions", json=document).raise_for_status().json()
    views = ", ".join(v["name"] for v in document["feature_views"])
    print(f"feature store of {DEMO_TENANT}: project {applied['project']}, revision {applied['revision']}, views {views}")
    job = api.post("/api/v1/features/materialize", json={"incremental": False},
                   headers={"Idempotency-Key": "demo-seed-features"}).raise_for_status().json()
    print(f"materializing the demo features: job {job['job_id']} (see it in the Dagster UI)")
    _wait(api, f"/api/v1/jobs/{job['job_id']}", f"materialization job {job['job_id']}", timeout_s)


def seed_demo(settings: Settings, timeout_s: float = 600) -> str:
    """Make sure the demo model is in production; returns its model id."""
    write_demo_data(settings)
    token = issue_token(settings, tenant_id=DEMO_TENANT, subject=DEMO_SUBJECT, scopes=DEFAULT_TOKEN_SCOPES, ttl_s=3600)
    base = f"http://127.0.0.1:{settings.api_port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=60) as api:
        listed = api.get("/api/v1/models", params={"name_prefix": DEMO_MODEL}).raise_for_status().json()["data"]
        existing = next((m for m in listed if m["name"] == DEMO_MODEL), None)
        if existing is not None and existing["stage"] == "production":
            print(f"demo model already in production (version {existing['current_version']}); nothing to seed")
            return existing["model_id"]
        seed_features(api, timeout_s)
        job = api.post("/api/v1/training", json=TRAINING_REQUEST, headers={"Idempotency-Key": "demo-seed"})
        job = job.raise_for_status().json()
        print(f"training the demo model on feature service {FEATURE_SERVICE}: job {job['job_id']}")
        status = _wait(api, f"/api/v1/training/{job['job_id']}", f"training job {job['job_id']}", timeout_s)
        model_id, version = status["model_id"], status["model_version"]
        for stage in ("staging", "production"):
            api.put(f"/api/v1/models/{model_id}/stage", json={"version": version, "target_stage": stage}).raise_for_status()
        print(f"seeded {DEMO_TENANT}/{DEMO_MODEL} {version} in production "
              f"(val_accuracy {status['metrics'].get('val_accuracy'):.3f})")
        sent = send_demo_traffic(settings, api, DEMO_TENANT, model_id)
    print(f"sent {sent['predictions']} demo predictions ({SHIFTED_FEATURE} shifted by {SHIFT_DAYS} days) "
          f"and {sent['labels']} labels")
    return model_id
