"""Where a newly trained version goes, as a retraining policy says (``promote``).

``none``: it stays in development. ``staging``: it moves to staging. ``production_if_better``: it
moves to staging, then to production only if its score on this job's validation rows is at least
the production version's score on the same rows (accuracy for classification, R² for regression);
both are loaded through the model core, as they are served. The decision and its figures are
returned (and kept in the job's result), whichever way it went.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assets.training.training_data import TrainingData
    from resources.dagster_resources import ModelRegistry


def promote_version(registry: ModelRegistry, tenant_id: str, model_id: str, version: str, promote: str,
                    data: TrainingData, actor: str) -> dict[str, Any]:
    from resources.errors import VersionNotFound

    if promote == "none":
        return {"promote": promote, "stage": "development", "reason": "the policy keeps new versions in development"}
    registry.transition_stage(tenant_id, model_id, version=version, target_stage="staging", actor=actor)
    if promote == "staging":
        return {"promote": promote, "stage": "staging", "reason": "the policy moves new versions to staging"}
    try:
        production = registry.resolve_version(tenant_id, model_id, "production")
    except VersionNotFound:
        production = None
    if production is not None and production.stage != "production":
        production = None  # resolve_version falls back to the newest; only a real production version counts
    metric = "accuracy" if data.model_type == "classification" else "r2"
    new_score = _score(registry, tenant_id, model_id, version, data)
    decision: dict[str, Any] = {"promote": promote, "metric": metric, "score": new_score, "validation_rows": len(data.x_val)}
    if production is not None:
        decision.update(production_version=production.version,
                        production_score=_score(registry, tenant_id, model_id, production.version, data))
    if production is None or new_score >= decision["production_score"]:
        registry.transition_stage(tenant_id, model_id, version=version, target_stage="production", actor=actor)
        reason = ("no production version to compare with" if production is None else
                  f"{metric} {new_score:.4f} >= production {production.version}'s {decision['production_score']:.4f} "
                  "on the same validation rows")
        return {**decision, "stage": "production", "reason": reason}
    reason = (f"kept in staging: {metric} {new_score:.4f} < production {production.version}'s "
              f"{decision['production_score']:.4f} on the same validation rows")
    return {**decision, "stage": "staging", "reason": reason}


def _score(registry: ModelRegistry, tenant_id: str, model_id: str, version: str, data: TrainingData) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    from mlservice.inference.loader import load_version

    model = load_version(registry, tenant_id, model_id, version)
    labels, _ = model.predict(data.x_val[model.feature_names])
    if data.model_type == "classification":
        return float(accuracy_score(data.y_val.to_numpy(), labels))
    return float(r2_score(data.y_val.to_numpy(), labels))
