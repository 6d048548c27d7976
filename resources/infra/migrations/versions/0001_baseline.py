"""Baseline: the state tables as of commit 4a3447b; created on an empty database, adopted in place
on one made before migrations.

A database made before migrations has no version table and any subset of these tables in the
layout of the commit that made it (tables came from ``create_all`` over whichever table modules
were imported, nullable columns were added by hand, prediction_log was keyed on request_id alone
before 6f309bc). No single revision describes all of them, so this one inspects rather than being
stamped: a missing table is created; in a present one, missing (nullable) columns and indexes are
added, and UNIQUE constraints other than the declared ones are replaced (SQLite cannot drop a
constraint: the table is rebuilt from the definition below with every row). On an empty database
it runs only the CREATE statements.

The tables are a frozen copy: later revisions change them, the owner modules hold the current ones.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

tables = sa.MetaData()
sa.Table(
    "model_locks", tables,
    sa.Column("lock_key", sa.String(300), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
sa.Table(
    "stage_transitions", tables,
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
sa.Table(
    "audit_log", tables,
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
sa.Table(
    "jobs", tables,
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
sa.Table(
    "ensembles", tables,
    sa.Column("ensemble_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("members", sa.Text, nullable=False),
    sa.Column("parallel_inference", sa.Boolean, nullable=False),
    sa.Column("fail_on_partial", sa.Boolean, nullable=False),
    sa.Column("min_models_required", sa.Integer, nullable=False),
    sa.Column("timeout_ms", sa.Integer, nullable=False),
    sa.Column("model_type", sa.String(32), nullable=False),
    sa.Column("classes", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_ensembles_tenant_name"),
)
sa.Table(
    "prediction_log", tables,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("client_request_id", sa.String(128), nullable=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=True),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("ensemble_id", sa.String(64), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("features", sa.Text, nullable=True),
    sa.Column("outputs", sa.Text, nullable=True),
    sa.Column("status_code", sa.Integer, nullable=False, server_default=sa.text("200")),
    sa.Index("ix_prediction_log_tenant_model_time", "tenant_id", "model_id", "at"),
    sa.UniqueConstraint("tenant_id", "request_id", name="uq_prediction_log_tenant_request"),
)
sa.Table(
    "model_artifacts", tables,
    sa.Column("mlflow_name", sa.String(300), primary_key=True),
    sa.Column("mlflow_version", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("classes", sa.Text, nullable=True),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
)


def upgrade() -> None:
    conn = op.get_bind()
    for table in tables.sorted_tables:
        if sa.inspect(conn).has_table(table.name):
            _adopt(conn, table)
        else:
            table.create(conn)


def downgrade() -> None:
    for table in reversed(tables.sorted_tables):
        op.drop_table(table.name)


def _adopt(conn: sa.Connection, table: sa.Table) -> None:
    """Bring a table made before migrations to the definition above, keeping every row."""
    inspector = sa.inspect(conn)
    present = {c["name"] for c in inspector.get_columns(table.name)}
    found = {tuple(u["column_names"]): u["name"] for u in inspector.get_unique_constraints(table.name)}
    declared = {tuple(c.name for c in u.columns): u.name for u in table.constraints if isinstance(u, sa.UniqueConstraint)}
    if set(found) != set(declared) and conn.dialect.name == "sqlite":
        _rebuild_sqlite(conn, table, present, [ix["name"] for ix in inspector.get_indexes(table.name)])
        return
    for column in table.columns:
        if column.name not in present:  # only nullable columns were ever added to an existing table
            op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    for columns in set(found) - set(declared):
        op.drop_constraint(found[columns], table.name, type_="unique")
    for columns in set(declared) - set(found):
        op.create_unique_constraint(declared[columns], table.name, list(columns))
    indexes = {ix["name"] for ix in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexes:
            index.create(conn)


def _rebuild_sqlite(conn: sa.Connection, table: sa.Table, present: set[str], indexes: list[str]) -> None:
    """Rename the table, create it from the definition, copy every row (the columns both layouts
    have), drop the old one. Runs inside the migration's transaction: all or nothing."""
    old = f"{table.name}__old"
    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{old}"')
    for name in indexes:  # index names are global in SQLite: the new table reuses them
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    table.create(conn)
    columns = ", ".join(f'"{c.name}"' for c in table.columns if c.name in present)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{old}"')
    conn.exec_driver_sql(f'DROP TABLE "{old}"')
