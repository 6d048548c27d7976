"""Log small real scikit-learn models to the test MLflow store, as a tenant's runs."""

from __future__ import annotations

import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression

from serving_api.settings import Settings
from serving_api.wiring import build_registry, build_state_store


def log_sklearn_model(settings: Settings, tenant_id: str, *, experiment: str = "tests", tag_run: bool = True) -> str:
    """Fit a tiny classifier, log it under the tenant's experiment; returns the run id."""
    registry = build_registry(settings, build_state_store(settings))
    experiment_id = registry.ensure_experiment(tenant_id, experiment)
    rng = np.random.default_rng(0)
    features = rng.random((40, 3))
    labels = (features[:, 0] > 0.5).astype(int)
    mlflow.set_tracking_uri(settings.effective_tracking_uri)
    tags = {"mlservice.tenant": tenant_id} if tag_run else {}
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.sklearn.log_model(LogisticRegression().fit(features, labels), name="model", pip_requirements=["scikit-learn"])
    return run.info.run_id
