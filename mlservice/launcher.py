"""``mlservice up``: the embedded platform on loopback, all state under one data directory.

Starts a local Ray head, the MLflow tracking server (SQLite + local artifacts), the Dagster
webserver and daemon, then the API, and seeds the demo tenant on first start through the API (a
training job on Dagster and Ray). A part whose address
is configured (``MLSERVICE_RAY_ADDRESS``, ``MLSERVICE_MLFLOW_TRACKING_URI``,
``MLSERVICE_DAGSTER_URL``) is taken as external and not started. Every child runs in its own
process group and is stopped by it on Ctrl-C, SIGTERM, or when any part dies.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

from mlservice.processes import ManagedProcess, http_ok, wait_until
from serving_api.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _bin(name: str) -> str:
    """A console script of this environment (next to the running interpreter)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_secret_file(path: Path, nbytes: int = 32) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(nbytes))


class Platform:
    def __init__(self, settings: Settings, *, seed_demo: bool = True, echo: Callable[[str], None] = print):
        self.settings = settings
        self.seed_demo = seed_demo
        self.echo = echo
        self.processes: list[ManagedProcess] = []
        self.start_ray = settings.ray_address is None
        self.start_mlflow = settings.mlflow_tracking_uri is None
        self.start_dagster = settings.dagster_url is None
        self._stop = threading.Event()

    # -- preparation -----------------------------------------------------------------------
    @property
    def ray_temp_dir(self) -> Path:
        # Ray's unix socket paths must stay short: a per-data-dir folder under /tmp.
        digest = hashlib.sha1(str(self.settings.data_dir).encode()).hexdigest()[:10]
        return Path("/tmp") / f"mlservice-ray-{digest}"

    def prepare(self) -> None:
        s = self.settings
        for folder in (s.data_dir, s.tenants_dir, s.logs_dir, s.mlflow_artifacts_dir, s.dagster_home / "storage"):
            folder.mkdir(parents=True, exist_ok=True)
        if s.jwt_secret is None and s.jwt_public_key is None:
            ensure_secret_file(s.dev_jwt_secret_path)
        ensure_secret_file(s.ray_token_path)
        shutil.copyfile(REPO_ROOT / "dagster.yaml", s.dagster_home / "dagster.yaml")
        busy = [
            f"{name} port {port} ({var})"
            for name, port, var, wanted in (
                ("API", s.api_port, "MLSERVICE_API_PORT", True),
                ("Dagster", s.dagster_port, "MLSERVICE_DAGSTER_PORT", self.start_dagster),
                ("MLflow", s.mlflow_port, "MLSERVICE_MLFLOW_PORT", self.start_mlflow),
                ("Ray GCS", s.ray_port, "MLSERVICE_RAY_PORT", self.start_ray),
                ("Ray dashboard", s.ray_dashboard_port, "MLSERVICE_RAY_DASHBOARD_PORT", self.start_ray),
                ("Ray client", s.ray_client_port, "MLSERVICE_RAY_CLIENT_PORT", self.start_ray),
            )
            if wanted and not port_free(port)
        ]
        if busy:
            raise RuntimeError("ports already in use: " + ", ".join(busy) + "; set the variables to free ports")

    def environment(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            MLSERVICE_DATA_DIR=str(s.data_dir),
            MLSERVICE_MLFLOW_TRACKING_URI=s.mlflow_tracking_uri or f"http://127.0.0.1:{s.mlflow_port}",
            MLSERVICE_DAGSTER_URL=s.effective_dagster_url,
            MLSERVICE_RAY_ADDRESS=s.effective_ray_address,
            MLSERVICE_RAY_DASHBOARD_URL=s.effective_ray_dashboard_url,
            MLSERVICE_DATABASE_URL=s.effective_database_url,
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(s.ray_token_path),
            RAY_USAGE_STATS_ENABLED="0",
            MLFLOW_DISABLE_TELEMETRY="true",  # no phoning home from a self-hosted platform
            DAGSTER_HOME=str(s.dagster_home),
            MLSERVICE_DAGSTER_STORAGE_DIR=str(s.dagster_home / "storage"),
            PYTHONUNBUFFERED="1",
        )
        env["MLFLOW_TRACKING_URI"] = env["MLSERVICE_MLFLOW_TRACKING_URI"]
        return env

    # -- the parts -------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str], stop_timeout_s: float = 15.0) -> ManagedProcess:
        process = ManagedProcess(
            name, argv, env=env, log_path=self.settings.logs_dir / f"{name}.log", cwd=REPO_ROOT,
            stop_timeout_s=stop_timeout_s,
        )
        process.start()
        self.processes.append(process)
        return process

    def _ray_argv(self) -> list[str]:
        s = self.settings
        taken = {s.api_port, s.dagster_port, s.mlflow_port, s.ray_port, s.ray_dashboard_port, s.ray_client_port}
        agent_port = free_port(exclude=taken)
        metrics_port = free_port(exclude=taken | {agent_port})
        return [
            _bin("ray"), "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1", "--port", str(s.ray_port),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(s.ray_dashboard_port),
            "--ray-client-server-port", str(s.ray_client_port),
            "--dashboard-agent-listen-port", str(agent_port), "--metrics-export-port", str(metrics_port),
            "--temp-dir", str(self.ray_temp_dir),
        ]

    def _mlflow_argv(self) -> list[str]:
        s = self.settings
        return [
            _bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(s.mlflow_port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{s.mlflow_dir / 'mlflow.db'}",
            "--artifacts-destination", str(s.mlflow_artifacts_dir), "--serve-artifacts",
        ]

    def start(self) -> None:
        s = self.settings
        self.prepare()
        env = self.environment()
        waits: list[tuple[str, Callable[[], bool], ManagedProcess, float]] = []
        if self.start_ray:
            # `ray start --block` lingers on SIGTERM; its state is disposable, so the wait is short.
            ray = self._spawn("ray", self._ray_argv(), env, stop_timeout_s=5.0)
            waits.append(("Ray head", lambda: http_ok(s.effective_ray_dashboard_url + "/api/gcs_healthz"), ray, 120))
        if self.start_mlflow:
            mlflow = self._spawn("mlflow", self._mlflow_argv(), env)
            waits.append(("MLflow server", lambda: http_ok(f"http://127.0.0.1:{s.mlflow_port}/health"), mlflow, 120))
        if self.start_dagster:
            # Create (or migrate) the instance's SQLite storage once, before the webserver and the
            # daemon both try: two processes stamping a fresh database race into two alembic heads.
            subprocess.run([_bin("dagster"), "instance", "migrate"], env=env, cwd=REPO_ROOT, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=300)
            workspace = str(REPO_ROOT / "workspace.yaml")
            web = self._spawn(
                "dagster-webserver",
                [_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(s.dagster_port), "-w", workspace],
                env,
            )
            self._spawn("dagster-daemon", [_bin("dagster-daemon"), "run", "-w", workspace], env)
            waits.append(("Dagster webserver", lambda: http_ok(f"{s.effective_dagster_url}/server_info"), web, 180))
        for what, check, process, timeout_s in waits:
            self.echo(f"waiting for {what} ...")
            wait_until(check, timeout_s=timeout_s, what=what, process=process)
        api = self._spawn(
            "api",
            [sys.executable, "-m", "uvicorn", "serving_api.main:create_app", "--factory",
             "--host", s.api_host, "--port", str(s.api_port), "--no-access-log"],
            env,
        )
        wait_until(lambda: http_ok(f"http://127.0.0.1:{s.api_port}/health/ready"), timeout_s=120, what="API", process=api)
        if self.seed_demo:
            self.echo("seeding the demo tenant (first start only) ...")
            subprocess.run([sys.executable, "-m", "mlservice.cli", "seed-demo"], env=env, check=True, cwd=REPO_ROOT)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.proc is not None:
                self.echo(f"stopping {process.name} (process group {process.pid}) ...")
                process.stop()
        self.processes.clear()

    # -- running ---------------------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        self._stop.set()

    def run(self, on_ready: Callable[[], None]) -> int:
        """Start, call ``on_ready``, block until a signal or a dead part, stop. Returns an exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.request_stop)
        code = 0
        try:
            self.start()
            on_ready()
            while not self._stop.wait(0.5):
                dead = next((p for p in self.processes if not p.alive()), None)
                if dead is not None:
                    self.echo(f"{dead.name} exited unexpectedly; last log lines:\n{dead.tail()}")
                    code = 1
                    break
        except Exception as exc:  # noqa: BLE001 - report, then clean up whatever started
            self.echo(f"start-up failed: {exc}")
            code = 1
        finally:
            self.stop()
        return code


RAY_WORKER_PORTS = range(10002, 20000)


def free_port(exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """A free loopback port outside Ray's worker range and ``exclude``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude and port not in RAY_WORKER_PORTS:
            return port
