"""A Redis server of the platform's own: the scale profile's Feast online store and shared API
state, and the tests' real Redis.

Its configuration is a file (owner-only: it holds the password, which a command line would show
to every user), written on every start: 127.0.0.1 and the given port only, no Unix socket,
protected mode, a password (a generated owner-only secret), its files in its own directory,
snapshots there. Debian's ``redis-server`` package, or ``MLSERVICE_REDIS_SERVER`` (the binary).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlservice.launcher.state_dirs import ensure_secret_file


def server_binary() -> str | None:
    return os.environ.get("MLSERVICE_REDIS_SERVER") or shutil.which("redis-server")


@dataclass
class LocalRedis:
    home: Path
    port: int
    password_path: Path

    def password(self) -> str:
        ensure_secret_file(self.password_path)
        return self.password_path.read_text().strip()

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password()}@127.0.0.1:{self.port}/{db}"

    def write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = self.home / "redis.conf"
        lines = [
            "bind 127.0.0.1", f"port {self.port}", "unixsocket ''", "protected-mode yes", "daemonize no",
            f"requirepass {self.password()}", f"dir {self.home}", "dbfilename dump.rdb", "logfile ''",
            "save 60 1000", "appendonly no",
            "set-proc-title no",  # its title rewrite overwrites its environment, which names the platform's processes
        ]
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return config

    def argv(self) -> list[str]:
        binary = server_binary()
        if binary is None:
            raise RuntimeError("Redis is not installed (Debian: apt-get install redis-server); "
                               "or set MLSERVICE_REDIS_SERVER to the redis-server binary")
        return [binary, str(self.write_config())]

    def client(self):
        import redis

        return redis.Redis.from_url(self.url(), socket_timeout=2)

    def ready(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

