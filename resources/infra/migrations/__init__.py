"""The state database's schema: Alembic revisions in ``versions/``, applied when a store opens.

``upgrade(engine)`` runs at engine creation (``resources.infra.state_db.StateStore``) on the store's own
engine. A database at the head is only read. Otherwise it takes the database's write lock
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory lock), applies every
revision not yet applied in that one transaction and records the head in
``mlservice_schema_version``. A second process opening the database at the same moment waits on
the lock, then finds nothing to do. The version table is not Alembic's
default ``alembic_version``: MLflow and Dagster keep theirs under that name, and one PostgreSQL
database may hold all three.

A schema change is a new revision beside the table's change in its owner module:
``alembic.command.revision(config(), "what", rev_id="0002")`` writes ``versions/0002_what.py``
after the current head; fill in its ``alembic.op`` operations. tests/unit/test_migrations.py
checks that the migrated schema equals the tables the code declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "mlservice_schema_version"
_PG_LOCK_KEY = 0x6D6C73_6D6967  # "mls" "mig": one advisory lock id for every migrating process
_SQLITE_LOCK_WAIT_MS = 600_000  # a rebuild of a large table may hold the lock this long


def config() -> Config:
    """An Alembic configuration for these revisions (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest), holding the migration lock. A
    database already at the head is only read (no lock: read-only users open it too)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = config()
    if revision == "head" and current(engine) == ScriptDirectory.from_config(cfg).get_current_head():
        return
    with _locked(engine) as conn:
        cfg.attributes["connection"] = conn  # env.py migrates on it, inside this transaction
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the database's migration lock; committed on
    exit, rolled back on an exception."""
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                yield conn
            return
        dbapi = conn.connection.driver_connection
        busy = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
        previous, dbapi.isolation_level = dbapi.isolation_level, None  # BEGIN is ours, not the driver's
        dbapi.execute(f"PRAGMA busy_timeout = {_SQLITE_LOCK_WAIT_MS}")
        try:
            with conn.begin():
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before the version is read
                yield conn
        finally:
            dbapi.isolation_level = previous
            dbapi.execute(f"PRAGMA busy_timeout = {int(busy)}")
