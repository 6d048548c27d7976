"""A PostgreSQL server of the platform's own: the scale profile's database (API state, prediction
log, audit; Dagster's and MLflow's storage) and the tests' real PostgreSQL.

One cluster directory, initialised once (``initdb``: UTF-8, password authentication only, the
password a generated owner-only secret), the server on 127.0.0.1 and a free port only (its Unix
socket in the cluster directory, not /var/run), stopped by its process group with SIGINT
(PostgreSQL's fast shutdown: a SIGTERM "smart" shutdown waits for every client to leave).

PostgreSQL refuses to run as root: as root (a container, CI), the server and ``initdb`` run as the
system's ``postgres`` user and the cluster lives under that user's home
(``~postgres/mlservice/<digest of the cluster path>``), because the platform's data directory is
owner-only (root's). Binaries: ``MLSERVICE_POSTGRES_BIN_DIR``, else ``pg_config --bindir``, else
the newest ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package), else PATH.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlservice.launcher.state_dirs import ensure_secret_file

SUPERUSER = "mlservice"
SYSTEM_USER = "postgres"


def bin_dir() -> Path | None:
    """Where ``postgres`` and ``initdb`` are (None: not installed)."""
    configured = os.environ.get("MLSERVICE_POSTGRES_BIN_DIR")
    candidates = [Path(configured)] if configured else []
    if not configured and shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(Path(found))
    debian = Path("/usr/lib/postgresql")
    if not configured and debian.is_dir():
        versions = sorted((p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
        candidates += [p / "bin" for p in versions]
    if not configured and shutil.which("postgres"):
        candidates.append(Path(shutil.which("postgres")).resolve().parent)
    return next((c for c in candidates if (c / "postgres").is_file() and (c / "initdb").is_file()), None)


@dataclass
class LocalPostgres:
    """``home``: where the platform keeps this server (its cluster, unless run as root: see the
    module); ``password_path``: the superuser's password (created when missing, owner-only)."""

    home: Path
    port: int
    password_path: Path

    @property
    def run_as(self) -> pwd.struct_passwd | None:
        """The system user the server runs as when we are root (None: as ourselves)."""
        return pwd.getpwnam(SYSTEM_USER) if os.geteuid() == 0 else None

    @property
    def cluster_dir(self) -> Path:
        user = self.run_as
        if user is None:
            return self.home / "cluster"
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:16]
        return Path(user.pw_dir) / "mlservice" / digest

    def remove_external_cluster(self) -> None:
        """Remove the cluster when it lives outside ``home`` (run as root, under ~postgres): what
        removing the platform's data directory leaves behind. A cluster inside ``home`` goes with it."""
        if not self.cluster_dir.is_relative_to(self.home):
            shutil.rmtree(self.cluster_dir, ignore_errors=True)

    def password(self) -> str:
        ensure_secret_file(self.password_path)
        return self.password_path.read_text().strip()

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}:{self.password()}@127.0.0.1:{self.port}/{database}"

    def popen_options(self) -> dict:
        """What ``subprocess.Popen`` needs beside the argv (the user to run as, when we are root)."""
        user = self.run_as
        return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def init(self) -> None:
        """``initdb`` once (a cluster already there is kept, with its data)."""
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql); "
                               "or set MLSERVICE_POSTGRES_BIN_DIR to the folder holding postgres and initdb")
        cluster = self.cluster_dir
        if (cluster / "PG_VERSION").is_file():
            return
        user = self.run_as
        cluster.mkdir(parents=True, exist_ok=True, mode=0o700)
        if user is not None:
            for folder in (cluster.parent, cluster):
                os.chown(folder, user.pw_uid, user.pw_gid)
        with tempfile.NamedTemporaryFile("w", dir=cluster.parent, prefix=".pw", delete=False) as pwfile:
            pwfile.write(self.password() + "\n")
        if user is not None:
            os.chown(pwfile.name, user.pw_uid, user.pw_gid)
        try:
            done = subprocess.run(
                [str(binaries / "initdb"), "-D", str(cluster), "-U", SUPERUSER, "--pwfile", pwfile.name, "-E", "UTF8",
                 "--locale", "C", "--auth-local", "scram-sha-256", "--auth-host", "scram-sha-256"],
                capture_output=True, text=True, check=False, **self.popen_options(),
            )
        finally:
            os.unlink(pwfile.name)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    def argv(self) -> list[str]:
        binaries = bin_dir()
        assert binaries is not None, "init() first"
        return [str(binaries / "postgres"), "-D", str(self.cluster_dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.cluster_dir}",
                "-c", "max_connections=200", "-c", "shared_buffers=128MB"]

    def ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url("postgres", driver="postgresql"), connect_timeout=2).close()
        except psycopg.Error:
            return False
        return True

    def ensure_databases(self, *names: str) -> None:
        """Create each database that is not there yet."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres", driver="postgresql"), autocommit=True) as conn:
            present = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in names:
                if name not in present:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
