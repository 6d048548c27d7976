"""Log small real scikit-learn models to the test MLflow store, as a tenant's runs."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlservice.config.settings import Settings
from mlservice.config.wiring import build_registry, build_state_store

FEATURES = ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]


def churn_like(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "total_orders": rng.integers(1, 40, n).astype("int64"),
        "days_since_last_order": rng.integers(0, 200, n).astype("int64"),
        "avg_order_value": rng.uniform(10, 300, n),
        "support_tickets": rng.integers(0, 8, n).astype("int64"),
    })
    labels = ((frame["days_since_last_order"] / 60 + frame["support_tickets"] / 3 - frame["total_orders"] / 20) > 1).astype(int)
    return frame, labels.to_numpy()


def churn_rows(n: int, seed: int, *, shift: float = 0.0) -> tuple[list[dict], np.ndarray]:
    """``churn_like`` rows as request bodies carry them (JSON numbers: avg_order_value a float, the
    rest ints), with ``shift`` added to avg_order_value, and their labels."""
    frame, labels = churn_like(n=n, seed=seed)
    frame["avg_order_value"] = frame["avg_order_value"] + shift
    rows = [{k: (float(v) if k == "avg_order_value" else int(v)) for k, v in r.items()} for r in frame.to_dict("records")]
    return rows, labels


def log_sklearn_model(
    settings: Settings, tenant_id: str, *, experiment: str = "tests", tag_run: bool = True, kind: str = "logistic",
    seed: int = 0, reference: bool = False,
) -> str:
    """Fit a small model on churn-like features, log it (with signature and input example)
    under the tenant's experiment; returns the run id. kind: logistic, forest, linear, multiclass."""
    features, labels = churn_like(seed=seed)
    if kind == "forest":
        model = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=seed).fit(features, labels)
    elif kind == "linear":
        model = LinearRegression().fit(features, features["avg_order_value"] * 0.1 + labels)
    elif kind == "multiclass":
        model = LogisticRegression(max_iter=2000).fit(features, features["support_tickets"].clip(0, 2).to_numpy())
    else:
        model = LogisticRegression(max_iter=2000).fit(features, labels)
    return log_fitted_model(settings, tenant_id, model, features, experiment=experiment, tag_run=tag_run, reference=reference)


def log_fitted_model(
    settings: Settings, tenant_id: str, model, features: pd.DataFrame, *, experiment: str = "tests",
    tag_run: bool = True, example_rows: int | None = 20, reference: bool = False,
) -> str:
    """Log a fitted scikit-learn model as the platform would accept it (skops, the types it needs
    trusted, a signature from ``features``, an input example of ``example_rows`` rows unless None)
    in a run of the tenant's experiment; returns the run id. ``reference``: also log ``features`` as
    the run's drift reference sample, as the training job does."""
    import skops.io

    experiment_id = build_registry(settings, build_state_store(settings)).ensure_experiment(tenant_id, experiment)
    output = model.predict_proba(features) if hasattr(model, "predict_proba") else model.predict(features)
    signature = mlflow.models.infer_signature(features, output)
    mlflow.set_tracking_uri(settings.effective_tracking_uri)
    tags = {"mlservice.tenant": tenant_id} if tag_run else {}
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.sklearn.log_model(
            model, name="model", signature=signature, input_example=None if example_rows is None else features.head(example_rows),
            pip_requirements=["scikit-learn"], skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
        if reference:
            from mlservice.monitoring.reference import log_reference

            log_reference(features)
    return run.info.run_id
