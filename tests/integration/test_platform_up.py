"""End to end: ``mlservice up`` exactly as ``make up`` runs it, checked over real HTTP on loopback.

One platform (Ray head, MLflow server, Dagster webserver and daemon, demo seed, API) is started
per module on free ports and a temporary data directory; the last test stops it, checks that no
child process survives, and starts it again on the same data directory. Takes a few minutes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlservice.launcher import Platform as LaunchedPlatform
from mlservice.launcher import free_port
from serving_api.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_TENANT, DEMO_MODEL = "acme-corp", "customer_churn_predictor"
PORT_VARS = ("API", "DAGSTER", "MLFLOW", "RAY", "RAY_DASHBOARD", "RAY_CLIENT")

pytestmark = [pytest.mark.integration]
if importlib.util.find_spec("pytest_timeout"):  # a generous limit where pytest-timeout is installed
    pytestmark.append(pytest.mark.timeout(600))


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports outside Ray's worker range."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port(exclude=ports))
    return sorted(ports)


def _stat(pid: str) -> tuple[str, int] | None:
    """(state, process group) of a pid from /proc/<pid>/stat, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[2])


def live_members(pgid: int) -> list[int]:
    """Pids of non-zombie processes in a process group (as mlservice/processes.py reads /proc)."""
    stats = {int(e.name): _stat(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()}
    return [pid for pid, st in stats.items() if st and st[1] == pgid and st[0] != "Z"]


def processes_of(data_dir: Path) -> list[int]:
    """Live pids whose environment names this data directory: whatever the launcher started."""
    marker = f"MLSERVICE_DATA_DIR={data_dir}\0".encode()
    def has_marker(entry: Path) -> bool:
        try:
            return marker in (entry / "environ").read_bytes()
        except OSError:
            return False

    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and has_marker(e) and (_stat(e.name) or ("Z",))[0] != "Z"]


@dataclass
class Platform:
    data_dir: Path
    log_path: Path
    ports: dict[str, int]
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['API']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def token(self) -> str:
        return re.search(r"export TOKEN=(\S+)", self.log()).group(1)


def start(data_dir: Path, log_path: Path) -> Platform:
    """Start ``mlservice up`` as ``make up`` does, and wait until it is up and ready."""
    ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS))))
    # Only our MLSERVICE_* variables: every part is started by the launcher itself, and without
    # MLSERVICE_JWT_SECRET the launcher generates the development key into the data directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVICE_")}
    for name in ("RAY_ADDRESS", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    env["MLSERVICE_DATA_DIR"] = str(data_dir)
    env.update({f"MLSERVICE_{name}_PORT": str(port) for name, port in ports.items()})
    platform = Platform(data_dir, log_path, ports, env)
    with open(log_path, "wb") as log:
        platform.proc = subprocess.Popen(
            [sys.executable, "-m", "mlservice.cli", "up"], cwd=REPO_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    deadline = time.monotonic() + 240
    with httpx.Client(trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            if platform.proc.poll() is not None:
                stop(platform)
                sweep(data_dir)
                pytest.fail(f"mlservice up exited with {platform.proc.returncode}:\n{platform.tail()}")
            if "mlservice is up" in platform.log():
                try:
                    if client.get(f"{platform.api}/health/ready").status_code == 200:
                        return platform
                except httpx.HTTPError:
                    pass
            time.sleep(1)
    stop(platform)
    sweep(data_dir)
    pytest.fail(f"mlservice up was not ready within 240 s:\n{platform.tail()}")


def stop(platform: Platform) -> None:
    """As Ctrl-C would: SIGTERM to the launcher's group, wait up to 60 s, then SIGKILL the group."""
    proc = platform.proc
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def sweep(data_dir: Path) -> None:
    """Safety net for a launcher that did not stop its children: SIGKILL their groups."""
    for pid in processes_of(data_dir):
        try:
            if os.getpgid(pid) != os.getpgrp():  # never our own group
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def assert_groups_gone(platform: Platform) -> None:
    # The children's process groups, from the launcher's "stopping <name> (process group <pid>) ...".
    groups = {name: int(pid) for name, pid in re.findall(r"stopping (\S+) \(process group (\d+)\)", platform.log())}
    assert {"api", "dagster-daemon", "dagster-webserver", "mlflow", "ray"} <= set(groups), platform.tail()
    def survivors() -> dict[str, list[int]]:
        left = {name: live_members(g) for name, g in groups.items()}
        left["anything with this data dir"] = processes_of(platform.data_dir)
        return {name: pids for name, pids in left.items() if pids}

    deadline = time.monotonic() + 30
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert survivors() == {}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("platform-data").resolve()
    state = {"current": None}
    try:
        state["current"] = start(data_dir, data_dir.parent / "up-1.log")
        yield state  # a holder: the restart test swaps in the second instance
    finally:
        if state["current"] is not None:
            stop(state["current"])
        sweep(data_dir)  # both instances share the data directory
        # Ray's per-data-dir temp folder (sockets, session logs) outlives the cluster.
        shutil.rmtree(LaunchedPlatform(Settings(data_dir=data_dir)).ray_temp_dir, ignore_errors=True)


@pytest.fixture
def up(platform) -> Platform:
    return platform["current"]


@pytest.fixture
def http():
    with httpx.Client(trust_env=False, timeout=30) as client:  # loopback only: never a proxy
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health(up, http):
    assert http.get(f"{up.api}/health/live").status_code == 200
    ready = http.get(f"{up.api}/health/ready")
    assert ready.status_code == 200
    assert ready.json()["components"] == {"mlflow": "ok", "dagster": "ok", "ray": "ok"}


def test_banner_token_and_curl_line(up, http):
    log = up.log()
    assert "export TOKEN=" in log
    curl = next(line.strip() for line in log.splitlines() if line.strip().startswith("curl "))
    url = shlex.split(curl)[-1]  # the printed command, quoting and all
    assert url.startswith(f"{up.api}/api/v1/models")
    response = http.get(url, headers=bearer(up.token()))
    assert response.status_code == 200, response.text
    [model] = [m for m in response.json()["data"] if m["name"] == DEMO_MODEL]
    assert (model["tenant_id"], model["stage"], model["current_version"]) == (DEMO_TENANT, "production", "1.0.0")


def test_cli_token_for_another_tenant_is_isolated(up, http):
    result = subprocess.run([sys.executable, "-m", "mlservice.cli", "token", "--tenant", "other-co"],
                            cwd=REPO_ROOT, env=up.env, capture_output=True, text=True, timeout=60, check=True)
    other = bearer(result.stdout.strip())
    listed = http.get(f"{up.api}/api/v1/models", headers=other)
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"] == []
    demo = http.get(f"{up.api}/api/v1/models", headers=bearer(up.token()), params={"name_prefix": DEMO_MODEL})
    model_id = demo.json()["data"][0]["model_id"]
    foreign = http.get(f"{up.api}/api/v1/models/{model_id}", headers=other)
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "MODEL_NOT_FOUND"


def test_no_token_is_401_with_challenge(up, http):
    response = http.get(f"{up.api}/api/v1/models")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_metrics(up, http):
    response = http.get(f"{up.api}/metrics")
    assert response.status_code == 200
    assert "mlservice_http_requests_total" in response.text


def test_dagster_graphql_has_code_location(up, http):
    url = f"http://127.0.0.1:{up.ports['DAGSTER']}/graphql"
    assert http.post(url, json={"query": "{ version }"}).json()["data"]["version"]
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } }
                              ... on PythonError { message } } } } } }"""
    # The webserver loads workspace.yaml at start; poll a little in case the location is reloading.
    deadline = time.monotonic() + 60
    while True:
        body = http.post(url, json={"query": query}).json()
        entries = {e["name"]: e for e in (body.get("data") or {}).get("workspaceOrError", {}).get("locationEntries", [])}
        entry = entries.get("mlservice") or {}
        if entry.get("loadStatus") == "LOADED" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation", body
    assert entry["locationOrLoadError"]["repositories"], body


def test_mlflow_has_registered_model(up, http):
    response = http.get(f"http://127.0.0.1:{up.ports['MLFLOW']}/api/2.0/mlflow/registered-models/get",
                        params={"name": f"{DEMO_TENANT}.{DEMO_MODEL}"})
    assert response.status_code == 200, response.text
    assert response.json()["registered_model"]["name"] == f"{DEMO_TENANT}.{DEMO_MODEL}"


def test_dev_jwt_secret_generated(up):
    secret = up.data_dir / "secrets" / "jwt_secret"
    assert secret.is_file() and len(secret.read_text().strip()) >= 32
    assert secret.stat().st_mode & 0o077 == 0  # owner-only


def test_stop_leaves_nothing_and_restart_keeps_the_model(platform, http):
    first = platform["current"]
    old_token = first.token()
    stop(first)
    assert first.proc.returncode == 0, first.tail()
    assert_groups_gone(first)
    platform["current"] = None

    second = platform["current"] = start(first.data_dir, first.data_dir.parent / "up-2.log")
    assert "already in production" in second.log()
    for token in (second.token(), old_token):  # the development key survived the restart
        response = http.get(f"{second.api}/api/v1/models", headers=bearer(token), params={"name_prefix": DEMO_MODEL})
        assert response.status_code == 200, response.text
        [model] = response.json()["data"]
        assert (model["stage"], model["current_version"]) == ("production", "1.0.0")

    stop(second)
    assert second.proc.returncode == 0, second.tail()
    assert_groups_gone(second)
    platform["current"] = None
