"""API state in a SQL database (SQLite by default, PostgreSQL by URL) through SQLAlchemy Core.

``StateStore`` owns one engine; opening it brings the schema to the newest migration
(``resources.infra.migrations``), so no table depends on which modules were imported. It is a Dagster
resource as well as a plain object, so the API and Dagster runs share the same tables.

Every table is defined once, on ``metadata``, by the module that writes it: ``model_locks`` here
(the store's leases), ``stage_transitions`` in ``registry``, ``audit_log`` in ``audit``, ``jobs``,
``ensembles``, ``prediction_log``, ``model_artifacts``, ``drift_reports`` and ``monitoring_policies``
in the modules of those names, ``prediction_feedback`` in ``feedback``. Every datetime column is a
``UTCDateTime``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from resources.infra.migrations import upgrade as upgrade_schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Dialect, Engine

metadata = sa.MetaData()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """A timezone-aware datetime column: stores UTC and reads back aware UTC datetimes on every
    database (SQLite keeps no offset: it holds the UTC wall clock). A naive datetime written is
    taken as UTC."""

    impl = sa.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken as UTC (the one rule for the platform's times)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


model_locks = sa.Table(
    "model_locks",
    metadata,
    sa.Column("lock_key", sa.String(300), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

_ENGINE_INIT_LOCK = threading.Lock()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - exercised via engine
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


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

    _engine: Engine | None = PrivateAttr(default=None)
    _checkpointer: WalCheckpointer | None = PrivateAttr(default=None)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with _ENGINE_INIT_LOCK:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        url = sa.engine.make_url(self.database_url)
        file_db = url.get_backend_name() == "sqlite" and bool(url.database) and url.database != ":memory:"
        checkpoint = self.background_checkpoint and file_db
        if url.get_backend_name() == "sqlite":
            if file_db:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            if checkpoint:
                sa.event.listen(engine, "connect", _no_autocheckpoint)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        try:
            upgrade_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        if checkpoint:
            self._checkpointer = WalCheckpointer(url.database)
        return engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
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
