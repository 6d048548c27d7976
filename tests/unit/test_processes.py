"""ManagedProcess.stop ends the whole session of a child, also members in process groups of their
own (as Ray starts its workers), not only the child's process group."""

from __future__ import annotations

import os
import sys
import time

import pytest

from mlservice.processes import ManagedProcess

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
