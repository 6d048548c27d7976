"""A real Redis for tests (``mlservice.launcher.redis_server.LocalRedis``: 127.0.0.1, a free port, a password,
stopped by its process group): the session fixture ``redis_server`` in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlservice.launcher.processes import ManagedProcess, free_port, wait_until
from mlservice.launcher.redis_server import LocalRedis


@contextmanager
def redis_server(home: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(home=home, port=free_port(), password_path=home.parent / f"{home.name}.password")
    process = ManagedProcess("redis", server.argv(), env={"PATH": "/usr/bin:/bin"}, log_path=home.parent / f"{home.name}.log")
    process.start()
    try:
        wait_until(server.ready, timeout_s=30, what="Redis", process=process)
        yield server
    finally:
        process.stop()
