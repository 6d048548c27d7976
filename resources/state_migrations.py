"""Bringing an existing state database up to the tables the code declares, at engine start.

``create_all`` makes missing tables; then ``upgrade_tables``:

- drops UNIQUE constraints that a table retired (``info={"retired_unique": [(column, ...)]}``) and
  adds the ones it now declares: SQLite cannot drop a constraint, so the table is rebuilt in one
  transaction with every row kept; PostgreSQL drops and adds constraints;
- adds columns that appeared after the database was created (nullable ones: ADD COLUMN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def upgrade_tables(engine: "Engine", metadata: sa.MetaData) -> None:
    _drop_retired_uniques(engine, metadata)
    _add_missing_columns(engine, metadata)


def _add_missing_columns(engine: "Engine", metadata: sa.MetaData) -> None:
    """Columns added to a table after a database was created (nullable ones only): ADD COLUMN."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def _unique_sets_sqlite(run, table_name: str) -> set[tuple[str, ...]]:
    """Column tuples of the UNIQUE constraints written in a SQLite table's CREATE TABLE
    (``run(sql)`` returns the rows of a statement)."""
    found = set()
    for _seq, index, _unique, origin, *_ in run(f'PRAGMA index_list("{table_name}")'):
        if origin == "u":
            found.add(tuple(row[2] for row in run(f'PRAGMA index_info("{index}")')))
    return found


def _rebuild_sqlite_table(engine: "Engine", table: sa.Table, retired: set[tuple[str, ...]]) -> None:
    """SQLite cannot drop a constraint: in ONE transaction, rename the table, create it anew from
    the metadata (with its indexes), copy every row (the columns both layouts have), drop the old
    one. Another process that migrated first is seen inside the transaction and left alone."""
    dialect, old = engine.dialect, f"{table.name}__old"
    raw = engine.raw_connection()
    dbapi = raw.driver_connection
    previous = dbapi.isolation_level
    dbapi.isolation_level = None  # the driver would otherwise commit before each DDL statement
    cursor = dbapi.cursor()

    def run(sql: str) -> list:
        return cursor.execute(sql).fetchall()

    try:
        run("BEGIN IMMEDIATE")
        try:
            if not retired & _unique_sets_sqlite(run, table.name):
                run("ROLLBACK")
                return
            present = {row[1] for row in run(f'PRAGMA table_info("{table.name}")')}
            indexes = [row[1] for row in run(f'PRAGMA index_list("{table.name}")') if row[3] == "c"]
            run(f'ALTER TABLE "{table.name}" RENAME TO "{old}"')
            for index in indexes:  # index names are global in SQLite: the new table reuses them
                run(f'DROP INDEX "{index}"')
            run(str(sa.schema.CreateTable(table).compile(dialect=dialect)))
            for index in table.indexes:
                run(str(sa.schema.CreateIndex(index).compile(dialect=dialect)))
            columns = ", ".join(f'"{c.name}"' for c in table.columns if c.name in present)
            run(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{old}"')
            run(f'DROP TABLE "{old}"')
            run("COMMIT")
        except BaseException:
            if dbapi.in_transaction:
                run("ROLLBACK")
            raise
    finally:
        cursor.close()
        dbapi.isolation_level = previous
        raw.close()


def _drop_retired_uniques(engine: "Engine", metadata: sa.MetaData) -> None:
    """A table that declares ``info={"retired_unique": [(column, ...), ...]}`` loses those UNIQUE
    constraints on a database created before they were retired, and gains the ones the metadata
    now declares: SQLite rebuilds the table (rows kept), other databases drop and add constraints."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        retired = {tuple(columns) for columns in table.info.get("retired_unique", ())}
        if not retired or not inspector.has_table(table.name):
            continue
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                existing = _unique_sets_sqlite(lambda sql: conn.exec_driver_sql(sql).fetchall(), table.name)
            if retired & existing:
                _rebuild_sqlite_table(engine, table, retired)
            continue
        existing = {tuple(c["column_names"]): c["name"] for c in inspector.get_unique_constraints(table.name)}
        wanted = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
        with engine.begin() as conn:
            for columns, name in existing.items():
                if columns in retired:
                    conn.execute(sa.text(f'ALTER TABLE {table.name} DROP CONSTRAINT IF EXISTS "{name}"'))
            for constraint in wanted:
                if tuple(c.name for c in constraint.columns) not in existing:
                    conn.execute(sa.schema.AddConstraint(constraint))
