"""The Dagster run launcher of the platform: Dagster's ``DefaultRunLauncher`` (each run a process
of the code server on this host) plus a health check of that process, so run monitoring ends a
run whose worker died (SIGKILL, the OOM killer, a restart of the daemon that held it) as
``failure`` with a readable reason, instead of leaving it ``started`` until its maximum runtime.

``DefaultRunLauncher`` has no health check of its own (``supports_check_run_worker_health`` is
False: Dagster's run monitoring then only applies start timeouts and maximum runtimes). The run
worker says which process it is in its first engine event ("Started process for run (pid: N)");
the check looks that process up: gone, a zombie, or a newer process under the same pid (created
after the event) means the worker is dead. A run whose code server is on another host (its gRPC
address not loopback) is not checked: its pid means nothing here.

Configured in the repository's ``dagster.yaml`` (``run_launcher``); run monitoring polls every
``poll_interval_seconds``.
"""

from __future__ import annotations

import json

from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from resources.infra.dagster_runs import WORKER_LOST

STARTED_MESSAGE = "Started process for run (pid: "
LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}
CLOCK_SLACK_S = 1.0  # the event's timestamp against the process's start time (rounded to clock ticks)


class LocalRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        if not _local_code_server(run.tags):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run's code server is on another host: not checked")
        started = self._worker_started(run.run_id)
        if started is None:  # no worker reported yet (or its event is lost): nothing to judge by
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker has reported its process yet")
        pid, logged_at = started
        verdict = worker_gone(pid, logged_at)
        if verdict is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run worker (pid {pid}) {verdict}: {WORKER_LOST}",
                                    run_worker_id=str(pid))

    def _worker_started(self, run_id: str) -> tuple[int, float] | None:
        """(pid, unix time of the event) of the run's latest "Started process for run" event."""
        from dagster import DagsterEventType

        latest = None
        for record in self._instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            message = (record.dagster_event.message if record.dagster_event else None) or record.user_message or ""
            if message.startswith(STARTED_MESSAGE):
                pid_text = message[len(STARTED_MESSAGE):].split(")", 1)[0]
                if pid_text.isdigit():
                    latest = (int(pid_text), float(record.timestamp))
        return latest


def worker_gone(pid: int, logged_at: float) -> str | None:
    """None while the process that logged at ``logged_at`` lives; else why it is gone."""
    import psutil

    try:
        process = psutil.Process(pid)
        status, created = process.status(), process.create_time()
    except psutil.NoSuchProcess:
        return "no longer exists"
    except psutil.Error:
        return None  # not ours to read: cannot tell, so not judged dead
    if status == psutil.STATUS_ZOMBIE:
        return "has exited"
    if created > logged_at + CLOCK_SLACK_S:
        return "no longer exists (its pid belongs to a newer process)"
    return None


def _local_code_server(tags) -> bool:
    from dagster._core.storage.tags import GRPC_INFO_TAG

    raw = tags.get(GRPC_INFO_TAG)
    if not raw:
        return True  # launched in process (no code server): this host
    try:
        host = json.loads(raw).get("host")
    except (ValueError, AttributeError):
        return False
    return host in LOCAL_HOSTS
