"""The monitoring loop's stores: drift reports page per model within a tenant and scan all tenants
from a cursor; a policy is upserted within its bounds, keeps its last trigger across updates, and
records a trigger only for a newer report (a compare-and-set)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from resources.errors import InvalidRequest
from resources.monitoring.drift_history import MAX_HISTORY_PAGE, DriftReportStore
from resources.monitoring.policies import PolicyStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OK_REPORT = {"model_id": "m-1", "overall_drift": True, "features_checked": 3, "features_drifted": 1, "results": {"x": {}}}


@pytest.fixture
def reports(state):
    return DriftReportStore(state)


@pytest.fixture
def policies(state):
    return PolicyStore(state)


def _policy(policies, tenant="acme", model="m-1", **overrides):
    values = dict(retrain_on_drift=True, consecutive_reports=2, cooldown_hours=24.0, promote="staging", actor="alice")
    return policies.put(tenant, model, **{**values, **overrides})


# -- drift reports -------------------------------------------------------------------------------
def test_an_ok_report_takes_its_counts_from_the_report(reports):
    report_id = reports.add("acme", "m-1", status="ok", report=OK_REPORT, version="1.0.0", window=(T0, T0 + timedelta(hours=1)),
                            source="api", dagster_run_id="run-1")
    [record] = reports.history("acme", "m-1")
    assert record.id == report_id
    assert (record.overall_drift, record.features_checked, record.features_drifted) == (True, 3, 1)
    assert record.report == OK_REPORT and record.version == "1.0.0" and (record.source, record.dagster_run_id) == ("api", "run-1")
    assert (record.window_start, record.window_end) == (T0, T0 + timedelta(hours=1)) and record.created_at.tzinfo == UTC


def test_a_report_that_is_not_ok_keeps_no_counts(reports):
    reports.add("acme", "m-1", status="failed", report={"error": "boom", "overall_drift": True})
    reports.add("acme", "m-1", status="no_reference", report=None)
    failed, no_ref = reversed(reports.history("acme", "m-1"))
    assert (failed.status, failed.overall_drift, failed.features_checked, failed.features_drifted) == ("failed", None, None, None)
    assert failed.report == {"error": "boom", "overall_drift": True} and failed.source == "schedule"
    assert (no_ref.status, no_ref.report, no_ref.window_start, no_ref.window_end) == ("no_reference", None, None, None)


def test_unknown_status_or_source_or_an_ok_without_report_is_refused(reports):
    with pytest.raises(ValueError, match="status"):
        reports.add("acme", "m-1", status="drifted", report=None)
    with pytest.raises(ValueError, match="source"):
        reports.add("acme", "m-1", status="failed", report=None, source="cron")
    with pytest.raises(ValueError, match="ok"):
        reports.add("acme", "m-1", status="ok", report=None)
    assert reports.after(0) == []


def test_history_pages_newest_first_and_never_shows_another_tenant_or_model(reports):
    mine = [reports.add("acme", "m-1", status="insufficient_data", report=None) for _ in range(5)]
    reports.add("globex", "m-1", status="ok", report=OK_REPORT)  # same model id, another tenant
    reports.add("acme", "m-2", status="ok", report=OK_REPORT)
    first = reports.history("acme", "m-1", limit=2)
    second = reports.history("acme", "m-1", limit=2, before_id=first[-1].id)
    third = reports.history("acme", "m-1", limit=2, before_id=second[-1].id)
    assert [r.id for r in first + second + third] == mine[::-1]
    assert reports.history("acme", "m-1", limit=2, before_id=third[-1].id) == []
    assert {(r.tenant_id, r.model_id) for r in first + second + third} == {("acme", "m-1")}
    assert [r.tenant_id for r in reports.history("globex", "m-1")] == ["globex"]
    assert reports.history("initech", "m-1") == []


def test_history_limit_is_capped(reports):
    for _ in range(MAX_HISTORY_PAGE + 5):
        reports.add("acme", "m-1", status="failed", report=None)
    assert len(reports.history("acme", "m-1", limit=1000)) == MAX_HISTORY_PAGE


def test_after_scans_every_tenant_oldest_first_from_a_cursor(reports):
    ids = [reports.add(tenant, "m-1", status="failed", report=None) for tenant in ("acme", "globex", "acme", "initech")]
    assert [r.id for r in reports.after(0)] == ids
    assert [r.tenant_id for r in reports.after(0)] == ["acme", "globex", "acme", "initech"]
    assert [r.id for r in reports.after(ids[1])] == ids[2:]
    assert [r.id for r in reports.after(0, limit=2)] == ids[:2]
    assert reports.after(ids[-1]) == []


def test_recent_is_the_models_latest_reports_of_any_status(reports):
    reports.add("acme", "m-1", status="ok", report=OK_REPORT)
    second = reports.add("acme", "m-1", status="failed", report=None)
    third = reports.add("acme", "m-1", status="ok", report={**OK_REPORT, "overall_drift": False, "features_drifted": 0})
    reports.add("globex", "m-1", status="ok", report=OK_REPORT)
    reports.add("acme", "m-2", status="ok", report=OK_REPORT)
    latest = reports.recent("acme", "m-1", 2)
    assert [r.id for r in latest] == [third, second] and [r.status for r in latest] == ["ok", "failed"]
    assert latest[0].overall_drift is False
    assert len(reports.recent("acme", "m-1", 10)) == 3 and reports.recent("acme", "m-1", 0) == []


# -- policies ------------------------------------------------------------------------------------
def test_a_policy_is_created_read_and_updated(policies):
    assert policies.get("acme", "m-1") is None
    created = _policy(policies)
    assert (created.retrain_on_drift, created.consecutive_reports, created.cooldown_hours, created.promote) == (True, 2, 24.0, "staging")
    assert created.updated_by == "alice" and created.updated_at.tzinfo == UTC and created.last_triggered_at is None
    assert policies.get("acme", "m-1") == created
    assert policies.get("globex", "m-1") is None
    updated = _policy(policies, consecutive_reports=5, cooldown_hours=0, promote="production_if_better", actor="bob")
    assert (updated.consecutive_reports, updated.cooldown_hours, updated.promote, updated.updated_by) == (
        5, 0.0, "production_if_better", "bob")
    assert policies.get("acme", "m-1") == updated


def test_an_update_keeps_the_last_trigger(policies):
    _policy(policies)
    assert policies.record_trigger("acme", "m-1", report_id=7, job_id="train-job-1", at=T0)
    updated = _policy(policies, retrain_on_drift=False, promote="none", actor="bob")
    assert updated.retrain_on_drift is False and updated.promote == "none"
    assert (updated.last_triggered_at, updated.last_trigger_report_id, updated.last_trigger_job_id) == (T0, 7, "train-job-1")


@pytest.mark.parametrize(("field", "value"), [
    ("consecutive_reports", 0), ("consecutive_reports", 101), ("consecutive_reports", 2.5), ("consecutive_reports", True),
    ("cooldown_hours", -1), ("cooldown_hours", 8760.5), ("cooldown_hours", float("nan")), ("cooldown_hours", "1"),
    ("promote", "production"), ("retrain_on_drift", "yes"),
])
def test_out_of_bounds_settings_are_refused_naming_the_field(policies, field, value):
    with pytest.raises(InvalidRequest, match=field) as caught:
        _policy(policies, **{field: value})
    assert caught.value.details["field"] == field
    assert policies.get("acme", "m-1") is None


def test_the_bounds_themselves_are_accepted(policies):
    assert _policy(policies, consecutive_reports=1, cooldown_hours=0).consecutive_reports == 1
    assert _policy(policies, consecutive_reports=100, cooldown_hours=8760).cooldown_hours == 8760.0


def test_record_trigger_is_a_compare_and_set_on_the_report_id(policies):
    assert policies.record_trigger("acme", "m-1", report_id=1, job_id="j-0", at=T0) is False  # no policy
    _policy(policies)
    assert policies.record_trigger("acme", "m-1", report_id=5, job_id="j-1", at=T0) is True
    assert policies.record_trigger("acme", "m-1", report_id=5, job_id="j-2", at=T0 + timedelta(minutes=1)) is False  # same report
    assert policies.record_trigger("acme", "m-1", report_id=3, job_id="j-3", at=T0 + timedelta(minutes=2)) is False  # older
    record = policies.get("acme", "m-1")
    assert (record.last_trigger_report_id, record.last_trigger_job_id, record.last_triggered_at) == (5, "j-1", T0)
    later = T0 + timedelta(hours=30)
    assert policies.record_trigger("acme", "m-1", report_id=9, job_id="j-4", at=later) is True
    record = policies.get("acme", "m-1")
    assert (record.last_trigger_report_id, record.last_trigger_job_id, record.last_triggered_at) == (9, "j-4", later)
    assert policies.record_trigger("globex", "m-1", report_id=10, job_id="j-5", at=later) is False  # another tenant's model


def test_enabled_lists_only_enabled_policies_of_every_tenant(policies):
    _policy(policies, "acme", "m-1")
    _policy(policies, "acme", "m-2", retrain_on_drift=False)
    _policy(policies, "globex", "m-1")
    _policy(policies, "initech", "m-3")
    _policy(policies, "initech", "m-3", retrain_on_drift=False)  # switched off again
    assert [(p.tenant_id, p.model_id) for p in policies.enabled()] == [("acme", "m-1"), ("globex", "m-1")]


def test_delete_removes_only_that_policy(policies):
    _policy(policies, "acme", "m-1")
    _policy(policies, "globex", "m-1")
    assert policies.delete("acme", "m-1") is True
    assert policies.delete("acme", "m-1") is False
    assert policies.get("acme", "m-1") is None and policies.get("globex", "m-1") is not None
