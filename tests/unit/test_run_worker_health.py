"""Run monitoring with the platform's run launcher (pipelines/run_launcher.py) on a real
DagsterInstance built from the dagster.yaml ``mlservice up`` renders: a run whose worker process
died is failed with a readable reason; a live worker's run is left alone; a pid reused by a newer
process does not pass for the worker. And the other way round: a run marked cancelled that its
worker never heard of (no termination delivered) is interrupted by the worker's own watch."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from mlservice.config.settings import Settings
from mlservice.launcher import dagster_instance
from resources.infra.dagster_runs import failure_reason


@pytest.fixture
def instance(tmp_path, monkeypatch):
    from dagster import DagsterInstance

    home = tmp_path / "dagster"
    dagster_instance.write(Settings(data_dir=tmp_path / "data"), home)
    monkeypatch.setenv("MLSERVICE_DAGSTER_STORAGE_DIR", str(home / "storage"))
    opened = DagsterInstance.from_config(str(home))
    yield opened
    opened.dispose()


def started_run(instance, worker_pid: int):
    """A run in STARTED whose worker reported ``worker_pid``, as the code server's run worker does."""
    from dagster import DagsterRunStatus
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(instance, job_name="training", status=DagsterRunStatus.STARTING)
    instance.report_engine_event(f"Started process for run (pid: {worker_pid}).", run, EngineEventData.in_process(worker_pid))
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name="training"), run_id=run.run_id)
    return instance.get_run_record_by_id(run.run_id)


def monitor(instance, record) -> str:
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    monitor_started_run(instance, None, record, logging.getLogger("test"))
    return instance.get_run_by_id(record.dagster_run.run_id).status.value


def test_the_platform_launcher_checks_run_workers(instance):
    from pipelines.run_launcher import LocalRunLauncher

    assert isinstance(instance.run_launcher, LocalRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health


def test_a_run_whose_worker_was_killed_fails_with_the_reason_and_a_live_one_runs_on(instance):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = started_run(instance, worker.pid)
        assert monitor(instance, record) == "STARTED"  # alive: left alone

        worker.kill()
        worker.wait()
        assert monitor(instance, instance.get_run_record_by_id(record.dagster_run.run_id)) == "FAILURE"
    finally:
        worker.kill()
    messages = " ".join(e.message or "" for e in instance.all_logs(record.dagster_run.run_id))
    assert f"the run worker (pid {worker.pid}) no longer exists" in messages
    # and the API's job says so, in a line
    reason = failure_reason(_as_graphql(instance.all_logs(record.dagster_run.run_id)))
    assert reason.startswith(f"the run worker (pid {worker.pid}) no longer exists: it was killed or crashed"), reason


def _as_graphql(records) -> list[dict]:
    """Event log records as the webserver's GraphQL names them (what DagsterRuns reads)."""
    names = {"PIPELINE_FAILURE": "RunFailureEvent", "ENGINE_EVENT": "EngineEvent", "STEP_FAILURE": "ExecutionStepFailureEvent"}
    return [{"__typename": names.get(r.dagster_event.event_type_value, "Other"), "message": r.dagster_event.message,
             **({"error": _python_error(r.dagster_event.step_failure_data.error)} if r.dagster_event.is_step_failure else {})}
            for r in records if r.dagster_event is not None]


def _python_error(error) -> dict:
    """A step's error as GraphQL's PythonError gives it: its message and its explicit causes, outermost first."""
    causes, cause = [], error.cause
    while cause is not None:
        causes.append({"message": cause.message})
        cause = cause.cause
    return {"message": error.message, "causes": causes}


def test_a_worker_killed_under_its_code_server_reads_as_such():
    """The code server's own report when a run's process dies under it (dagster._grpc.server)."""
    from dagster._utils import get_run_crash_explanation

    crash = get_run_crash_explanation("Run execution process for abc123", -9)
    events = [{"__typename": "EngineEvent", "message": f"[DagsterApiServer] {crash}"},  # as the server logs it
              {"__typename": "RunFailureEvent", "message": "This run has been marked as failed from outside the execution context."}]
    assert failure_reason(events) == ("the run worker was terminated by signal 9 (SIGKILL): it was killed or crashed "
                                      "(out of memory, a signal, a restart of the Dagster daemon or of the platform) "
                                      "before the run ended; the job may be submitted again")


def test_a_zombie_or_a_newer_process_under_the_pid_is_not_the_worker():
    from pipelines.run_launcher import worker_gone

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    import psutil

    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert worker_gone(zombie.pid, time.time()) == "has exited"  # not reaped yet
    finally:
        zombie.wait()
    import os

    assert worker_gone(os.getpid(), time.time()) is None  # this process, alive since before "now"
    # the pid's process was created long after the worker reported it: a reused pid
    assert "newer process" in worker_gone(os.getpid(), time.time() - 10**6)


def test_a_run_whose_worker_has_not_reported_is_not_judged(instance):
    from dagster import DagsterRunStatus
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(instance, job_name="training", status=DagsterRunStatus.STARTING)
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name="training"), run_id=run.run_id)
    assert monitor(instance, instance.get_run_record_by_id(run.run_id)) == "STARTED"


def test_a_worker_stopped_by_a_signal_reads_as_such():
    """A run worker that got SIGTERM (its daemon or the platform stopped) fails its step with
    Dagster's interruption error: the job says what happened, not the exception's name."""
    events = [{"__typename": "ExecutionStepFailureEvent",
               "error": {"message": "dagster._core.errors.DagsterExecutionInterruptedError\n\nStack Trace: ..."}},
              {"__typename": "RunFailureEvent", "message": "Execution of run for \"training\" failed."}]
    assert failure_reason(events).startswith("the run worker was interrupted (stopped by a signal): it was killed or crashed")
    step = [{"__typename": "ExecutionStepFailureEvent", "error": {"message": "Failure: target column 'y' not found"}}]
    assert failure_reason(step) == "target column 'y' not found"  # what an asset raised stays as it was
    # the interrupt raised inside Ray's wait, which wraps it (CI, a platform killed under a running fit)
    wrapped = [{"__typename": "ExecutionStepFailureEvent", "error": {
        "message": 'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "trained_model":\n',
        "causes": [{"message": "SystemError: <cyfunction CoreWorker.wait at 0x7f3b> returned a result with an exception set\n"},
                   {"message": "dagster._core.errors.DagsterExecutionInterruptedError\n"}]}}]
    assert failure_reason(wrapped).startswith("the run worker was interrupted (stopped by a signal)")


def test_what_an_op_raised_is_the_reason_not_dagsters_wrapper(instance):
    """An op that raises an exception of its own (not a Failure): Dagster wraps it; the job says what was raised."""
    import dagster as dg

    @dg.op
    def reads_the_registry():
        raise ConnectionError("API request to http://127.0.0.1:1/api/2.0/mlflow/runs/get failed")

    @dg.job(name="training")
    def training():
        reads_the_registry()

    result = training.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    assert failure_reason(_as_graphql(instance.all_logs(result.run_id))) == (
        "ConnectionError: API request to http://127.0.0.1:1/api/2.0/mlflow/runs/get failed")


def test_a_run_marked_canceling_without_a_termination_interrupts_its_worker(instance):
    """What Dagster's launcher does to a run it cannot reach (assets/run_watch.py): only the status
    changes; the watch in the worker interrupts it within a poll."""
    from concurrent.futures import ThreadPoolExecutor

    from assets.run_watch import watch

    record = started_run(instance, worker_pid=1)
    interrupted = []
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(watch, instance, record.dagster_run.run_id, poll_s=0.05,
                               interrupt=lambda: interrupted.append(time.monotonic()))
        time.sleep(0.3)
        assert not interrupted  # running: left alone
        instance.report_run_canceling(record.dagster_run)
        marked = time.monotonic()
        assert watching.result(timeout=5) is True
    assert len(interrupted) == 1 and interrupted[0] - marked < 1


def test_a_run_that_ends_stops_its_watch_without_an_interrupt(instance):
    from concurrent.futures import ThreadPoolExecutor

    from dagster import DagsterEvent, DagsterEventType

    from assets.run_watch import watch

    record = started_run(instance, worker_pid=1)
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(watch, instance, record.dagster_run.run_id, poll_s=0.05, interrupt=lambda: pytest.fail("interrupted"))
        instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name="training"),
                                      run_id=record.dagster_run.run_id)
        assert watching.result(timeout=5) is False
