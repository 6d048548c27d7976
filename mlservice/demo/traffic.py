"""Demo traffic for the monitoring half: predictions in which one feature has shifted, and ground truth.

After the demo model reaches production, ``mlservice up`` (first start) sends ``TRAFFIC_ROWS``
single-row predictions through the API, drawn with replacement from the version's own reference
sample (so every other feature follows the training distribution) with ``days_since_last_order``
moved ``SHIFT_DAYS`` later (customers coming back less often), then labels half of them through
the feedback endpoint. The banner's drift line then shows that feature drifted and the others not,
and the performance line shows latency, errors and accuracy. The labels are the demo population's
churn link (``mlservice.demo.feature_data.churn_draw``) applied to the request's features: synthetic
ground truth, as the whole demo data set is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from mlservice.config.settings import Settings

SHIFTED_FEATURE = "days_since_last_order"
SHIFT_DAYS = 45
TRAFFIC_ROWS = 1200
LABELLED_SHARE = 0.5
SEED = 11


def send_demo_traffic(settings: Settings, api: httpx.Client, tenant_id: str, model_id: str) -> dict[str, int]:
    """Send the shifted predictions and half their labels; the counts sent."""
    import numpy as np

    from mlservice.config.wiring import build_registry, build_state_store
    from mlservice.demo.feature_data import churn_draw
    from mlservice.monitoring.reference import training_reference

    registry = build_registry(settings, build_state_store(settings))
    reference = training_reference(registry, registry.resolve_version(tenant_id, model_id, "production"))
    if reference is None or SHIFTED_FEATURE not in reference.columns:
        return {"predictions": 0, "labels": 0}
    rows = reference.sample(n=TRAFFIC_ROWS, replace=True, random_state=SEED).reset_index(drop=True)
    rows[SHIFTED_FEATURE] = rows[SHIFTED_FEATURE] + SHIFT_DAYS
    rng = np.random.default_rng(SEED)
    labels = churn_draw(rows, rng)
    feedback = []
    for index, row in enumerate(rows.to_dict("records")):
        features = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        answer = _post(api, "/api/v1/predictions", {"model_id": model_id, "features": features})
        if rng.random() < LABELLED_SHARE:
            feedback.append({"request_id": answer["request_id"], "label": int(labels[index])})
    for start in range(0, len(feedback), 500):
        _post(api, f"/api/v1/monitoring/{model_id}/feedback", {"items": feedback[start:start + 500]})
    return {"predictions": len(rows), "labels": len(feedback)}


def _post(api: httpx.Client, path: str, body: dict) -> dict:
    """POST as a well-behaved client: a 429 waits its Retry-After (the tenant's rate limit holds for
    the demo too) and tries again."""
    import time

    for _ in range(60):
        answer = api.post(path, json=body)
        if answer.status_code != 429:
            return answer.raise_for_status().json()
        time.sleep(min(float(answer.headers.get("retry-after", "1")), 5.0))
    return answer.raise_for_status().json()

