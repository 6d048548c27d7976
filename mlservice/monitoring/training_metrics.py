"""A version's validation metrics from its training run: what its monitored quality is read against."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resources.models.registry import ModelRegistry



def validation_metrics(registry: ModelRegistry, tenant_id: str, model_id: str, version: str) -> dict[str, float] | None:
    """``{"val_accuracy": ..., "val_loss": ...}`` of the version's run (the ``final_val_*`` metrics the
    training job logs), or None for a version without a run or without such metrics (blocking)."""
    from resources.errors import DomainError
    from resources.vocabulary import FINAL_METRIC_PREFIX

    try:
        resolved = registry.resolve_version(tenant_id, model_id, version)
        run_id = registry.run_id_of(resolved)
        with registry._mlflow_errors():
            metrics = registry.client.get_run(run_id).data.metrics if run_id else {}
    except DomainError:
        return None
    found = {key[len(FINAL_METRIC_PREFIX):]: float(value) for key, value in metrics.items()
             if key.startswith(FINAL_METRIC_PREFIX + "val_")}
    return found or None
