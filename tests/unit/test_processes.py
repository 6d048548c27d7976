"""ManagedProcess.stop ends the whole session of a child, also members in process groups of their
own (as Ray starts its workers), not only the child's process group."""

from __future__ import annotations

import os
import sys
import time

import pytest

from mlservice.launcher.processes import ManagedProcess

pytestmark = pytest.mark.skipif(not os.path.exists("/proc"), reason="reads Linux /proc")

# Forks a grandchild that moves to a process group of its own and ignores SIGTERM; prints its pid.
PART = r"""
import os, signal, time
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
    os._exit(0)
print(pid, flush=True)
time.sleep(600)
"""


def test_stop_ends_session_members_in_other_process_groups(tmp_path):
    log = tmp_path / "part.log"
    part = ManagedProcess("part", [sys.executable, "-c", PART], env=dict(os.environ), log_path=log, stop_timeout_s=2)
    part.start()
    deadline = time.monotonic() + 20
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    assert os.getpgid(grandchild) == grandchild != part.pid and os.getsid(grandchild) == part.pid
    part.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{grandchild}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(grandchild, 9)
        pytest.fail("the grandchild in its own process group survived stop()")


# A part that takes its time to stop: SIGTERM is ignored, so only the grace's end (SIGKILL) stops it.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"


def _started(tmp_path, name: str, code: str, stop_timeout_s: float) -> ManagedProcess:
    log = tmp_path / f"{name}.log"
    part = ManagedProcess(name, [sys.executable, "-c", code], env=dict(os.environ), log_path=log, stop_timeout_s=stop_timeout_s)
    part.start()
    deadline = time.monotonic() + 20
    while "up" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    return part


def _gone(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_parts_stop_together_in_the_longest_grace_not_the_sum(tmp_path):
    from mlservice.launcher.processes import stop_together

    parts = [_started(tmp_path, f"slow{i}", STUBBORN, stop_timeout_s=2) for i in range(3)]
    quick = _started(tmp_path, "quick", "import time; print('up', flush=True); time.sleep(600)", stop_timeout_s=2)
    began = time.monotonic()
    stop_together([*parts, quick])
    took = time.monotonic() - began
    assert all(_gone(p.pid) for p in [*parts, quick])
    assert took < 4.5, took  # 3 parts of 2 s grace one after another would take 6 s and more


def test_the_reaper_stops_the_parts_of_a_launcher_killed_with_sigkill(tmp_path):
    import signal
    import subprocess

    from mlservice.launcher.reaper import start_time

    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    parts = [_started(tmp_path, f"part{i}", STUBBORN, stop_timeout_s=1) for i in range(2)]
    groups = tmp_path / "process_groups"
    groups.write_text("".join(f"{p.pid}\n" for p in parts))
    reaper = subprocess.Popen([sys.executable, "-m", "mlservice.launcher.reaper", str(launcher.pid), str(start_time(launcher.pid)),
                               str(groups), "1"], start_new_session=True)
    try:
        time.sleep(1.0)
        assert reaper.poll() is None and not any(_gone(p.pid) for p in parts)  # the launcher lives: nothing happens
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert reaper.wait(timeout=30) == 0
        assert all(_gone(p.pid) for p in parts) and not groups.exists()
    finally:
        for process in (launcher, reaper):
            process.kill()
        for part in parts:
            part.kill()
