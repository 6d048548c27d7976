"""``mlservice up`` restarts a part that dies (what is left of its session killed first) and stops
the platform when one keeps dying. Stand-in parts started through the launcher's own spawning; the
real parts (Ray's head, the Dagster daemon and webserver) are killed in tests/integration/test_faults.py."""

from __future__ import annotations

import os
import sys
import time

import pytest

from mlservice.config.settings import Settings
from mlservice.launcher import up as launcher
from mlservice.launcher.processes import ManagedProcess, wait_until
from mlservice.launcher.up import Platform
from tests.utils.launcher_runs import run_then_stop

pytestmark = pytest.mark.skipif(not os.path.exists("/proc"), reason="reads Linux /proc")

# Count the starts in a file; die after a moment on the starts listed in DIE_ON (1-based), else
# live; a child in a process group of its own (a worker of the part) sleeps on.
PART = r"""
import os, subprocess, sys, time
counter, die_on = sys.argv[1], {int(n) for n in sys.argv[2].split(",") if n}
with open(counter, "a") as f:
    f.write("x")
starts = len(open(counter).read())
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], process_group=0)
with open(counter + ".children", "a") as f:
    f.write(f"{child.pid}\n")
time.sleep(0.5)
if starts in die_on:
    os._exit(7)
time.sleep(600)
"""


class StandIn(Platform):
    def __init__(self, settings: Settings, die_on: str, lines: list[str]):
        super().__init__(settings, seed_demo=False, echo=lines.append)
        self.counter = settings.data_dir / "starts"
        self.die_on = die_on
        self.exposure_interval_s = 3600

    def start(self) -> None:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self._spawn("mlflow", [sys.executable, "-c", PART, str(self.counter), self.die_on], dict(os.environ), stop_timeout_s=2)


def run(tmp_path, die_on: str, stop_after_s: float) -> tuple[int, list[str], StandIn]:
    lines: list[str] = []
    platform = StandIn(Settings(data_dir=tmp_path), die_on, lines)
    code = run_then_stop(platform, stop_after_s)
    return code, lines, platform


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def all_gone(pids: list[int], within_s: float = 5.0) -> bool:
    """Every pid ended (SIGKILL is delivered asynchronously: a moment's grace)."""
    deadline = time.monotonic() + within_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


def test_a_part_that_dies_is_restarted_and_its_leftovers_killed(tmp_path):
    code, lines, platform = run(tmp_path, die_on="1", stop_after_s=4)
    text = "\n".join(lines)
    assert code == 0, text
    assert "mlflow exited unexpectedly (exit status 7)" in text and "restarted mlflow" in text
    assert platform.counter.read_text() == "xx"  # started twice
    first_child, second_child = [int(pid) for pid in (tmp_path / "starts.children").read_text().split()]
    assert all_gone([first_child, second_child])  # the first at the restart, the second at the stop


def test_a_part_that_keeps_dying_stops_the_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "RESTARTS_PER_WINDOW", 2)
    started = time.monotonic()
    code, lines, platform = run(tmp_path, die_on="1,2,3,4,5", stop_after_s=60)
    text = "\n".join(lines)
    assert code == 1 and time.monotonic() - started < 30, text
    assert platform.counter.read_text() == "xxx"  # the first start and two restarts
    assert "mlflow died 3 times within 10 minutes: stopping the platform" in text
    children = [int(pid) for pid in (tmp_path / "starts.children").read_text().split()]
    assert all_gone(children)


class DiesDuringStartUp(StandIn):
    """A start that waits for its part as ``Platform.start`` does: the part dies before it is ready."""

    def start(self) -> None:
        super().start()
        part = self.processes[0]
        wait_until(lambda: self.counter.exists() and self.counter.read_text() == "xx", timeout_s=20, what="mlflow",
                   process=part, tend=self.tend)


def test_a_part_that_dies_during_start_up_is_restarted_not_fatal(tmp_path):
    lines: list[str] = []
    platform = DiesDuringStartUp(Settings(data_dir=tmp_path), "1", lines)
    code = run_then_stop(platform, 4)
    text = "\n".join(lines)
    assert code == 0 and "start-up failed" not in text, text
    assert "mlflow exited unexpectedly (exit status 7)" in text and "restarted mlflow" in text
    assert platform.counter.read_text() == "xx"


def test_log_since_start_is_only_the_last_start(tmp_path):
    log = tmp_path / "part.log"
    log.write_text("Ray runtime started.\n")  # an earlier start's line
    part = ManagedProcess("ray", [sys.executable, "-c", "print('second start')"], env=dict(os.environ), log_path=log)
    part.start()
    part.proc.wait(timeout=30)
    assert part.log_since_start() == "second start\n"
