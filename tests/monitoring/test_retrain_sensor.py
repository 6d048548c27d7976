"""The retrain_on_drift sensor with ``build_sensor_context``: a model trained by a platform job
(a real training run on local Ray, kept in a Dagster instance) with a policy; N drifted reports
in a row -> exactly one run request of the version's own training job, with a new job record of
the tenant and the policy's ``promote``; the same reports never launch twice; the cooldown and a
calm report in the streak launch nothing; a model without policy is left alone. Then the
requested run itself: the new version lands where the policy says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from assets.training.assets import trained_model, training_set
from pipelines.retrain_on_drift import build_retrain_sensor, is_due
from resources.jobs.records import JobStore
from resources.jobs.specs import DataSpec, TrainedModelConfig, TrainerSpec, TrainingSetConfig, run_config
from resources.monitoring.drift_history import DriftReportStore
from resources.monitoring.policies import PolicyStore
from resources.vocabulary import RUN_JOB_ID, UNFINISHED_STATUSES
from tests.utils.asset_resources import asset_resources, submitted_job
from tests.utils.datasets import breast_cancer

retrain_on_drift = build_retrain_sensor()

TENANT = "retrain-tests"
DRIFTED = {"overall_drift": True, "features_checked": 2, "features_drifted": 1, "results": {}}
CALM = {"overall_drift": False, "features_checked": 2, "features_drifted": 0, "results": {}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, local_ray):
    root = tmp_path_factory.mktemp("retrain")
    (root / "tenants" / TENANT / "bc").mkdir(parents=True)
    breast_cancer(snake_case=True).to_parquet(root / "tenants" / TENANT / "bc" / "all.parquet", index=False)
    resources = asset_resources(root)
    instance = dg.DagsterInstance.ephemeral()
    ctx = submitted_job(resources["state"], TENANT, "training", {"model_name": "bc"})
    config = run_config(
        training_set=TrainingSetConfig(context=ctx, data=DataSpec(train_path="bc/all.parquet", target_column="target")),
        trained_model=TrainedModelConfig(context=ctx, model_name="bc", trainer=TrainerSpec(estimator="logistic_regression")),
    )
    result = dg.materialize([training_set, trained_model], resources=resources, run_config=config, instance=instance,
                            tags={RUN_JOB_ID: ctx.job_id})
    assert result.success
    model_id = result.output_for_node("trained_model")["model_id"]
    return {"resources": resources, "instance": instance, "model_id": model_id, "job_id": ctx.job_id}


def _sensor(trained, cursor=None):
    resources = {"state": trained["resources"]["state"], "registry": trained["resources"]["registry"]}
    with dg.build_sensor_context(instance=trained["instance"], cursor=cursor, resources=resources) as context:
        return retrain_on_drift(context)


def _reports(trained, *reports, model_id=None):
    store = DriftReportStore(trained["resources"]["state"])
    return [store.add(TENANT, model_id or trained["model_id"], status="ok", report=r, version="1.0.0") for r in reports]


def test_drift_that_holds_launches_the_versions_own_training_once(trained):
    state = trained["resources"]["state"]
    PolicyStore(state).put(TENANT, trained["model_id"], retrain_on_drift=True, consecutive_reports=2, cooldown_hours=24,
                           promote="staging", actor="tester")
    first = _reports(trained, DRIFTED)
    assert _sensor(trained).run_requests == []  # one drifted report of two needed
    second = _reports(trained, DRIFTED)
    result = _sensor(trained, cursor=str(first[-1]))
    [request] = result.run_requests
    assert result.cursor == str(second[-1])
    assert request.job_name == "training" and request.run_key == f"retrain:{TENANT}:{trained['model_id']}:{second[-1]}"
    ops = request.run_config["ops"]
    job_id = ops["trained_model"]["config"]["context"]["job_id"]
    assert job_id != trained["job_id"] and ops["training_set"]["config"]["context"]["job_id"] == job_id
    assert ops["trained_model"]["config"]["promote"] == "staging"
    assert ops["trained_model"]["config"]["trainer"]["estimator"] == "logistic_regression"  # the version's own config
    assert ops["training_set"]["config"]["data"]["train_path"] == "bc/all.parquet"
    assert request.tags[RUN_JOB_ID] == job_id
    job = JobStore(state).get(TENANT, job_id)
    assert job.kind == "training" and job.status == "submitted" and job.submitted_by == "sensor:retrain_on_drift"
    assert job.request["retrain"]["drift_report_id"] == second[-1]
    # the same reports again (a re-evaluated tick from the old cursor): nothing, and no second job
    assert _sensor(trained, cursor=str(first[-1])).run_requests == []
    assert [j.job_id for j in JobStore(state).list(TENANT, kind="training", limit=10) if j.submitted_by.startswith("sensor")] == [job_id]
    trained["retrain_request"] = request


def test_the_cooldown_and_a_calm_report_launch_nothing(trained):
    more = _reports(trained, DRIFTED, DRIFTED)  # drift holds again, but within the 24 h cooldown
    assert _sensor(trained, cursor=str(more[0] - 1)).run_requests == []
    policy = PolicyStore(trained["resources"]["state"]).get(TENANT, trained["model_id"])
    later = datetime.now(UTC) + timedelta(hours=25)
    recent = DriftReportStore(trained["resources"]["state"]).recent(TENANT, trained["model_id"], 2)
    assert is_due(policy, recent, later)  # after the cooldown it would
    calm_last = _reports(trained, DRIFTED, CALM)
    recent = DriftReportStore(trained["resources"]["state"]).recent(TENANT, trained["model_id"], 2)
    assert not is_due(policy, recent, later) and calm_last


def test_a_model_without_policy_is_left_alone(trained):
    reports = _reports(trained, DRIFTED, DRIFTED, DRIFTED, model_id="no-policy-model")
    assert _sensor(trained, cursor=str(reports[0] - 1)).run_requests == []


def test_the_requested_run_puts_the_new_version_where_the_policy_says(trained):
    request = trained.get("retrain_request")
    if request is None:
        pytest.skip("needs the first test's run request")
    result = dg.materialize([training_set, trained_model], resources=trained["resources"], run_config=request.run_config,
                            instance=trained["instance"], tags=request.tags)
    assert result.success
    output = result.output_for_node("trained_model")
    assert output["version"] == "1.1.0" and output["promotion"]["stage"] == "staging"
    versions = {v.version: v.stage for v in trained["resources"]["registry"].list_versions(TENANT, trained["model_id"])}
    assert versions == {"1.0.0": "development", "1.1.0": "staging"}
    job = JobStore(trained["resources"]["state"]).get(TENANT, request.tags[RUN_JOB_ID])
    assert job.result["promotion"]["reason"] and job.result["version"] == "1.1.0"


def _retrain(trained, promote: str, hyperparameters: dict | None = None) -> dict:
    ctx = submitted_job(trained["resources"]["state"], TENANT, "training", {"model_name": "bc"})
    trainer = TrainerSpec(estimator="logistic_regression", hyperparameters=hyperparameters or {})
    config = run_config(
        training_set=TrainingSetConfig(context=ctx, data=DataSpec(train_path="bc/all.parquet", target_column="target")),
        trained_model=TrainedModelConfig(context=ctx, model_name="bc", trainer=trainer, promote=promote),
    )
    result = dg.materialize([training_set, trained_model], resources=trained["resources"], run_config=config)
    assert result.success
    return result.output_for_node("trained_model")


def test_production_if_better_compares_on_the_same_validation_rows(trained):
    first = _retrain(trained, "production_if_better")
    assert first["promotion"]["stage"] == "production" and "no production version" in first["promotion"]["reason"]
    worse = _retrain(trained, "production_if_better", {"C": 1e-6, "max_iter": 5})
    decision = worse["promotion"]
    assert decision["stage"] == "staging" and decision["production_version"] == first["version"]
    assert decision["score"] < decision["production_score"] and "kept in staging" in decision["reason"]
    registry = trained["resources"]["registry"]
    assert registry.resolve_version(TENANT, trained["model_id"], "production").version == first["version"]


def test_a_tenant_without_a_free_job_slot_gets_no_retraining(trained, monkeypatch):
    state = trained["resources"]["state"]
    monkeypatch.setenv("MLSERVICE_QUOTA_OVERRIDES", json.dumps({TENANT: {"concurrent_jobs": 1}}))
    for status in UNFINISHED_STATUSES:  # the earlier tests' jobs, ended
        for job in JobStore(state).list(TENANT, status=status, limit=100):
            JobStore(state).record_run_state(job.job_id, status="succeeded")
    busy = submitted_job(state, TENANT, "training", {"model_name": "other"})  # one unfinished job holds the slot
    PolicyStore(state).put(TENANT, trained["model_id"], retrain_on_drift=True, consecutive_reports=1, cooldown_hours=0,
                           promote="none", actor="tester")
    [report] = _reports(trained, DRIFTED)
    assert _sensor(trained, cursor=str(report - 1)).run_requests == []
    JobStore(state).record_run_state(busy.job_id, status="succeeded")
    [report] = _reports(trained, DRIFTED)
    assert len(_sensor(trained, cursor=str(report - 1)).run_requests) == 1
