"""Evicted models give their memory back: a tenant cycling through more versions than its cache
share holds, round after round, leaves the API's resident memory flat (their batcher tasks end,
and gc.freeze does not pin them)."""

from __future__ import annotations

import gc
import os
import time
import uuid

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from tests.utils.api import register_model
from tests.utils.mlflow_models import log_fitted_model
from tests.utils.tokens import auth, make_token

VERSIONS, ROUNDS = 24, 4
FEATURES = ["a", "b", "c", "d"]


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _log_big_forest(settings, tenant: str) -> str:
    """A forest of deep trees (a few MB per loaded copy): a pinned copy per load shows at once."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(8000, 4)), columns=FEATURES)
    model = RandomForestClassifier(n_estimators=12, random_state=0).fit(frame, rng.integers(0, 2, len(frame)))
    return log_fitted_model(settings, tenant, model, frame, example_rows=5)


def test_rss_stays_flat_while_a_tenant_cycles_through_more_versions_than_the_cache_holds(client, settings):
    cache = client.app.state.model_cache
    assert cache.tenant_max_models < VERSIONS
    tenant = f"mem-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    run_id = _log_big_forest(settings, tenant)
    model_id = register_model(client, headers, run_id, "big")
    for _ in range(VERSIONS - 1):
        added = client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": run_id}}, headers=headers)
        assert added.status_code == 201, added.text
    versions = [v["version"] for v in client.get(f"/api/v1/models/{model_id}/versions", headers=headers).json()["data"]]
    assert len(versions) == VERSIONS
    interval = cache.refreezer.interval_s
    cache.refreezer.interval_s = 0.5  # the debounce, short enough for a test
    row = {"a": 0.1, "b": -0.2, "c": 0.3, "d": 1.5}
    rss = []
    try:
        for _ in range(ROUNDS):
            for version in versions:
                answer = client.post("/api/v1/predictions", json={"model_id": model_id, "version": version, "features": row},
                                     headers=headers)
                assert answer.status_code == 200, answer.text
            time.sleep(1.6)  # the debounced refreeze runs after the last eviction
            rss.append(_rss_mb())
    finally:
        cache.refreezer.interval_s = interval
    loaded = [k for k in cache.cached_keys() if k[0] == tenant]
    assert len(loaded) <= cache.tenant_max_models and cache.refreezer.runs >= 1
    # Each load of this model costs ~3.5 MB of resident memory: pinned after eviction (a batcher
    # task that never ends, cycles frozen by gc.freeze) rounds 2-4 would add ~250 MB.
    assert rss[-1] - rss[0] < 64, rss
    gc.collect()
