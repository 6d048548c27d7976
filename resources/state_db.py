"""API state in a SQL database (SQLite by default, PostgreSQL by URL) through SQLAlchemy Core.

``StateStore`` owns one engine. It is a Dagster resource as well as a plain object, so the API
and Dagster runs share the same tables: stage history, model locks, the audit log (and, as the
platform grows, jobs, ensembles and the prediction log).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from resources.state_migrations import upgrade_tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

model_locks = sa.Table(
    "model_locks",
    metadata,
    sa.Column("lock_key", sa.String(300), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

stage_transitions = sa.Table(
    "stage_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("from_stage", sa.String(32), nullable=True),
    sa.Column("to_stage", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.String(512), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_stage_transitions_model", "tenant_id", "model_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=True),
    sa.Column("subject", sa.String(256), nullable=True),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.String(2048), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Index("ix_audit_log_tenant_time", "tenant_id", "at"),
)


_ENGINE_INIT_LOCK = threading.Lock()


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=True),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(256), nullable=True),
    sa.Column("dagster_run_id", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("submitted_by", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("tenant_id", "kind", "idempotency_key", name="uq_jobs_idempotency"),
    sa.Index("ix_jobs_tenant_kind_time", "tenant_id", "kind", "created_at"),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - exercised via engine
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


TABLE_MODULES = ("resources.ensembles", "resources.model_artifacts", "resources.prediction_log")


def _import_table_modules() -> None:
    """Every table is defined before ``create_all``, whichever modules the caller imported."""
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)


class WalCheckpointer:
    """Checkpoints a SQLite WAL from its own thread, off every commit path.

    With SQLite's default, the commit that crosses ~1000 WAL pages also runs the checkpoint (and,
    under ``synchronous=NORMAL``, the fsync): every request waiting on that group commit of the
    prediction log waits for it (p99 20 -> ~10 ms without). The store's connections then set
    ``wal_autocheckpoint=0`` and this thread runs a PASSIVE checkpoint every ``interval_s``.
    """

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self.path, self.interval_s = path, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import sqlite3

        conn = sqlite3.connect(self.path, timeout=30)
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or locked: the next round catches up
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _no_autocheckpoint(dbapi_connection, _record) -> None:  # pragma: no cover - exercised via engine
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class StateStore(dg.ConfigurableResource):
    """The platform's own tables. ``database_url`` is any SQLAlchemy URL.

    ``background_checkpoint`` (SQLite files only; the API sets it) moves WAL checkpoints to a
    ``WalCheckpointer`` thread, stopped by ``dispose()``.
    """

    database_url: str
    background_checkpoint: bool = False

    _engine: "Engine | None" = PrivateAttr(default=None)
    _checkpointer: "WalCheckpointer | None" = PrivateAttr(default=None)

    @property
    def engine(self) -> "Engine":
        if self._engine is None:
            with _ENGINE_INIT_LOCK:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> "Engine":
        url = sa.engine.make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            if self.background_checkpoint and url.database and url.database != ":memory:":
                sa.event.listen(engine, "connect", _no_autocheckpoint)
                self._checkpointer = WalCheckpointer(url.database)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        _import_table_modules()
        metadata.create_all(engine)
        upgrade_tables(engine, metadata)
        return engine

    @contextmanager
    def begin(self) -> Iterator["Connection"]:
        with self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    # -- model locks: a lease row per model, so concurrent writers across processes serialise --
    def try_lock(self, key: str, owner: str, lease_s: float = 60.0) -> bool:
        """Take the lease on ``key`` unless someone else holds a live one. Never waits."""
        now = time.time()
        with self.begin() as conn:
            conn.execute(
                model_locks.delete().where(model_locks.c.lock_key == key, model_locks.c.expires_at < now)
            )
        try:
            with self.begin() as conn:
                conn.execute(model_locks.insert().values(lock_key=key, owner=owner, expires_at=now + lease_s))
            return True
        except sa.exc.IntegrityError:
            return False

    def unlock(self, key: str, owner: str) -> None:
        with self.begin() as conn:
            conn.execute(model_locks.delete().where(model_locks.c.lock_key == key, model_locks.c.owner == owner))
