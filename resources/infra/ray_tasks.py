"""Waiting on a Ray task from a Dagster run without leaving it behind.

A run that Dagster stops (its maximum runtime, a cancel from the API) is interrupted with SIGINT.
A plain ``ray.get`` on a task that holds a CPU can sit through that, and a task nobody waits on
runs on: found on the shared test platform, a stopped training run's ``_sklearn_task`` kept a
CPU for 15 minutes. ``wait_for`` waits in short slices (Python runs its signal handlers between
them, so the interrupt is raised here) and cancels the task, by force, whenever the wait ends
without its answer."""

from __future__ import annotations

from typing import Any

POLL_S = 0.5


def wait_for(ref: Any, poll_s: float = POLL_S) -> Any:
    """The task's result; any exception on the way (an interrupt, a failed task) cancels the task first."""
    import ray

    done = False
    try:
        while True:
            ready, _ = ray.wait([ref], timeout=poll_s)
            if ready:
                done = True
                return ray.get(ready[0])
    finally:
        if not done:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or the cluster is gone: nothing left to stop
                pass
