"""The state database: tables grow new nullable columns on an existing database, and the API's
store checkpoints its SQLite WAL from its own thread (and stops it)."""

from __future__ import annotations

import sqlite3
import threading
import time

import sqlalchemy as sa

from resources.infra.state_db import StateStore


def test_an_older_database_gets_the_new_nullable_columns(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # prediction_log as it was before 'subject' existed
        conn.execute(
            "CREATE TABLE prediction_log (id INTEGER PRIMARY KEY, request_id VARCHAR(128) NOT NULL UNIQUE, "
            "tenant_id VARCHAR(64) NOT NULL, model_id VARCHAR(64) NOT NULL, model_version VARCHAR(64) NOT NULL, "
            "ensemble_id VARCHAR(64), at DATETIME NOT NULL, latency_ms FLOAT, features TEXT, outputs TEXT, "
            "status_code INTEGER DEFAULT 200 NOT NULL)"
        )
        conn.execute("INSERT INTO prediction_log (request_id, tenant_id, model_id, model_version, at) "
                     "VALUES ('r-1', 't', 'm', '1.0.0', '2026-01-01 00:00:00')")
    import resources.predictions.log  # noqa: F401 - registers the table on the metadata

    store = StateStore(database_url=f"sqlite:///{path}")
    try:
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("prediction_log")}
        assert "subject" in columns
        with store.begin() as conn:
            rows = conn.execute(sa.text("SELECT request_id, subject FROM prediction_log")).all()
        assert rows == [("r-1", None)]  # nothing stored was lost
    finally:
        store.dispose()


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wal-checkpointer"]


def test_background_checkpoint_takes_checkpoints_off_the_commit_path(tmp_path):
    before = len(_checkpointers())
    store = StateStore(database_url=f"sqlite:///{tmp_path / 'api.db'}", background_checkpoint=True)
    try:
        with store.begin() as conn:
            assert conn.execute(sa.text("PRAGMA wal_autocheckpoint")).scalar() == 0
            conn.execute(sa.text("CREATE TABLE filler (x TEXT)"))
        for _ in range(50):
            with store.begin() as conn:
                conn.execute(sa.text("INSERT INTO filler VALUES (:x)"), {"x": "y" * 4000})
        assert len(_checkpointers()) == before + 1
        # rows reach the database file only by a checkpoint; the commits did none (autocheckpoint
        # is off) and this test runs none: the thread must
        database = tmp_path / "api.db"
        deadline = time.time() + 10
        while time.time() < deadline and database.stat().st_size < 50 * 4000:
            time.sleep(0.1)
        assert database.stat().st_size >= 50 * 4000
    finally:
        store.dispose()
    assert len(_checkpointers()) == before  # dispose stopped the thread


def test_plain_stores_keep_sqlite_autocheckpoint(tmp_path):
    store = StateStore(database_url=f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        with store.begin() as conn:
            assert conn.execute(sa.text("PRAGMA wal_autocheckpoint")).scalar() == 1000
    finally:
        store.dispose()
