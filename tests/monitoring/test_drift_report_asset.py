"""The drift_report asset under ``dg.materialize``: one partition per model, the same figures as
the API's drift endpoint, the report kept in the history, the ``no_drift`` check failing (as a
warning) on a drifted model and passing on a calm one, and a model without traffic recorded as
insufficient data instead of failing. The monitored_models sensor adds production models."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from assets.monitoring.assets import drift_report, monitored_models
from mlservice.config.wiring import build_registry, build_state_store
from pipelines.monitoring import build_monitored_models_sensor
from resources.monitoring.drift_history import DriftReportStore
from resources.monitoring.drift_job_spec import DriftReportConfig, monitored_key
from tests.utils.api import move_stages, register_model
from tests.utils.mlflow_models import churn_rows, log_sklearn_model
from tests.utils.tokens import auth, make_token

monitored_models_sensor = build_monitored_models_sensor()


def _rows(seed: int, n: int, shift: float = 0.0) -> list[dict]:
    return churn_rows(n, seed, shift=shift)[0]


def _production_model(client, settings, headers, tenant, name, rows):
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant, reference=True), name)
    move_stages(client, headers, model_id, "1.0.0", "staging", "production")
    if rows:
        answer = client.post("/api/v1/predictions", json={"model_id": model_id, "instances": rows}, headers=headers)
        assert answer.status_code == 200, answer.text
    return model_id


@pytest.fixture(scope="module")
def monitored(client, settings):
    tenant = f"d-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    ids = {
        "calm": _production_model(client, settings, headers, tenant, "calm", _rows(31, 300)),
        "drifted": _production_model(client, settings, headers, tenant, "drifted", _rows(32, 300, shift=80.0)),
        "quiet": _production_model(client, settings, headers, tenant, "quiet", []),
    }
    state = build_state_store(settings)
    resources = {"registry": build_registry(settings, state), "state": state}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(monitored_models.name, [monitored_key(tenant, i) for i in ids.values()])
    return {"tenant": tenant, "headers": headers, "ids": ids, "resources": resources, "instance": instance}


def _materialize(monitored, name):
    return dg.materialize(
        [drift_report], resources=monitored["resources"], instance=monitored["instance"],
        partition_key=monitored_key(monitored["tenant"], monitored["ids"][name]),
        run_config={"ops": {"drift_report": {"config": DriftReportConfig().model_dump()}}},
    )


def test_a_drifted_model_fails_the_check_and_its_report_equals_the_apis(client, monitored):
    result = _materialize(monitored, "drifted")
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "no_drift" and check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    metadata = result.asset_materializations_for_node("drift_report")[0].metadata
    assert metadata["status"].value == "ok" and metadata["drifted"].value == "avg_order_value"
    model_id = monitored["ids"]["drifted"]
    [kept] = DriftReportStore(monitored["resources"]["state"]).history(monitored["tenant"], model_id, limit=1)
    assert kept.id == metadata["report_id"].value and kept.overall_drift is True and kept.source == "schedule"
    assert kept.dagster_run_id == result.run_id
    api = client.get(f"/api/v1/monitoring/{model_id}/drift", headers=monitored["headers"]).json()
    for name, figures in api["results"].items():
        assert kept.report["results"][name]["statistic"] == pytest.approx(figures["statistic"], abs=1e-12)
        assert kept.report["results"][name]["p_value"] == pytest.approx(figures["p_value"], abs=1e-12)


def test_a_calm_model_passes_the_check(monitored):
    result = _materialize(monitored, "calm")
    [check] = result.get_asset_check_evaluations()
    assert result.success and check.passed is True
    assert result.asset_materializations_for_node("drift_report")[0].metadata["features_drifted"].value == 0


def test_a_model_without_traffic_is_recorded_as_insufficient_data(monitored):
    result = _materialize(monitored, "quiet")
    assert result.success
    [kept] = DriftReportStore(monitored["resources"]["state"]).history(monitored["tenant"], monitored["ids"]["quiet"], limit=1)
    assert kept.status == "insufficient_data" and kept.overall_drift is None


def test_the_sensor_adds_a_partition_per_production_model(monitored):
    instance = dg.DagsterInstance.ephemeral()
    resources = {"registry": monitored["resources"]["registry"]}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = monitored_models_sensor(context)
    [request] = result.dynamic_partitions_requests
    assert {monitored_key(monitored["tenant"], i) for i in monitored["ids"].values()} <= set(request.partition_keys)
    instance.add_dynamic_partitions(monitored_models.name, list(request.partition_keys))
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        assert isinstance(monitored_models_sensor(context), dg.SkipReason)
