"""Makes the API state databases that tests/unit/test_migrations.py upgrades: run with the code of
the commit it stands for (not with this tree's), through that code's own stores.

    git worktree add /tmp/old e063f0e
    PYTHONPATH=/tmp/old .venv/bin/python tests/data/make_legacy_state_db.py tests/data/state_e063f0e.db
    git worktree remove /tmp/old

``state_e063f0e.db`` (before the safety issue: prediction_log UNIQUE(request_id), no
client_request_id, no model_artifacts) and ``state_4a3447b.db`` (the last commit before
migrations) were made this way. At the end the file is vacuumed to 1 KiB pages (size only).
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from resources.audit import AuditLog
from resources.ensembles import EnsembleStore
from resources.jobs import JobStore
from resources.prediction_log import PredictionLog
import resources.state_db
from resources.state_db import StateStore, stage_transitions

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)


def main(path: str) -> None:
    store = StateStore(database_url=f"sqlite:///{path}")
    has_client_id = _has_client_id()
    jobs = JobStore(store)
    done, _ = jobs.create("acme-corp", kind="training", request={"model_name": "churn", "trainer": {"n": 10}},
                          submitted_by="alice", model_name="churn", idempotency_key="key-1")
    jobs.update(done.job_id, status="succeeded", dagster_run_id="run-1", result={"version": "1.0.0"},
                started_at=T0, finished_at=T0 + timedelta(minutes=3))
    jobs.create("acme-corp", kind="tuning", request={"model_name": "churn"}, submitted_by="alice")
    failed, _ = jobs.create("globex", kind="batch_prediction", request={"model_id": "m-2"}, submitted_by="bob")
    jobs.update(failed.job_id, status="failed", error="input path not allowed")
    EnsembleStore(store).create(
        "acme-corp", created_by="alice", name="churn-vote", method="weighted_average",
        members=[{"model_id": "m-1", "version": None, "weight": 0.5}, {"model_id": "m-3", "version": "1.0.0", "weight": 0.5}],
        parallel_inference=True, fail_on_partial=False, min_models_required=1, timeout_ms=500,
        model_type="classification", classes=[0, 1],
    )
    plog = PredictionLog(store, max_wait_s=0)
    for i, (tenant, extra) in enumerate([("acme-corp", {}), ("acme-corp", {"ensemble_id": "e-1", "status_code": 207}),
                                         ("globex", {"features": None})]):
        if has_client_id:
            extra = {**extra, "client_request_id": f"client-{i}"}
        plog.record_sync(request_id=f"req-{i}", tenant_id=tenant, subject="alice", model_id="m-1", model_version="1.0.0",
                         at=T0 + timedelta(seconds=i), latency_ms=1.5 + i,
                         **{"features": {"total_orders": i}, "outputs": {"prediction": i % 2}, **extra})
    plog.close()
    audit = AuditLog(store)
    audit.record(request_id="req-a", tenant_id="acme-corp", subject="alice", method="POST", path="/api/v1/models",
                 status=201, at=T0)
    audit.record(request_id="req-b", tenant_id="globex", subject="bob", method="DELETE", path="/api/v1/models/m-2",
                 status=403, error_code="INSUFFICIENT_SCOPE", at=T0 + timedelta(seconds=5))
    audit.close()
    with store.begin() as conn:
        conn.execute(stage_transitions.insert(), [
            dict(tenant_id="acme-corp", model_id="m-1", version="1.0.0", from_stage=from_, to_stage=to, actor="alice",
                 reason=reason, at=T0 + timedelta(minutes=n))
            for n, (from_, to, reason) in enumerate([(None, "development", "registered"), ("development", "staging", None),
                                                     ("staging", "production", None)])
        ])
    if Path(resources.state_db.__file__).with_name("model_artifacts.py").exists():  # not at e063f0e
        from resources.model_artifacts import ArtifactRecord, ArtifactRecords

        ArtifactRecords(store).put(ArtifactRecord(
            mlflow_name="acme-corp.churn", mlflow_version=1, tenant_id="acme-corp", model_id="m-1", kind="skops",
            digest="0" * 64, files={"model.skops": "1" * 64}, features=[{"name": "total_orders", "type": "long"}],
            classes=[0, 1], registered_at=T0,
        ))
    store.dispose()
    with sqlite3.connect(path) as conn:  # a smaller file; the content is what the old code wrote
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA page_size=1024")
        conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode=WAL")


def _has_client_id() -> bool:
    from resources.prediction_log import prediction_log

    return "client_request_id" in prediction_log.c


if __name__ == "__main__":
    main(sys.argv[1])
