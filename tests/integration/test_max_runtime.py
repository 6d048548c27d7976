"""A run past its maximum runtime ends failed and says why: the platform's runs carry
``dagster/max_runtime`` (MLSERVICE_MAX_RUN_MINUTES, lowered for one tenant of the shared platform
by MLSERVICE_MAX_RUN_MINUTES_OVERRIDES, ``conftest.py``), the Dagster daemon's run monitoring
fails the run, the API's job reads the reason, and the stopped run's Ray task is cancelled (it
once ran on for 15 minutes, holding a CPU of the 2). The attack: a training job sized to run for
hours, from a tenant whose runs may take 15 seconds."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import SLOW_TENANT
from tests.utils.platform import integration_marks, running_ray_tasks, tenant_client

pytestmark = integration_marks(timeout_s=600)


@pytest.fixture(scope="module")
def api(platform):
    folder = platform["current"].data_dir / "tenants" / SLOW_TENANT / "data"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, 8)), columns=[f"f{i}" for i in range(8)])
    frame["label"] = (frame["f0"] + frame["f1"] > 0).astype(int)
    previous = os.umask(0o077)  # owner-only, as the platform keeps its data dir (test_platform_up checks it)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / "train.parquet", index=False)
    finally:
        os.umask(previous)
    with tenant_client(platform["current"], SLOW_TENANT) as client:
        yield client


def test_a_run_past_its_maximum_runtime_ends_failed_with_that_reason(api, up):
    # mini-batches of one row over 2000 rows, 5000 epochs: hours of partial_fit calls
    body = {"model_name": "too_slow", "estimator": "mlp",
            "data_config": {"train_path": "data/train.parquet", "target_column": "label", "batch_size": 1},
            "training_config": {"epochs": 5000}, "hyperparameters": {"hidden_layer_sizes": [256, 256]}}
    accepted = api.post("/api/v1/training", json=body)
    assert accepted.status_code == 202, accepted.text
    path = f"/api/v1/training/{accepted.json()['job_id']}"
    deadline, seen = time.monotonic() + 150, []
    while time.monotonic() < deadline:
        job = api.get(path).json()
        seen.append(job["status"])
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    assert job["status"] == "failed", (job, seen)
    assert "running" in seen  # it did start: the bound stopped a running fit
    assert "maximum runtime" in job["error"] and "15 seconds" in job["error"], job["error"]
    started, finished = (pd.Timestamp(job[k]) for k in ("started_at", "finished_at"))
    assert 15 <= (finished - started).total_seconds() < 15 + 60  # the daemon checks every 10 s
    generic = api.get(f"/api/v1/jobs/{job['job_id']}").json()
    assert (generic["status"], generic["error"]) == ("failed", job["error"])
    # and the stopped run left no fit running on the cluster (a Ray task holding a CPU)
    deadline = time.monotonic() + 30
    while (left := running_ray_tasks(up, "_sklearn_task")) and time.monotonic() < deadline:
        time.sleep(1)
    assert left == [], left
