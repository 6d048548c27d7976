"""A run stops itself once it is cancelled, whether or not Dagster's termination request reached it.

Dagster's launcher sends a run's termination to the code server that runs it only once the run
carries that server's address; a run cancelled before that (between the queue and its launch) is
only marked CANCELING, and its worker, started a moment later, does not read its status (the
thread of Dagster's that does, ``run_cancellation_thread``, is not started for runs of a code
server). Found on the test platform: a training job cancelled 3 s after its submission read
``cancelled`` while its run fitted for minutes, registered a version, and held a CPU that a batch
job after it waited for.

``watch_cancellation`` (called by every job asset through ``assets.job_runs.job_of_run``) starts,
once per run in its worker, a thread that reads the run's status every ``POLL_S`` and interrupts
the worker (SIGINT, as a delivered termination does) once the run is CANCELING or CANCELED, so what
the assets do then is the same: the Ray task cancelled (``resources.infra.ray_tasks.wait_for``), staged
output discarded, the run ends CANCELED.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

POLL_S = 2.0

_watched: set[str] = set()
_guard = threading.Lock()


def watch_cancellation(context: Any) -> None:
    """Watch this run's status from its worker (once per run; not for an in-process run on an
    ephemeral instance, which nothing can cancel)."""
    instance, run_id = context.instance, context.run_id
    if not instance.is_persistent:
        return
    with _guard:
        if run_id in _watched:
            return
        _watched.add(run_id)
    threading.Thread(target=watch, args=(instance, run_id), kwargs={"log": context.log.warning}, daemon=True,
                     name=f"run-watch-{run_id[:8]}").start()


def watch(instance: Any, run_id: str, *, poll_s: float = POLL_S, interrupt: Callable[[], None] | None = None,
          log: Callable[[str], None] = lambda _message: None) -> bool:
    """Until the run ends: interrupt (once) when it is cancelled; whether it did."""
    from dagster import DagsterRunStatus
    from dagster._utils import send_interrupt

    stop = {DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED}
    while True:
        threading.Event().wait(poll_s)
        try:
            run = instance.get_run_by_id(run_id)
        except Exception:  # the instance is closed (the run is over) or unreadable: nothing to act on
            return False
        if run is None or (run.is_finished and run.status not in stop):
            return False
        if run.status in stop:
            log(f"the run is {run.status.value}: stopping its work")
            (interrupt or send_interrupt)()
            return True
