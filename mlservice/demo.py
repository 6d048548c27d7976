"""The demo tenant that ``mlservice up`` seeds on first start.

Tenant ``acme-corp`` gets its churn data under its data area and the model
``customer_churn_predictor`` with version 1.0.0 trained in process, promoted to production.
Skipped when the model already has a production version.
"""

from __future__ import annotations

from serving_api.settings import Settings
from serving_api.wiring import build_registry, build_state_store

DEMO_TENANT = "acme-corp"
DEMO_MODEL = "customer_churn_predictor"
DEMO_ACTOR = "system:demo-seed"


def seed_demo(settings: Settings) -> str:
    """Make sure the demo model is in production; returns its model id."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlservice.demo_data import CHURN_FEATURES, TARGET, churn_customers

    registry = build_registry(settings, build_state_store(settings))
    existing = registry.find_by_name(DEMO_TENANT, DEMO_MODEL)
    if existing is not None and existing.stage == "production":
        print(f"demo model already in production (version {existing.current_version}); nothing to seed")
        return existing.model_id

    frame = churn_customers()
    data_dir = settings.tenants_dir / DEMO_TENANT / "churn"
    data_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(data_dir / "customers.parquet", index=False)

    train, test = train_test_split(frame, test_size=0.2, random_state=0, stratify=frame[TARGET])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train[CHURN_FEATURES], train[TARGET])
    proba = model.predict_proba(test[CHURN_FEATURES])[:, 1]
    metrics = {
        "val_accuracy": float(accuracy_score(test[TARGET], proba > 0.5)),
        "val_roc_auc": float(roc_auc_score(test[TARGET], proba)),
    }

    experiment_id = registry.ensure_experiment(DEMO_TENANT, DEMO_MODEL)
    mlflow.set_tracking_uri(settings.effective_tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name="demo-seed", tags={"mlservice.tenant": DEMO_TENANT}) as run:
        mlflow.log_params({"estimator": "LogisticRegression", "rows": len(train)})
        mlflow.log_metrics(metrics)
        signature = infer_signature(test[CHURN_FEATURES], model.predict_proba(test[CHURN_FEATURES]))
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=test[CHURN_FEATURES].head(2),
            pip_requirements=["scikit-learn", "pandas", "numpy"],
        )
    if existing is None:
        record = registry.create_model(
            DEMO_TENANT,
            name=DEMO_MODEL,
            model_type="classification",
            framework="sklearn",
            description="Demo churn classifier on total_orders, days_since_last_order, avg_order_value, support_tickets",
            tags={"team": "customer-analytics", "use_case": "churn"},
            source_uri=run.info.run_id,
            actor=DEMO_ACTOR,
        )
        version = "1.0.0"
    else:
        record = existing
        version = registry.register_version(DEMO_TENANT, existing.model_id, model_uri=run.info.run_id, actor=DEMO_ACTOR).version
    registry.transition_stage(DEMO_TENANT, record.model_id, version=version, target_stage="staging", actor=DEMO_ACTOR)
    registry.transition_stage(DEMO_TENANT, record.model_id, version=version, target_stage="production", actor=DEMO_ACTOR)
    print(f"seeded {DEMO_TENANT}/{DEMO_MODEL} {version} in production ({metrics})")
    return record.model_id
