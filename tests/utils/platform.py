"""Start and stop ``mlservice up`` for tests, exactly as ``make up`` runs it, on free ports."""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlservice.launcher.processes import port_free

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 360  # a cold start with the demo seed takes ~3 min on 2 busy cores
PORT_VARS = ("API", "DAGSTER", "MLFLOW", "RAY", "RAY_DASHBOARD", "S3", "SERVE", "POSTGRES", "REDIS")  # the last two: scale profile


def integration_marks(timeout_s: int) -> list[pytest.MarkDecorator]:
    """An integration module's ``pytestmark``: the tier's mark, and a generous time limit where
    pytest-timeout is installed."""
    marks = [pytest.mark.integration]
    if importlib.util.find_spec("pytest_timeout"):
        marks.append(pytest.mark.timeout(timeout_s))
    return marks


# A platform's ports are chosen at its start and some are bound much later (Serve's at the first
# deployment). Taken from the kernel's ephemeral range (bind to port 0), such a port could meanwhile
# become another platform's or the source port of any outgoing connection (seen in CI: the shared
# platform's Serve port busy while its platform was gone). So each pytest-xdist worker takes its
# platforms' ports from a band of its own, below the ephemeral range (32768+) and above Ray's
# worker ports (10002-19999).
PORT_BAND_START, PORT_BAND_WIDTH, PORT_BANDS = 20000, 1500, 8


def port_band(worker: str | None = None) -> range:
    """This process's band: by pytest-xdist worker (gw0, gw1, ...), the last band outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    index = int(worker[2:]) % (PORT_BANDS - 1) if worker[:2] == "gw" and worker[2:].isdigit() else PORT_BANDS - 1
    start = PORT_BAND_START + index * PORT_BAND_WIDTH
    return range(start, start + PORT_BAND_WIDTH)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports of this worker's band (``port_band``), none given out before by
    this process while it runs (a stopped platform's ports may still be in use: kept apart)."""
    band, ports = port_band(), []
    for _ in range(len(band)):
        port = band[next(_band_cursor) % len(band)]
        if port_free(port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"fewer than {count} free ports left in {band}")


_band_cursor = itertools.count(int.from_bytes(os.urandom(2), "big"))  # where this process starts in its band


def _stat(pid: str) -> tuple[str, int] | None:
    """(state, process group) of a pid from /proc/<pid>/stat, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[2])


def live_members(pgid: int) -> list[int]:
    """Pids of non-zombie processes in a process group (as mlservice/launcher/processes.py reads /proc)."""
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

    def ray_get(self, path: str, timeout_s: float = 10) -> httpx.Response:
        """GET a path of the Ray dashboard's REST API (with the cluster's token where it has one)."""
        token = self.data_dir / "secrets" / "ray_auth_token"
        headers = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
        with httpx.Client(trust_env=False, timeout=timeout_s) as client:
            return client.get(f"http://127.0.0.1:{self.ports['RAY_DASHBOARD']}{path}", headers=headers)

    def ray_dashboard(self, path: str) -> dict:
        """``ray_get`` as JSON."""
        return self.ray_get(path).json()

    def ray_healthy(self) -> bool:
        """Whether the Ray head answers its health check (the dashboard's ``gcs_healthz``)."""
        try:
            return self.ray_get("/api/gcs_healthz", timeout_s=3).status_code == 200
        except httpx.HTTPError:
            return False


def start(data_dir: Path, log_path: Path, args: tuple[str, ...] = (), extra_env: dict[str, str] | None = None) -> Platform:
    """Start ``mlservice up`` as ``make up`` does, and wait until it is up and ready."""
    ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True))
    # Only our MLSERVICE_* variables: every part is started by the launcher itself, and without
    # MLSERVICE_JWT_SECRET the launcher generates the development key into the data directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVICE_")}
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER comes from tests/conftest.py: the launcher must set it itself.
    for name in ("RAY_ADDRESS", "DAGSTER_HOME", "MLFLOW_TRACKING_URI", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        env.pop(name, None)
    env["MLSERVICE_DATA_DIR"] = str(data_dir)
    env.update({f"MLSERVICE_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(extra_env or {})
    platform = Platform(data_dir, log_path, ports, env)
    with open(log_path, "wb") as log:
        platform.proc = subprocess.Popen(
            [sys.executable, "-m", "mlservice.cli", "up", *args], cwd=REPO_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
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
    pytest.fail(f"mlservice up was not ready within {START_TIMEOUT_S} s:\n{platform.tail()}")


@contextmanager
def running_platform(data_dir: Path, log_path: Path, args: tuple[str, ...] = (),
                     extra_env: dict[str, str] | None = None) -> Iterator[Platform]:
    """``start``, and whatever happens after, ``stop`` and ``cleanup`` of the data directory."""
    platform = None
    try:
        platform = start(data_dir, log_path, args=args, extra_env=extra_env)
        yield platform
    finally:
        if platform is not None:
            stop(platform)
        cleanup(data_dir)


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


def assert_groups_gone(platform: Platform, *, stopped_by_launcher: bool = True) -> None:
    """Nothing the launcher started is left: its parts' process groups (named in its "stopping api
    (process group <pid>), ..." line when it stopped them itself) and any process whose environment
    names the data directory (also when the launcher was killed and its watcher stopped them)."""
    stopping = [line for line in platform.log().splitlines() if line.startswith("stopping ")]
    groups = {name: int(pid) for line in stopping for name, pid in re.findall(r"([\w-]+) \(process group (\d+)\)", line)}
    if stopped_by_launcher:
        assert {"api", "dagster-daemon", "dagster-webserver", "mlflow", "ray", "s3"} <= set(groups), platform.tail()
    def survivors() -> dict[str, list[int]]:
        left = {name: live_members(g) for name, g in groups.items()}
        left["anything with this data dir"] = processes_of(platform.data_dir)
        return {name: pids for name, pids in left.items() if pids}

    deadline = time.monotonic() + 30
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert survivors() == {}


def cleanup(data_dir: Path) -> None:
    """After stop: kill anything left of this data dir and remove Ray's temp dir (inside the data
    dir, with its short link in /tmp when the path is long: LaunchedPlatform.ray_temp_dir)."""
    from mlservice.launcher import state_dirs
    from mlservice.launcher.postgres import LocalPostgres

    sweep(data_dir)
    state_dirs.remove_ray_temp_dir(data_dir)
    LocalPostgres(home=data_dir / "postgres", port=0, password_path=data_dir / "unused").remove_external_cluster()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def ss_listening(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, line) of each `ss -ltnupH` line owned by one of ``pids``."""
    out = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True, timeout=30, check=True).stdout
    lines = [line for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids)]
    addresses = [line.split()[4].rsplit(":", 1)[0].strip("[]").split("%")[0] for line in lines]
    return [("::" if address == "*" else address, line) for address, line in zip(addresses, lines, strict=True)]


PART_MARKERS = (("api", "uvicorn"), ("ray", "mlservice.launcher.ray_head"), ("mlflow", "mlflow"),
                ("dagster-webserver", "dagster-webserver"), ("dagster-daemon", "dagster-daemon"),
                ("dagster-code", "mlservice.launcher.code_server api grpc"),
                ("s3", "mlservice.launcher.s3_server"),
                ("postgres", "postgres -D"), ("redis", "redis-server"))  # the last two: the scale profile


def parts(platform: Platform) -> dict[str, list[int]]:
    """The launcher's children by part (from their session leader's command line) -> live pids,
    the launcher's own session (itself, the seed step) left out."""
    by_session: dict[int, list[int]] = {}
    for pid in processes_of(platform.data_dir):
        try:
            sid = os.getsid(pid)
        except ProcessLookupError:
            continue
        if sid != platform.proc.pid:
            by_session.setdefault(sid, []).append(pid)
    named: dict[str, list[int]] = {}
    for sid, pids in by_session.items():
        leader = cmdline(sid)
        name = next((part for part, marker in PART_MARKERS if marker in leader), f"unknown:{leader[:80]}")
        named.setdefault(name, []).extend(pids)
    return named


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tenant_client(platform: Platform, tenant: str):
    """An HTTP client of the running API with a token for ``tenant`` minted by `mlservice token`."""
    token = subprocess.run(
        [sys.executable, "-m", "mlservice.cli", "token", "--tenant", tenant, "--ttl", "3600"],
        cwd=REPO_ROOT, env=platform.env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    return httpx.Client(base_url=platform.api, headers=bearer(token), trust_env=False, timeout=60)


def wait_deployment(http: httpx.Client, platform: Platform, headers: dict[str, str], deployment_id: str, done,
                    timeout_s: float = 240, *, fail_on_failed: bool = True) -> dict:
    """Poll ``GET /api/v1/deployments/{id}`` until ``done(view)`` (a 404 shows as ``{"status_code": 404, ...}``);
    fails on ``failed`` (unless ``fail_on_failed`` is False) or after ``timeout_s`` with the view and the platform's log."""
    deadline, view = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        reply = http.get(f"{platform.api}/api/v1/deployments/{deployment_id}", headers=headers)
        view = reply.json() if reply.status_code == 200 else {"status_code": reply.status_code, **reply.json()}
        if done(view):
            return view
        if fail_on_failed and view.get("status") == "failed":
            pytest.fail(f"deployment failed: {view}")
        time.sleep(2)
    pytest.fail(f"deployment {deployment_id} not as expected within {timeout_s} s: {view}\n{platform.tail(80)}")


def signal_part(platform: Platform, part: str, sig: int) -> list[int]:
    """Send ``sig`` to every live process of one part (its whole session: a crash of that machine's
    process, SIGSTOP to make it hang, SIGCONT to let it go on); the pids signalled."""
    pids = parts(platform).get(part, [])
    assert pids, f"no process of {part}: {parts(platform)}"
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def wait_restarted(platform: Platform, part: str, times: int = 1, timeout_s: float = 60) -> None:
    """Until the launcher's log says it restarted ``part`` (the ``times``-th time)."""
    deadline = time.monotonic() + timeout_s
    while platform.log().count(f"restarted {part} (") < times:
        assert time.monotonic() < deadline, f"{part} was not restarted within {timeout_s} s:\n{platform.tail()}"
        time.sleep(0.5)


def run_events(platform: Platform, run_id: str) -> list[tuple[str, str]]:
    """(GraphQL type, message) of each event of a Dagster run, in order."""
    query = """query($runId: ID!) { logsForRun(runId: $runId, limit: 1000) { __typename
        ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }"""
    with httpx.Client(trust_env=False, timeout=30) as client:
        body = client.post(f"http://127.0.0.1:{platform.ports['DAGSTER']}/graphql",
                           json={"query": query, "variables": {"runId": run_id}}).json()
    return [(e["__typename"], e.get("message") or "") for e in body["data"]["logsForRun"].get("events", [])]


def run_worker_pid(platform: Platform, run_id: str) -> int:
    """The pid of a run's worker process, as the worker reported it in the run's event log."""
    messages = [message for _, message in run_events(platform, run_id)]
    found = [int(m.split("(pid: ", 1)[1].split(")")[0]) for m in messages if m.startswith("Started process for run (pid: ")]
    assert found, messages
    return found[-1]


def running_ray_tasks(platform: Platform, name_part: str) -> list[str]:
    """Names of the Ray tasks RUNNING on the platform's cluster whose name contains ``name_part``."""
    body = platform.ray_dashboard("/api/v0/tasks?limit=1000&filter_keys=state&filter_predicates=%3D&filter_values=RUNNING")
    return [task["name"] for task in body["data"]["result"]["result"] if name_part in task["name"]]


def follow_job(client: httpx.Client, path: str, timeout_s: float = 400, seen: list | None = None) -> dict:
    """Poll a job's GET path until it ends (succeeded, failed, cancelled); its last view."""
    deadline, body = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if seen is not None:
            seen.append(body)
        if body.get("status") in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.5)
    pytest.fail(f"{path} did not end within {timeout_s} s: {body}")


def busy_ports(ports: dict[str, int], within_s: float = 30) -> dict[str, str]:
    """The ports still taken after up to ``within_s`` (a killed launcher's watcher stops the parts
    after a grace), each with what holds it as ``ss`` tells (state, addresses, process)."""
    deadline = time.monotonic() + within_s
    while (busy := [name for name, port in ports.items() if not port_free(port)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    holders = {}
    for name in busy:
        found = subprocess.run(["ss", "-tanpH", f"sport = :{ports[name]}"], capture_output=True, text=True, timeout=30, check=False)
        holders[name] = found.stdout.strip() or f"port {ports[name]}: ss shows nothing ({found.stderr.strip()})"
    return holders


def wait_for(what: str, check, timeout_s: float = 300, every_s: float = 2):
    """Call ``check`` every ``every_s`` until it returns something true (returned); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            assert found, f"{what}: not within {timeout_s:.0f} s"
            return found
        time.sleep(every_s)
