"""Stops what the launcher started when the launcher dies without stopping it (SIGKILL, the OOM
killer). Each part runs in a session of its own (so that one signal reaches all it spawns), which
also means nothing stops it when the launcher is killed: it would keep its ports, and the next
``make up`` could not start. So the launcher starts this watcher first, in a session of its own,
and writes the process group of every part it starts to a file; once the launcher's process is
gone, the watcher stops those groups as the launcher would (SIGTERM, a grace, SIGKILL, the rest of
their sessions) and exits. A launcher that stops normally stops its parts itself, then this
watcher. Run as ``python -m mlservice.launcher.reaper <launcher pid> <its start time> <groups file> [grace s]``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 10.0


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat): with the pid, it names
    one process (a pid alone may be reused). None when there is no such process or it is a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def read_groups(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split() if line.isdigit()]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    from mlservice.launcher.processes import stop_groups

    args = sys.argv[1:] if argv is None else argv
    launcher, started, groups_file = int(args[0]), args[1], Path(args[2])
    grace_s = float(args[3]) if len(args) > 3 else GRACE_S
    while start_time(launcher) == started:
        time.sleep(POLL_S)
    stop_groups(read_groups(groups_file), grace_s=grace_s)
    groups_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
