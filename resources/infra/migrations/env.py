"""Alembic's environment for the state database. It migrates only on the connection that
``resources.infra.migrations.upgrade`` passes, inside that caller's locked transaction: never from a URL
of its own, never in offline (``--sql``) mode."""

from alembic import context

from resources.infra.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("the state database migrates through resources.infra.migrations.upgrade(engine)")
context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    target_metadata=context.config.attributes.get("target_metadata"),
)
with context.begin_transaction():
    context.run_migrations()
