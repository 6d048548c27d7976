"""A real PostgreSQL for tests (``mlservice.launcher.postgres.LocalPostgres``: its own cluster, 127.0.0.1 and a
free port, stopped by its process group): the session fixture ``postgres_server`` in
tests/conftest.py starts one; ``database()`` gives each user a database of its own."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlservice.launcher.postgres import LocalPostgres
from mlservice.launcher.processes import ManagedProcess, free_port, wait_until


class PostgresServer:
    def __init__(self, server: LocalPostgres) -> None:
        self.server = server

    def database(self, prefix: str = "t") -> str:
        """A new, empty database; its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.server.ensure_databases(name)
        return self.server.url(name)


@contextmanager
def postgres_server(home: Path) -> Iterator[PostgresServer]:
    server = LocalPostgres(home=home, port=free_port(), password_path=home / "password")
    server.init()
    process = ManagedProcess("postgres", server.argv(), env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                             log_path=home / "postgres.log", stop_signal=signal.SIGINT, popen_options=server.popen_options())
    process.start()
    try:
        wait_until(server.ready, timeout_s=60, what="PostgreSQL", process=process)
        yield PostgresServer(server)
    finally:
        process.stop()
        server.remove_external_cluster()
