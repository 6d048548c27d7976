"""The whole platform for a benchmark: ``mlservice up --no-demo`` on free loopback ports in a
temporary data directory, started and stopped as a user would (Ctrl-C), with a sweep of whatever
still names the data directory afterwards (a launcher killed early leaves its parts running and
every later figure measured beside them)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from serving_vs_mlflow import Server, clean_env, free_port

REPO = Path(__file__).resolve().parents[1]
PORTS = ("API", "DAGSTER", "MLFLOW", "RAY", "RAY_DASHBOARD", "S3", "SERVE")
START_TIMEOUT_S = 420


def start_platform(tmp: Path, extra_env: dict[str, str] | None = None) -> tuple[Server, dict[str, int], dict[str, str]]:
    """``mlservice up --no-demo`` on free loopback ports and ``tmp`` as its data directory, ready."""
    import httpx

    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(PORTS):
        ports = {name: free_port() for name in PORTS}
    env = clean_env(MLSERVICE_DATA_DIR=str(tmp), MLFLOW_DISABLE_TELEMETRY="true",
                    **{f"MLSERVICE_{name}_PORT": str(port) for name, port in ports.items()}, **(extra_env or {}))
    for name in ("RAY_ADDRESS", "DAGSTER_HOME", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        env.pop(name, None)
    server = Server("mlservice up", [sys.executable, "-m", "mlservice.cli", "up", "--no-demo"], env=env, cwd=REPO,
                    log_path=tmp / "up.log").start()
    deadline = time.monotonic() + START_TIMEOUT_S
    ready = f"http://127.0.0.1:{ports['API']}/health/ready"
    with httpx.Client(trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeError(f"mlservice up exited:\n{server.tail()}")
            if "mlservice is up" in server.log_path.read_text(errors="replace"):
                try:
                    if client.get(ready).status_code == 200:
                        return server, ports, env
                except httpx.HTTPError:
                    pass
            time.sleep(1)
    raise RuntimeError(f"mlservice up was not ready within {START_TIMEOUT_S} s:\n{server.tail()}")


def stop_platform(server: Server, tmp: Path) -> None:
    """As Ctrl-C: SIGTERM to the launcher's group, which stops every part (each in a session of
    its own) within a minute; then SIGKILL to the group of anything left that names this data
    directory in its environment (a launcher killed early leaves its parts running)."""
    import signal

    from mlservice.launcher import state_dirs

    server.stop(term_grace_s=90)
    marker = f"MLSERVICE_DATA_DIR={tmp}\0".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                group = os.getpgid(int(entry.name))
                if group != os.getpgrp():
                    os.killpg(group, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
    state_dirs.remove_ray_temp_dir(tmp)


