"""``mlservice up``: the embedded platform on loopback, all state under one data directory.

Starts an S3-compatible server (moto, in memory: ``mlservice.launcher.embedded_s3``, seeded with the
demo's buckets and files at every start), a local Ray head, the MLflow tracking server (SQLite +
local artifacts), the Dagster webserver and daemon, then the API, and seeds the demo tenant on
first start through the API (a training job on Dagster and Ray). A part whose address is
configured (``MLSERVICE_S3_ENDPOINT_URL``, ``MLSERVICE_RAY_ADDRESS``,
``MLSERVICE_MLFLOW_TRACKING_URI``, ``MLSERVICE_DAGSTER_URL``) is taken as external and not
started. Every child runs in its own process group. A part that dies is restarted, with what is
left of its group and session killed first (Ray's head after a crash, a Dagster daemon whose run
workers died with it: run monitoring fails those runs), at most ``RESTARTS_PER_WINDOW`` times in
``RESTART_WINDOW_S``; beyond that the platform stops. Ctrl-C or SIGTERM stops every part at once
(SIGTERM to every group, each part's grace, then SIGKILL), so a stop takes the longest grace, not
their sum. Should the launcher itself be killed (SIGKILL, the
OOM killer), a watcher it started first stops the parts (``mlservice.launcher.reaper``).

Exposure: every part binds 127.0.0.1 (Ray with ``RAY_LOOPBACK_ENV``, and without its client
server: ``mlservice.launcher.ray_head``), and the launcher checks that with the sockets its processes
actually hold (``mlservice.launcher.exposure``) after start, after the demo seed and every 30 s: anything
beyond loopback but the API on ``MLSERVICE_API_HOST`` stops the platform. Children get only the
environment they need (``mlservice.launcher.child_env``); the data dir is 0700 and its files 0600
(``mlservice.launcher.state_dirs``), Ray's temp dir included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlservice.config.settings import Settings
from mlservice.launcher import child_env, dagster_instance, embedded_s3, exposure, ray_head, scale, state_dirs
from mlservice.launcher.processes import (  # noqa: F401 (RAY_WORKER_PORTS, free_port: re-exported)
    RAY_WORKER_PORTS,
    ManagedProcess,
    free_port,
    http_ok,
    port_free,
    stop_together,
    unix_socket_accepts,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
RESTARTS_PER_WINDOW = 3  # restarts of one part within RESTART_WINDOW_S before the platform gives up
RESTART_WINDOW_S = 600.0


# MLflow 3's server starts a job runner (huey consumers for its GenAI scorers and trace archival)
# unless told not to; the platform uses neither, and the consumers' polling took 45% of one core
# while the test tier's platforms idled (sampled per process during the integration tier).
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class PartKeepsDying(RuntimeError):
    """A part died more than ``RESTARTS_PER_WINDOW`` times within ``RESTART_WINDOW_S``."""


def _bin(name: str) -> str:
    """A console script of this environment (next to the running interpreter)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Platform:
    def __init__(self, settings: Settings, *, seed_demo: bool = True, echo: Callable[[str], None] = print):
        self.settings = settings
        self.seed_demo = seed_demo
        self.echo = echo
        self.processes: list[ManagedProcess] = []
        self.start_ray = settings.ray_address is None
        self.start_mlflow = settings.mlflow_tracking_uri is None
        self.start_dagster = settings.dagster_url is None
        self.start_s3 = settings.s3_endpoint_url is None and settings.s3_embedded
        self.scale = scale.ScaleServers(settings) if settings.profile == "scale" else None
        self.exposure_interval_s = 30.0
        self._stop = threading.Event()
        self._reaper: subprocess.Popen | None = None
        self._restarts: dict[str, list[float]] = {}  # part -> monotonic times of its restarts

    # -- preparation -----------------------------------------------------------------------
    @property
    def ray_temp_dir(self) -> Path:
        """What Ray is given: $MLSERVICE_DATA_DIR/ray, or a short link to it (socket path length)."""
        return state_dirs.ray_temp_dir(self.settings.data_dir)

    def prepare(self) -> None:
        s = self.settings
        state_dirs.make_private(s.data_dir)  # umask 0o077 first: everything below is owner-only
        for folder in (s.tenants_dir, s.logs_dir, s.mlflow_artifacts_dir, s.dagster_home / "storage"):
            folder.mkdir(parents=True, exist_ok=True)
        if s.jwt_secret is None and s.jwt_public_key is None:
            state_dirs.ensure_secret_file(s.dev_jwt_secret_path)
        state_dirs.ensure_secret_file(s.ray_token_path)
        dagster_instance.write(s, s.dagster_home)
        if self.start_ray or self.start_dagster:  # Ray's sockets and the Dagster code server's (state_dirs)
            state_dirs.prepare_ray_temp_dir(s.data_dir)
        busy = [
            f"{name} port {port} ({var})"
            for name, port, var, wanted in (
                ("API", s.api_port, "MLSERVICE_API_PORT", True),
                ("Dagster", s.dagster_port, "MLSERVICE_DAGSTER_PORT", self.start_dagster),
                ("MLflow", s.mlflow_port, "MLSERVICE_MLFLOW_PORT", self.start_mlflow),
                ("Ray GCS", s.ray_port, "MLSERVICE_RAY_PORT", self.start_ray),
                ("Ray dashboard", s.ray_dashboard_port, "MLSERVICE_RAY_DASHBOARD_PORT", self.start_ray),
                ("S3 (embedded)", s.s3_port, "MLSERVICE_S3_PORT", self.start_s3),
                ("Ray Serve", s.serve_port, "MLSERVICE_SERVE_PORT", self.start_ray),
                ("PostgreSQL", s.postgres_port, "MLSERVICE_POSTGRES_PORT", self.scale is not None),
                ("Redis", s.redis_port, "MLSERVICE_REDIS_PORT", self.scale is not None),
            )
            if wanted and not port_free(port)
        ]
        if busy:
            raise RuntimeError("ports already in use: " + ", ".join(busy) + "; set the variables to free ports")
        if self.scale is not None:
            self.scale.prepare()

    def environment(self, part: str = "dagster") -> dict[str, str]:
        """The environment of one part (``child_env.PARTS``); only "api" and "seed" see JWT keys."""
        s = self.settings
        env = dict(os.environ)
        env.update(child_env.RAY_LOOPBACK_ENV)
        env.update(
            MLSERVICE_DATA_DIR=str(s.data_dir),
            MLSERVICE_MLFLOW_TRACKING_URI=s.mlflow_tracking_uri or f"http://127.0.0.1:{s.mlflow_port}",
            MLSERVICE_DAGSTER_URL=s.effective_dagster_url,
            MLSERVICE_RAY_ADDRESS=s.effective_ray_address,
            MLSERVICE_RAY_DASHBOARD_URL=s.effective_ray_dashboard_url,
            MLSERVICE_SERVE_PORT=str(s.serve_port),
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
        if self.scale is not None:
            env.update(self.scale.environment())
        if self.start_s3:
            env.update(embedded_s3.child_environment(s, env))
        return child_env.for_part(env, part)

    # -- the parts -------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str], stop_timeout_s: float = 15.0,
               **options) -> ManagedProcess:
        """``options``: more for ``ManagedProcess`` (a stop signal, Popen options)."""
        process = ManagedProcess(
            name, argv, env=env, log_path=self.settings.logs_dir / f"{name}.log", cwd=REPO_ROOT,
            stop_timeout_s=stop_timeout_s, **options,
        )
        self._started(process)
        return process

    def _started(self, process: ManagedProcess) -> None:
        process.start()
        if process not in self.processes:
            self.processes.append(process)
        # for the reaper, should this process be killed: the groups of now (a restarted part's old
        # group id is not left there for another process to take)
        with open(self.groups_file, "w") as groups:
            groups.write("".join(f"{p.pid}\n" for p in self.processes if p.pid is not None))

    def restart(self, part: ManagedProcess) -> bool:
        """Start a part that died again (what is left of its group and session killed first).
        False, and nothing started, when it already restarted ``RESTARTS_PER_WINDOW`` times within
        ``RESTART_WINDOW_S``: it keeps dying, so the platform stops rather than loop."""
        now = time.monotonic()
        recent = [t for t in self._restarts.get(part.name, []) if now - t < RESTART_WINDOW_S]
        if len(recent) >= RESTARTS_PER_WINDOW:
            self.echo(f"{part.name} died {len(recent) + 1} times within {RESTART_WINDOW_S / 60:.0f} minutes: stopping the platform")
            return False
        self._restarts[part.name] = [*recent, now]
        part.kill()  # its workers may outlive it (Ray's raylet and GCS, Dagster's code server and run workers)
        self._started(part)
        self.echo(f"restarted {part.name} (process group {part.pid}; restart {len(recent) + 1} of "
                  f"{RESTARTS_PER_WINDOW} allowed within {RESTART_WINDOW_S / 60:.0f} minutes)")
        if part.name == "s3":  # in memory: it comes back empty
            wait_until(lambda: embedded_s3.ready(self.settings), timeout_s=60, what="S3 server (embedded)", process=part)
            self.seed_s3()
        return True

    def tend(self) -> None:
        """Restart every part that died (``restart``), during start-up as while running: on two
        busy cores Ray's head can give up on its own raylet after its 30 s, with GCS answering.
        ``PartKeepsDying`` when one died too often."""
        for dead in [p for p in self.processes if not p.alive()]:
            self.echo(f"{dead.name} exited unexpectedly (exit status {dead.proc.returncode}); "
                      f"last log lines:\n{dead.tail()}")
            if not self.restart(dead):
                raise PartKeepsDying(dead.name)

    @property
    def groups_file(self) -> Path:
        return self.settings.data_dir / "process_groups"

    def _start_reaper(self) -> None:
        """The watcher that stops the parts if this process dies without stopping them (``mlservice.launcher.reaper``)."""
        from mlservice.launcher.reaper import start_time

        self.groups_file.unlink(missing_ok=True)
        os.close(os.open(self.groups_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # owner-only, as the data dir
        # its environment: none of the launcher's (no key, no secret); it needs only Python and the repository
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "mlservice.launcher.reaper", str(os.getpid()), str(start_time(os.getpid())), str(self.groups_file)],
            cwd=REPO_ROOT, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO_ROOT)},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def _mlflow_argv(self) -> list[str]:
        s = self.settings
        return [
            _bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(s.mlflow_port), "--workers", "1",
            # the scale profile's PostgreSQL comes as MLFLOW_BACKEND_STORE_URI (its password kept off the command line)
            *([] if self.scale is not None else ["--backend-store-uri", f"sqlite:///{s.mlflow_dir / 'mlflow.db'}"]),
            "--artifacts-destination", str(s.mlflow_artifacts_dir), "--serve-artifacts",
        ]

    def start_s3_server(self) -> ManagedProcess:
        """The embedded S3 server (``mlservice.launcher.embedded_s3``): spawned, not yet waited for."""
        return self._spawn("s3", embedded_s3.server_argv(self.settings), self.environment("s3"), stop_timeout_s=5.0)

    def seed_s3(self) -> list[str]:
        """Buckets and demo files on the embedded S3 server (it keeps nothing between starts)."""
        written = embedded_s3.seed(self.settings, self.environment("s3"))
        self.echo(f"embedded S3 at {embedded_s3.endpoint_url(self.settings)} (in memory): {', '.join(written)}")
        return written

    def _start_scale_servers(self) -> None:
        """The scale profile's PostgreSQL and Redis, ready, with the platform's databases."""
        servers = self.scale
        # neither needs more of ours (the data dir names the platform's processes: tests/utils/platform.processes_of)
        base = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "MLSERVICE_DATA_DIR": str(self.settings.data_dir)}
        postgres = self._spawn("postgres", servers.postgres.argv(), base, stop_signal=signal.SIGINT,
                               popen_options=servers.postgres.popen_options())
        redis = self._spawn("redis", servers.redis.argv(), base)
        self.echo("waiting for PostgreSQL and Redis ...")
        wait_until(servers.postgres.ready, timeout_s=60, what="PostgreSQL", process=postgres)
        wait_until(servers.redis.ready, timeout_s=30, what="Redis", process=redis)
        servers.create_databases()

    def start(self) -> None:
        s = self.settings
        self.prepare()
        self._start_reaper()
        if self.scale is not None:
            self._start_scale_servers()
        env = self.environment("dagster")
        waits: list[tuple[str, Callable[[], bool], ManagedProcess, float]] = []
        if self.start_s3:
            waits.append(("S3 server (embedded)", lambda: embedded_s3.ready(s), self.start_s3_server(), 60))
        if self.start_ray:
            argv, port_env = ray_head.head_command(s, self.ray_temp_dir)
            # `ray start --block` lingers on SIGTERM; its state is disposable, so the wait is short.
            ray = self._spawn("ray", argv, {**self.environment("ray"), **port_env}, stop_timeout_s=5.0)
            waits.append(("Ray head", lambda: ray_head.started(ray) and http_ok(s.effective_ray_dashboard_url + "/api/gcs_healthz"),
                          ray, 120))
        if self.start_mlflow:
            mlflow = self._spawn("mlflow", self._mlflow_argv(), {**self.environment("mlflow"), **MLFLOW_SERVER_ENV})
            waits.append(("MLflow server", lambda: http_ok(f"http://127.0.0.1:{s.mlflow_port}/health"), mlflow, 120))
        if self.start_dagster:
            # Create (or migrate) the instance's SQLite storage once, before the webserver and the
            # daemon both try: two processes stamping a fresh database race into two alembic heads.
            subprocess.run([_bin("dagster"), "instance", "migrate"], env=env, cwd=REPO_ROOT, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=300)
            # one code server for the webserver and the daemon (dagster_instance: why), loaded before they
            # start: each loads its workspace once at start
            socket = state_dirs.code_server_socket(s.data_dir)
            # `dagster api grpc` does not end on SIGTERM or SIGINT (its main thread then joins a thread that waits
            # for a shutdown call): a short grace, then SIGKILL, for it and its run workers (run monitoring fails them)
            code = self._spawn("dagster-code", dagster_instance.code_server_argv(sys.executable, socket), env, stop_timeout_s=5.0)
            workspace = str(dagster_instance.write_workspace(s.dagster_home, socket))
            self.echo("waiting for the Dagster code server ...")
            wait_until(lambda: unix_socket_accepts(socket), timeout_s=180, what="Dagster code server",
                       process=code, tend=self.tend)
            web = self._spawn(
                "dagster-webserver",
                [_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(s.dagster_port), "-w", workspace],
                env,
            )
            self._spawn("dagster-daemon", [_bin("dagster-daemon"), "run", "-w", workspace], env)
            waits.append(("Dagster webserver", lambda: http_ok(f"{s.effective_dagster_url}/server_info"), web, 180))
        for what, check, process, timeout_s in waits:
            self.echo(f"waiting for {what} ...")
            wait_until(check, timeout_s=timeout_s, what=what, process=process, tend=self.tend)
        if self.start_s3:
            self.seed_s3()
        api = self._spawn(
            "api",
            [sys.executable, "-m", "uvicorn", "serving_api.main:create_app", "--factory",
             "--host", s.api_host, "--port", str(s.api_port), "--no-access-log",
             *(["--workers", str(s.effective_api_workers)] if s.effective_api_workers > 1 else [])],
            self.environment("api"),
        )
        wait_until(lambda: http_ok(f"http://127.0.0.1:{s.api_port}/health/ready"), timeout_s=180, what="API", process=api,
                   tend=self.tend)
        self.check_exposure()
        if self.seed_demo:
            self.echo("seeding the demo tenant (first start only) ...")
            subprocess.run([sys.executable, "-m", "mlservice.cli", "seed-demo"], env=self.environment("seed"),
                           check=True, cwd=REPO_ROOT)
            self.check_exposure()  # Ray workers and Dagster run workers start lazily: look again

    # -- exposure --------------------------------------------------------------------------
    def check_exposure(self) -> None:
        """Raise ``ExposureError`` when a part listens beyond loopback (the API on its host excepted)."""
        live = [p for p in self.processes if p.alive()]
        api = next((p.pid for p in live if p.name == "api"), None)
        found = exposure.offenders([p.pid for p in live], api_root=api, api_host=self.settings.api_host,
                                   api_port=self.settings.api_port)
        if found:
            raise exposure.ExposureError(found)

    def stop(self) -> None:
        started = [p for p in self.processes if p.proc is not None]
        if started:
            self.echo("stopping " + ", ".join(f"{p.name} (process group {p.pid})" for p in started) + " ...")
        stop_together(started)
        self.processes.clear()
        if self._reaper is not None:  # every part is stopped: nothing left to watch over
            self._reaper.terminate()
            self._reaper.wait(timeout=10)
            self._reaper = None
        self.groups_file.unlink(missing_ok=True)
        state_dirs.unlink_ray_temp_link(self.settings.data_dir)

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
            next_check = time.monotonic() + self.exposure_interval_s
            while not self._stop.wait(0.5):
                self.tend()
                if time.monotonic() >= next_check:
                    self.check_exposure()
                    next_check = time.monotonic() + self.exposure_interval_s
        except exposure.ExposureError as exc:
            self.echo(str(exc))
            code = 3
        except PartKeepsDying:  # restart() said so
            code = 1
        except Exception as exc:
            self.echo(f"start-up failed: {exc}")
            code = 1
        finally:
            self.stop()
        return code
