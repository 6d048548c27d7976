"""Child processes that we start and stop by their own process group.

Each child starts in a new session (``start_new_session=True``), so one signal to its group
reaches everything it spawned (Ray's raylet and GCS, Dagster's code server, uvicorn). Stop is
SIGTERM to the group, a bounded wait, then SIGKILL to the group, and then SIGKILL to whatever is
left in the child's session: Ray starts its workers in process groups of their own (same session).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class ManagedProcess:
    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None,
        stop_timeout_s: float = 15.0, stop_signal: int = signal.SIGTERM, popen_options: dict | None = None,
    ):
        """``stop_signal``: what starts the part's graceful stop (PostgreSQL: SIGINT, its fast
        shutdown); ``popen_options``: more for ``subprocess.Popen`` (a user to run as)."""
        self.name, self.argv, self.env, self.log_path, self.cwd = name, argv, env, log_path, cwd
        self.stop_timeout_s, self.stop_signal = stop_timeout_s, stop_signal
        self.popen_options = popen_options or {}
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0  # where this start's lines begin in the (appended) log

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, **self.popen_options,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """``stop_signal`` (SIGTERM) to the process group: the part's own graceful stop begins."""
        if self.proc is not None:
            _signal_group(self.proc.pid, self.stop_signal)  # session leader: its pid is the group id

    def stopped(self) -> bool:
        return self.proc is None or not _group_alive(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL to whatever is left of the group, then to the rest of its session (Ray starts its
        workers in process groups of their own, same session)."""
        if self.proc is None:
            return
        _signal_group(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _group_alive(self.proc.pid):
            self.proc.poll()
            time.sleep(0.1)
        _kill_session(self.proc.pid)
        self.proc.poll()

    def stop(self) -> None:
        stop_together([self])

    def log_since_start(self) -> str:
        """What the part wrote since its last start."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_together(processes: list[ManagedProcess]) -> None:
    """Stop parts at once rather than one after another: SIGTERM to every group, each waited for up
    to its own ``stop_timeout_s`` (polled together), then SIGKILL to what is left. The whole stop
    takes the longest grace plus the kill, not their sum (Ctrl-C of ``make up`` within 20 s)."""
    started = [p for p in processes if p.proc is not None]
    for process in started:
        process.terminate()
    now = time.monotonic()
    deadlines = {id(p): now + p.stop_timeout_s for p in started}
    waiting = list(started)
    while waiting:
        for process in list(waiting):
            process.proc.poll()
            if process.stopped():
                waiting.remove(process)
            elif time.monotonic() >= deadlines[id(process)]:
                process.kill()
                waiting.remove(process)
        time.sleep(0.1)
    for process in started:
        process.kill()  # the group is gone: this sweeps the rest of its session


def stop_groups(pgids: list[int], grace_s: float) -> None:
    """Stop process groups nobody holds a handle of (``mlservice.launcher.reaper``): SIGTERM to all, up to
    ``grace_s`` for them to end, SIGKILL to the rest and to the other members of their sessions."""
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_group_alive(pgid) for pgid in pgids):
        time.sleep(0.2)
    for pgid in pgids:
        _signal_group(pgid, signal.SIGKILL)
        _kill_session(pgid)


def _kill_session(sid: int) -> None:
    """SIGKILL to every live member of a session (a part's workers in process groups of their own)."""
    for pid in _session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg(0); look for a live member.
    if not Path("/proc").exists():
        return True
    return any(group == pgid for _, group, _ in _live_processes())


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) pids whose session id is ``sid``."""
    return [pid for pid, _, session in _live_processes() if session == sid]


def _live_processes():
    """(pid, process group, session) of every live (non-zombie) process, from /proc."""
    for entry in Path("/proc").iterdir() if Path("/proc").exists() else []:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(entry.name), int(fields[2]), int(fields[3])


def http_ok(url: str, headers: dict[str, str] | None = None, timeout_s: float = 2.0) -> bool:
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def unix_socket_accepts(path: Path, timeout_s: float = 2.0) -> bool:
    """A server listens on the unix socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str, process: ManagedProcess | None = None,
               tend: Callable[[], None] | None = None) -> None:
    """Poll ``check`` until true. ``tend``: called between polls instead of failing when ``process``
    dies (the launcher restarts dead parts there, and raises when one keeps dying)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if tend is not None:
            tend()
        elif process is not None and not process.alive():
            raise RuntimeError(f"{what} exited during start-up; last log lines:\n{process.tail()}")
        time.sleep(0.25)
    detail = f"; last log lines:\n{process.tail()}" if process else ""
    raise RuntimeError(f"{what} did not become ready within {timeout_s:.0f} s{detail}")


RAY_WORKER_PORTS = range(10002, 20000)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """A free loopback port outside Ray's worker range and ``exclude``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude and port not in RAY_WORKER_PORTS:
            return port
