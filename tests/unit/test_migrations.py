"""The state database's schema comes from the migrations (resources/infra/migrations), and a data
directory made by the code before them is upgraded in place with every row.

tests/data/state_e063f0e.db and state_4a3447b.db are API state databases made by the code of those
commits (e063f0e: before the safety issue, prediction_log keyed on request_id alone, no
client_request_id, no model_artifacts; 4a3447b: the last commit before migrations) through their
own stores: jobs, an ensemble, prediction records, audit records, stage transitions (and an
artifact record at 4a3447b). tests/data/make_legacy_state_db.py made them and says how.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from resources.infra import migrations
from resources.infra.state_db import StateStore, metadata
from resources.jobs.records import JobStore
from resources.models.artifact_records import ArtifactRecords
from resources.models.ensembles import EnsembleStore
from resources.models.registry import ModelRegistry
from resources.predictions.log import PredictionLog
from resources.tenants.audit import AuditLog

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "tests" / "data"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # the fixtures' fixed times (make_legacy_state_db.py)


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrations.config()).get_current_head()


HEAD = _head()  # the newest revision


def _store(path: Path) -> StateStore:
    return StateStore(database_url=f"sqlite:///{path}")


def _rows(path: Path) -> dict[str, list[dict]]:
    """Every row of every table, read with sqlite3 (no SQLAlchemy types), by table."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [dict(r) for r in conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid')] for t in tables}


def _schema(engine: sa.Engine) -> dict:
    inspector = sa.inspect(engine)
    return {
        table: {
            "columns": {c["name"]: (str(c["type"]), c["nullable"], c["default"]) for c in inspector.get_columns(table)},
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)),
        }
        for table in inspector.get_table_names()
    }


def _schema_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:  # SQLite counts every change of the schema
        return conn.execute("PRAGMA schema_version").fetchone()[0]


def test_the_migrations_make_exactly_the_tables_the_code_declares(tmp_path):
    """Every module of resources/ that defines a table is imported, then the migrated schema is
    compared with the declarations (types, nullability, defaults, keys, indexes)."""
    for module in sorted((REPO_ROOT / "resources").rglob("*.py")):
        if "migrations" not in module.parts and re.search(r"\bsa\.Table\(", module.read_text()):
            import_module(".".join(module.relative_to(REPO_ROOT).with_suffix("").parts))
    store = _store(tmp_path / "fresh.db")
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "version_table": migrations.VERSION_TABLE, "compare_type": True, "compare_server_default": True,
            })
            assert compare_metadata(context, metadata) == []
        assert set(sa.inspect(store.engine).get_table_names()) == set(metadata.tables) | {migrations.VERSION_TABLE}
        assert migrations.current(store.engine) == HEAD
    finally:
        store.dispose()


@pytest.mark.parametrize("commit", ["e063f0e", "4a3447b"])
def test_a_database_made_before_migrations_is_upgraded_in_place(tmp_path, commit):
    path = tmp_path / "state.db"
    shutil.copy(DATA / f"state_{commit}.db", path)
    before = _rows(path)
    fresh = _store(tmp_path / "fresh.db")
    store = _store(path)
    try:
        assert migrations.current(store.engine) == HEAD
        assert _schema(store.engine) == _schema(fresh.engine)
        after = _rows(path)
        for table, rows in before.items():  # every row, every stored value
            assert [{k: row[k] for k in rows[0]} for row in after[table]] == rows, table
        _readable_through_the_stores(store, before, client_ids=commit != "e063f0e")
        rows, version = _rows(path), _schema_version(path)
        migrations.upgrade(store.engine)  # a second upgrade is a no-op
        store.dispose()
        store = _store(path)
        assert migrations.current(store.engine) == HEAD
        assert _schema_version(path) == version and _rows(path) == rows
    finally:
        store.dispose()
        fresh.dispose()


def test_an_older_partial_database_gets_its_missing_tables_columns_and_indexes(tmp_path):
    """Before every table module was imported at start a database could hold only some tables,
    and a table made early lacks the nullable columns added later (and here its index)."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE jobs (job_id VARCHAR(64) NOT NULL PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, "
            "kind VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, model_name VARCHAR(128), request TEXT NOT NULL, "
            "request_hash VARCHAR(64) NOT NULL, result TEXT, idempotency_key VARCHAR(256), "
            "submitted_by VARCHAR(256) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, "
            "CONSTRAINT uq_jobs_idempotency UNIQUE (tenant_id, kind, idempotency_key))"
        )
        conn.execute("INSERT INTO jobs (job_id, tenant_id, kind, status, request, request_hash, submitted_by, created_at, "
                     "updated_at) VALUES ('j-1', 't', 'training', 'queued', '{}', 'h', 'u', '2026-03-01 09:30:00.000000', "
                     "'2026-03-01 09:30:00.000000')")
    fresh, store = _store(tmp_path / "fresh.db"), _store(path)
    try:
        assert _schema(store.engine) == _schema(fresh.engine)
        job = JobStore(store).get("t", "j-1")
        assert (job.status, job.created_at, job.dagster_run_id, job.finished_at) == ("queued", T0, None, None)
    finally:
        store.dispose()
        fresh.dispose()


def _readable_through_the_stores(store: StateStore, before: dict[str, list[dict]], *, client_ids: bool) -> None:
    jobs = JobStore(store)
    for row in before["jobs"]:
        job = jobs.get(row["tenant_id"], row["job_id"])
        assert (job.kind, job.status, job.error) == (row["kind"], row["status"], row["error"])
        assert job.created_at.tzinfo == UTC and job.updated_at >= job.created_at
    done = next(j for j in jobs.list("acme-corp") if j.status == "succeeded")
    assert done.result == {"version": "1.0.0"} and (done.started_at, done.finished_at) == (T0, T0 + timedelta(minutes=3))
    [ensemble] = EnsembleStore(store).list("acme-corp")
    assert ensemble.name == "churn-vote" and len(ensemble.members) == 2 and ensemble.created_at.tzinfo == UTC

    plog = PredictionLog(store, max_wait_s=0)
    try:
        records = sorted(plog.records("acme-corp") + plog.records("globex"), key=lambda r: r["request_id"])
        assert [(r["request_id"], r["at"], r["status_code"]) for r in records] == [
            ("req-0", T0, 200), ("req-1", T0 + timedelta(seconds=1), 207), ("req-2", T0 + timedelta(seconds=2), 200),
        ]
        assert [r["client_request_id"] for r in records] == (["client-0", "client-1", "client-2"] if client_ids else [None] * 3)
        assert records[0]["features"] == {"total_orders": 0} and records[1]["ensemble_id"] == "e-1"
        plog.record_sync(request_id="req-0", tenant_id="initech", model_id="m-9", model_version="1.0.0",
                         client_request_id="req-0")  # keyed per tenant now: another tenant's id is free
        assert plog.count() == 4
    finally:
        plog.close()

    audit = AuditLog(store).records()
    assert [(r["request_id"], r["status"], r["at"]) for r in audit] == [("req-b", 403, T0 + timedelta(seconds=5)), ("req-a", 201, T0)]

    history = ModelRegistry(tracking_uri="sqlite:///unused.db", state=store)._history("acme-corp", "m-1")
    assert [(h["to_stage"], h["changed_at"]) for h in history["1.0.0"]] == [
        ("development", T0), ("staging", T0 + timedelta(minutes=1)), ("production", T0 + timedelta(minutes=2)),
    ]
    artifact = ArtifactRecords(store).get("acme-corp.churn", 1)
    assert (artifact is not None) == ("model_artifacts" in before)
    if artifact is not None:
        assert artifact.registered_at == T0 and artifact.files == {"model.skops": "1" * 64}


def test_an_upgrade_waits_for_the_one_in_progress(tmp_path):
    """While one engine migrates (held inside its table rebuild), another engine's upgrade waits
    for the lock instead of reading the version, then finds nothing to do."""
    path = tmp_path / "state.db"
    shutil.copy(DATA / "state_e063f0e.db", path)
    first, second = (sa.create_engine(f"sqlite:///{path}") for _ in range(2))
    entered, release, errors = threading.Event(), threading.Event(), []

    def hold(_conn, _cursor, statement, *_args):
        if statement.startswith('ALTER TABLE "prediction_log" RENAME'):
            entered.set()
            assert release.wait(30)

    def upgrade(engine):
        try:
            migrations.upgrade(engine)
        except Exception as exc:
            errors.append(exc)

    sa.event.listen(first, "before_cursor_execute", hold)
    threads = [threading.Thread(target=upgrade, args=(engine,)) for engine in (first, second)]
    try:
        threads[0].start()
        assert entered.wait(30)
        threads[1].start()
        threads[1].join(0.5)
        assert threads[1].is_alive()  # waiting on the lock
        release.set()
        for thread in threads:
            thread.join(30)
        assert errors == [] and _rows(path)[migrations.VERSION_TABLE] == [{"version_num": HEAD}]
    finally:
        release.set()
        first.dispose()
        second.dispose()


_OPEN = """
import sys, time
import alembic.command, alembic.script
from resources.infra.state_db import StateStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
store = StateStore(database_url=f"sqlite:///{sys.argv[1]}")
store.engine
store.dispose()
"""


def test_processes_starting_at_once_upgrade_one_database_once(tmp_path):
    """Three processes open a database made before migrations at the same moment: one migrates,
    the others wait for it and find nothing to do."""
    path = tmp_path / "state.db"
    shutil.copy(DATA / "state_e063f0e.db", path)
    before = _rows(path)
    start = str(time.time() + 5)  # after every process has imported
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN, str(path), start], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    after = _rows(path)
    assert after[migrations.VERSION_TABLE] == [{"version_num": HEAD}]
    assert {t: len(after[t]) for t in before} == {t: len(r) for t, r in before.items()}


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path):
    """The copy of prediction_log's rows fails after its rename and re-creation: nothing stays."""
    path = tmp_path / "state.db"
    shutil.copy(DATA / "state_e063f0e.db", path)
    before, version = _rows(path), _schema_version(path)

    def fail(_conn, _cursor, statement, *_args):
        if statement.startswith('INSERT INTO "prediction_log"'):
            raise RuntimeError("disk full")

    sa.event.listen(sa.Engine, "before_cursor_execute", fail)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            _ = _store(path).engine
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", fail)
    assert _rows(path) == before and _schema_version(path) == version
    store = _store(path)  # and the next start migrates it
    try:
        assert migrations.current(store.engine) == HEAD
        assert _rows(path)["prediction_log"] == [{**row, "client_request_id": None} for row in before["prediction_log"]]
    finally:
        store.dispose()
