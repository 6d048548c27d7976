"""The Dagster run queue of the embedded platform, on a real DagsterInstance built from the
dagster.yaml that ``mlservice up`` renders: per-tenant limits, a compute pool that leaves room for
materialization runs, and run monitoring that fails a run past its ``dagster/max_runtime``.

The queued-run-coordinator daemon's iteration dequeues the runs, as Dagster's own tests drive it;
the run launcher is a recording one (the platform's default launcher would start run workers).
"""

from __future__ import annotations

import logging

import pytest
import yaml
from dagster._core.test_utils import MockedRunLauncher

from mlservice.config.settings import Settings
from mlservice.launcher import dagster_instance
from resources.vocabulary import job_run_tags


class RecordingRunLauncher(MockedRunLauncher):
    """Launches nothing; terminate succeeds (as the default launcher's does for a live run)."""

    def terminate(self, run_id):
        return True


@pytest.fixture
def make_instance(tmp_path, monkeypatch):
    from dagster import DagsterInstance

    opened = []

    def _make(**settings) -> DagsterInstance:
        home = tmp_path / f"dagster-{len(opened)}"
        path = dagster_instance.write(Settings(data_dir=tmp_path / "data", **settings), home)
        config = yaml.safe_load(path.read_text())
        config["run_launcher"] = {"module": __name__, "class": "RecordingRunLauncher"}
        path.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("MLSERVICE_DAGSTER_STORAGE_DIR", str(home / "storage"))
        instance = DagsterInstance.from_config(str(home))
        opened.append(instance)
        return instance

    yield _make
    for instance in opened:
        instance.dispose()


@pytest.fixture(scope="module")
def job_tags() -> dict[str, dict[str, str]]:
    """The tags each job puts on every one of its runs (Dagster's ``run_tags`` of the job)."""
    from pipelines.jobs import ALL_JOBS

    return {job.name: dict(job.run_tags) for job in ALL_JOBS}


def queue(instance, job_tags, kind: str, tenant: str) -> str:
    from dagster import DagsterRunStatus
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.test_utils import create_run_for_test

    job = {"training": "training", "tuning": "tuning", "materialization": "feature_materialization"}[kind]
    tags = {**job_tags[job], **job_run_tags(tenant, f"{kind}-job-{tenant}", kind, 60)}  # as the API tags them
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("mlservice"), "__repository__"), job)
    return create_run_for_test(instance, job_name=job, status=DagsterRunStatus.QUEUED, tags=tags,
                               remote_job_origin=origin).run_id


def dequeue(instance) -> dict[str, str]:
    """One iteration of the queued-run-coordinator daemon; run id -> status name."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as context:
        with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
            list(daemon.run_iteration(context))
    return {run.run_id: run.status.value for run in instance.get_runs()}


def test_rendered_limits_follow_the_settings(tmp_path):
    config = dagster_instance.instance_config(Settings(data_dir=tmp_path, max_concurrent_runs=5, tenant_max_concurrent_runs=1))
    coordinator = config["run_coordinator"]["config"]
    assert coordinator["max_concurrent_runs"] == 5
    assert coordinator["tag_concurrency_limits"] == [
        {"key": "mlservice/compute_tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": "mlservice/pool", "value": "compute", "limit": 4},
    ]
    assert config["run_monitoring"]["enabled"] is True and config["run_monitoring"]["poll_interval_seconds"] <= 15


def test_heavy_jobs_carry_the_compute_pool_tag(job_tags):
    assert job_tags["training"]["mlservice/pool"] == job_tags["tuning"]["mlservice/pool"] == "compute"
    assert "mlservice/pool" not in job_tags["feature_materialization"]


def test_two_huge_jobs_of_one_tenant_leave_the_others_room(make_instance, job_tags):
    instance = make_instance()  # defaults: 4 runs at once, compute pool 3, 2 heavy runs per tenant
    a = [queue(instance, job_tags, "training", "tenant-a") for _ in range(3)]
    b = queue(instance, job_tags, "tuning", "tenant-b")
    for _ in range(2):  # a second pass changes nothing: the limits hold, not just the first pick
        status = dequeue(instance)
        assert sorted(status[r] for r in a) == ["QUEUED", "STARTING", "STARTING"]
        assert status[b] == "STARTING"
    assert len(instance.run_launcher.queue()) == 3


def test_a_materialization_starts_while_training_fills_the_pool(make_instance, job_tags):
    instance = make_instance()
    training = [queue(instance, job_tags, "training", tenant) for tenant in ("tenant-a", "tenant-b", "tenant-c", "tenant-e")]
    materialization = queue(instance, job_tags, "materialization", "tenant-d")  # queued last
    status = dequeue(instance)
    assert sorted(status[r] for r in training) == ["QUEUED", "STARTING", "STARTING", "STARTING"]
    assert status[materialization] == "STARTING"


def test_a_tenants_own_materialization_never_waits_behind_its_training(make_instance, job_tags):
    instance = make_instance()
    training = [queue(instance, job_tags, "training", "tenant-a") for _ in range(2)]
    materialization = queue(instance, job_tags, "materialization", "tenant-a")
    status = dequeue(instance)
    assert [status[r] for r in (*training, materialization)] == ["STARTING"] * 3


def test_a_narrow_queue_still_bounds_each_tenant(make_instance, job_tags):
    instance = make_instance(max_concurrent_runs=3, tenant_max_concurrent_runs=1)  # compute pool 2
    a = [queue(instance, job_tags, "tuning", "tenant-a") for _ in range(2)]
    b = queue(instance, job_tags, "training", "tenant-b")
    status = dequeue(instance)
    assert sorted(status[r] for r in a) == ["QUEUED", "STARTING"] and status[b] == "STARTING"


def test_run_monitoring_fails_a_run_past_its_max_runtime(make_instance, monkeypatch):
    """What the other half of issue 9 (section 3) relies on: Dagster 1.13 enforces dagster/max_runtime."""
    from dagster import DagsterRunStatus
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.test_utils import create_run_for_test
    from dagster._daemon.monitoring import run_monitoring

    instance = make_instance()
    run = create_run_for_test(instance, job_name="training", status=DagsterRunStatus.STARTING,
                              tags={"dagster/max_runtime": "60", "mlservice/tenant": "tenant-a"})
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name="training"), run_id=run.run_id)
    record = instance.get_run_record_by_id(run.run_id)
    assert record.dagster_run.status == DagsterRunStatus.STARTED

    run_monitoring.check_run_timeout(instance, record, logging.getLogger("test"), 0.0)  # 0 s in: nothing
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED

    now = record.start_time + 61
    monkeypatch.setattr(run_monitoring, "get_current_timestamp", lambda: now)
    run_monitoring.check_run_timeout(instance, instance.get_run_record_by_id(run.run_id), logging.getLogger("test"), 0.0)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    messages = [e.message for e in instance.all_logs(run.run_id)]
    assert "Canceling due to exceeding maximum runtime of 60 seconds." in messages
    assert "Exceeded maximum runtime of 60 seconds." in messages
