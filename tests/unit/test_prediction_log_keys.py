"""The prediction log is keyed per tenant: another tenant's reuse of a request id commits in the
same group commit without a retry; a reuse within one tenant is refused (the service suffixes);
the payload per record has a size cap; a database made when request_id was unique alone is
migrated with its rows."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from resources.infra.state_db import StateStore
from resources.predictions.log import PredictionLog, prediction_log


@pytest.fixture
def state(tmp_path):
    store = StateStore(database_url=f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.dispose()


def _fields(request_id: str, tenant: str, **extra) -> dict:
    return dict(request_id=request_id, tenant_id=tenant, model_id="m", model_version="1.0.0", **extra)


def test_the_same_request_id_in_two_tenants_shares_one_commit(state):
    """Tenant B reusing tenant A's id, queued in the same batch: one transaction, no row-by-row
    retry, both committed; the same id twice in one tenant is refused for that caller only."""
    plog = PredictionLog(state, max_wait_s=0)
    plog.start()
    original, entered, release, sizes = plog._insert, threading.Event(), threading.Event(), []

    def held(rows):
        sizes.append(len(rows))
        entered.set()
        assert release.wait(10)
        original(rows)

    plog._insert = held
    try:
        async def main():
            first = asyncio.ensure_future(plog.record(**_fields("warm-up", "tenant-a")))
            await asyncio.to_thread(entered.wait, 5)  # the writer is held inside the first insert
            tasks = [asyncio.ensure_future(plog.record(**_fields("shared-id", tenant))) for tenant in ("tenant-a", "tenant-b")]
            await asyncio.sleep(0.05)
            release.set()
            await first
            return await asyncio.gather(*tasks, return_exceptions=True)

        assert asyncio.run(main()) == [None, None]
        assert sizes == [1, 2]  # one batch held both tenants' rows and committed at once
        assert plog.transactions == 2 and plog.records_failed == 0
        with pytest.raises(sa.exc.IntegrityError):
            plog.record_sync(**_fields("shared-id", "tenant-a"))  # within one tenant: still a key
        assert [r["request_id"] for r in plog.records("tenant-b")] == ["shared-id"]
    finally:
        plog.close()


def test_a_payload_over_the_cap_keeps_a_marker_and_the_record(state):
    plog = PredictionLog(state, max_wait_s=0, max_payload_bytes=2048)
    try:
        features = [{"text": "x" * 100, "row": i} for i in range(100)]  # ~12 kB
        outputs = {"prediction": [0] * 100}
        plog.record_sync(**_fields("big", "t", features=features, outputs=outputs))
        plog.record_sync(**_fields("small", "t", features={"a": 1}, outputs={"prediction": [1]}))
        big, small = sorted(plog.records("t"), key=lambda r: r["request_id"])
        raw = json.dumps(features, separators=(",", ":")).encode()
        assert big["features"] == {"truncated": True, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        assert big["outputs"] == outputs  # the smaller part fits once the larger is replaced
        assert small["features"] == {"a": 1}
        with state.begin() as conn:
            stored = conn.execute(sa.select(prediction_log.c.features, prediction_log.c.outputs)).all()
        assert all(len(f or "") + len(o or "") <= 2048 for f, o in stored)

        both = {"prediction": ["y" * 3000]}  # neither half fits alone: both become markers
        plog.record_sync(**_fields("both", "t", features=[{"z": "w" * 3000}], outputs=both))
        [record] = [r for r in plog.records("t") if r["request_id"] == "both"]
        assert record["features"]["truncated"] and record["outputs"]["truncated"]
    finally:
        plog.close()


OLD_LAYOUT = (
    "CREATE TABLE prediction_log (id INTEGER NOT NULL PRIMARY KEY, request_id VARCHAR(128) NOT NULL, "
    "tenant_id VARCHAR(64) NOT NULL, subject VARCHAR(256), model_id VARCHAR(64) NOT NULL, "
    "model_version VARCHAR(64) NOT NULL, ensemble_id VARCHAR(64), at DATETIME NOT NULL, latency_ms FLOAT, "
    "features TEXT, outputs TEXT, status_code INTEGER DEFAULT 200 NOT NULL, UNIQUE (request_id))"
)


def test_an_old_layout_database_migrates_with_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_LAYOUT)
        conn.execute("CREATE INDEX ix_prediction_log_tenant_model_time ON prediction_log (tenant_id, model_id, at)")
        for i in range(3):
            conn.execute("INSERT INTO prediction_log (request_id, tenant_id, subject, model_id, model_version, at, features) "
                         f"VALUES ('r-{i}', 'tenant-a', 'u', 'm', '1.0.0', '2026-01-0{i + 1} 00:00:00.000000', '[{i}]')")
    store = StateStore(database_url=f"sqlite:///{path}")
    try:
        inspector = sa.inspect(store.engine)
        uniques = [sorted(u["column_names"]) for u in inspector.get_unique_constraints("prediction_log")]
        assert uniques == [["request_id", "tenant_id"]]
        assert {ix["name"] for ix in inspector.get_indexes("prediction_log")} >= {"ix_prediction_log_tenant_model_time"}
        assert "client_request_id" in {c["name"] for c in inspector.get_columns("prediction_log")}
        plog = PredictionLog(store, max_wait_s=0)
        try:
            rows = sorted(plog.records("tenant-a"), key=lambda r: r["request_id"])
            assert [(r["id"], r["request_id"], r["features"]) for r in rows] == [(1, "r-0", [0]), (2, "r-1", [1]), (3, "r-2", [2])]
            plog.record_sync(**_fields("r-0", "tenant-b"))  # refused by the old layout's key
            assert plog.count() == 4
        finally:
            plog.close()
    finally:
        store.dispose()
    again = StateStore(database_url=f"sqlite:///{path}")  # a second start finds nothing to migrate
    try:
        with again.begin() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM prediction_log")).scalar_one() == 4
            tables = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars().all()
        assert "prediction_log__old" not in tables
    finally:
        again.dispose()
