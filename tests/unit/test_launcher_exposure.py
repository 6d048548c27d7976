"""``mlservice up`` refuses to run when one of its processes listens beyond loopback: at start and
in the periodic check while it runs. The parts here are small stand-ins started through the
launcher's own spawning (own session, log file, stop by process group); the real parts are
checked by the platform integration test."""

from __future__ import annotations

import os
import sys

import pytest

from mlservice.config.settings import Settings
from mlservice.launcher.processes import free_port
from mlservice.launcher.up import Platform, exposure
from tests.utils.launcher_runs import run_then_stop

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux /proc")

# Listen on HOST:PORT, and after DELAY seconds (if given) also on 0.0.0.0 (a lazily started worker).
PART = r"""
import socket, sys, time
host, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
first = socket.create_server((host, port))
if delay >= 0:
    time.sleep(delay)
    late = socket.create_server(("0.0.0.0", 0))
time.sleep(600)
"""


class StandInPlatform(Platform):
    def __init__(self, settings: Settings, parts: list[tuple[str, str, int, float]], lines: list[str]):
        super().__init__(settings, seed_demo=False, echo=lines.append)
        self.parts = parts

    def start(self) -> None:
        import time

        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        for name, host, port, delay in self.parts:
            self._spawn(name, [sys.executable, "-c", PART, host, str(port), str(delay)], dict(os.environ), stop_timeout_s=2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(self.listeners_now()) < len(self.parts):
            time.sleep(0.1)
        self.check_exposure()

    def listeners_now(self) -> list[exposure.Listener]:
        return exposure.listeners(exposure.processes_of(p.pid for p in self.processes))


def run(tmp_path, parts, interval_s: float = 30.0, **settings) -> tuple[int, list[str], list[int]]:
    lines: list[str] = []
    platform = StandInPlatform(Settings(data_dir=tmp_path, **settings), parts, lines)
    platform.exposure_interval_s = interval_s
    groups: list[int] = []
    original_stop = platform.stop

    def stop() -> None:
        groups.extend(p.pid for p in platform.processes)
        original_stop()

    platform.stop = stop
    # nothing to wait for: end the run loop at once, or (periodic check) after 20 s at most
    code = run_then_stop(platform, 0 if interval_s >= 30 else 20)
    return code, lines, groups


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_part_on_all_interfaces_stops_everything(tmp_path):
    bad, good = free_port(), free_port()
    code, lines, groups = run(tmp_path, [("mlflow", "127.0.0.1", good, -1), ("ray", "0.0.0.0", bad, -1)])
    assert code != 0
    message = "\n".join(lines)
    assert "refusing to run" in message and f"0.0.0.0:{bad}" in message and "python" in message
    assert f":{good}" not in message
    assert len(groups) == 2 and not any(alive(pid) for pid in groups)


def test_a_socket_opened_later_is_caught_by_the_periodic_check(tmp_path):
    code, lines, groups = run(tmp_path, [("ray", "127.0.0.1", free_port(), 1.0)], interval_s=0.5)
    assert code != 0 and "0.0.0.0:" in "\n".join(lines)
    assert not any(alive(pid) for pid in groups)


def test_loopback_parts_run(tmp_path):
    code, lines, _ = run(tmp_path, [("ray", "127.0.0.1", free_port(), -1), ("api", "127.0.0.1", free_port(), -1)])
    assert code == 0, lines


def test_the_api_may_listen_on_the_host_it_was_given(tmp_path):
    port = free_port()
    code, lines, _ = run(tmp_path, [("api", "0.0.0.0", port, -1)], api_host="0.0.0.0", api_port=port)
    assert code == 0, lines
    # the same socket when the API is meant for loopback only: refused
    port = free_port()
    code, lines, _ = run(tmp_path, [("api", "0.0.0.0", port, -1)], api_port=port)
    assert code != 0 and f"0.0.0.0:{port}" in "\n".join(lines)
