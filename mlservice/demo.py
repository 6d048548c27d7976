"""The demo tenant that ``mlservice up`` seeds on first start, through the platform's own path.

Tenant ``acme-corp`` gets its churn data under its data area; then a training job is submitted
to the running API (Dagster assets, fit on Ray, logged to MLflow, registered), and the new
version of ``customer_churn_predictor`` is promoted to staging and production through the
models API. Skipped when the model already has a production version.
"""

from __future__ import annotations

import time

import httpx

from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token
from serving_api.settings import Settings

DEMO_TENANT = "acme-corp"
DEMO_MODEL = "customer_churn_predictor"
DEMO_SUBJECT = "system:demo-seed"
DEMO_DATA = "churn/customers.parquet"
TRAINING_REQUEST = {
    "model_name": DEMO_MODEL,
    "framework": "sklearn",
    "estimator": "gradient_boosting",
    "data_config": {"train_path": DEMO_DATA, "target_column": "churned", "batch_size": 256,
                    "feature_columns": ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]},
    "training_config": {"num_workers": 1, "epochs": 10, "early_stopping": True, "patience": 3},
    "hyperparameters": {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1},
}


def write_demo_data(settings: Settings) -> None:
    from mlservice.demo_data import churn_customers

    path = settings.tenants_dir / DEMO_TENANT / DEMO_DATA
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        churn_customers().to_parquet(path, index=False)


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
        job = api.post("/api/v1/training", json=TRAINING_REQUEST, headers={"Idempotency-Key": "demo-seed"})
        job = job.raise_for_status().json()
        print(f"training the demo model: job {job['job_id']} (see it in the Dagster UI)")
        deadline = time.monotonic() + timeout_s
        while True:
            status = api.get(f"/api/v1/training/{job['job_id']}").raise_for_status().json()
            if status["status"] in ("succeeded", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo training job {job['job_id']} did not finish within {timeout_s:.0f} s")
            time.sleep(1)
        if status["status"] != "succeeded":
            raise RuntimeError(f"demo training job {job['job_id']} {status['status']}: {status.get('error')}")
        model_id, version = status["model_id"], status["model_version"]
        for stage in ("staging", "production"):
            api.put(f"/api/v1/models/{model_id}/stage", json={"version": version, "target_stage": stage}).raise_for_status()
    print(f"seeded {DEMO_TENANT}/{DEMO_MODEL} {version} in production (val_accuracy {status['metrics'].get('val_accuracy'):.3f})")
    return model_id
