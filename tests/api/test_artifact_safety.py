"""Loading a model never runs code the artifact chose (issue 9, section 1), tried as an attacker.

Each attack logs a model in the tenant's own experiment, with the tenant's tag (the only gate
MLflow offers), and tries to get the platform to load it: registration refuses it with a 400
naming what was refused, and the marker file its code would write never appears. A version that
passed registration and whose files are swapped afterwards answers 503 MODEL_ARTIFACT_CHANGED; one
created in MLflow behind the platform's back answers 503 MODEL_NOT_VERIFIED.
"""

from __future__ import annotations

import shutil

import pytest

from tests.utils import hostile_models as hostile
from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import log_sklearn_model

ROW = {"total_orders": 12, "days_since_last_order": 40, "avg_order_value": 80.5, "support_tickets": 1}


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker"
    monkeypatch.setenv(hostile.MARKER_ENV, str(path))
    return path


def _model(client, headers, name="m") -> str:
    response = client.post("/api/v1/models", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["model_id"]


@pytest.mark.parametrize("log, refused", [
    (hostile.log_loader_module, "code"),
    (hostile.log_pickled_python_model, "python_model"),
    (hostile.log_models_from_code, "platform's torch model"),
    (hostile.log_cloudpickled_sklearn, "skops"),
])
def test_artifacts_that_choose_their_loader_are_refused_at_registration(client, settings, tenant, headers, marker, log, refused):
    run_id = log(settings, tenant)
    marker.unlink(missing_ok=True)  # MLflow runs a models-from-code file when it logs it: in the attacker's process
    created = client.post("/api/v1/models", json={"name": "attack", "source": {"run_id": run_id}}, headers=headers)
    assert refused in error_envelope(created, 400, "INVALID_REQUEST")["message"]
    assert client.get("/api/v1/models", params={"name_prefix": "attack"}, headers=headers).json()["data"] == []
    model_id = _model(client, headers)
    version = client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"model_uri": f"runs:/{run_id}/model"}},
                          headers=headers)
    assert version.status_code == 400 and refused in version.json()["error"]["message"]
    assert client.get(f"/api/v1/models/{model_id}/versions", headers=headers).json()["data"] == []
    assert not marker.exists()


def test_skops_types_listed_by_the_artifact_are_not_trusted(client, settings, tenant, headers):
    run_id = hostile.log_skops_with_function(settings, tenant)  # its MLmodel trusts posix.system
    response = client.post("/api/v1/models", json={"name": "fn", "source": {"run_id": run_id}}, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "does not trust" in error["message"] and any("system" in t for t in error["details"]["artifact"]["types"])


@pytest.mark.parametrize("path", ["../../other", "model/../..", "..", "model/./x", "mo del", "model%2F..%2F..", "a/" * 9 + "b"])
def test_a_runs_uri_path_must_be_plain_segments(client, settings, tenant, headers, path):
    run_id = log_sklearn_model(settings, tenant)
    model_id = _model(client, headers)
    response = client.post(f"/api/v1/models/{model_id}/versions",
                           json={"source": {"model_uri": f"runs:/{run_id}/{path}"}}, headers=headers)
    assert response.status_code == 400, response.text
    assert client.get(f"/api/v1/models/{model_id}/versions", headers=headers).json()["data"] == []


def test_an_experiment_located_in_another_tenants_folder_lends_nothing(client, settings, tenant, headers):
    """The attacker makes an experiment whose artifact location is the victim's folder."""
    import mlflow

    victim_tenant = "victim-" + tenant
    victim_run = log_sklearn_model(settings, victim_tenant)
    client_ml = mlflow.MlflowClient(settings.effective_tracking_uri)
    victim_root = client_ml.get_experiment(client_ml.get_run(victim_run).info.experiment_id).artifact_location
    experiment_id = client_ml.create_experiment(f"{tenant}/borrowed", artifact_location=victim_root,
                                                tags={"mlservice.tenant": tenant})
    run = client_ml.create_run(experiment_id, tags={"mlservice.tenant": tenant})
    # the victim's logged model, named through the attacker's run
    logged = client_ml.search_logged_models(experiment_ids=[client_ml.get_run(victim_run).info.experiment_id])[0]
    for uri in (f"runs:/{run.info.run_id}/model", f"models:/{logged.model_id}"):
        response = client.post("/api/v1/models", json={"name": "borrowed", "source": {"model_uri": uri}}, headers=headers)
        assert response.status_code == 400, (uri, response.text)


def test_a_platform_model_registers_and_serves(client, settings, tenant, headers, marker):
    run_id = log_sklearn_model(settings, tenant, kind="forest")
    created = client.post("/api/v1/models", json={"name": "ok", "source": {"run_id": run_id}}, headers=headers)
    assert created.status_code == 201, created.text
    prediction = client.post("/api/v1/predictions", json={"model_id": created.json()["model_id"], "features": ROW},
                             headers=headers)
    assert prediction.status_code == 200, prediction.text
    assert prediction.json()["probabilities"] and not marker.exists()


def _registered(client, settings, tenant, headers) -> tuple[str, str]:
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant), "swap")
    return model_id, client.get(f"/api/v1/models/{model_id}/versions", headers=headers).json()["data"][0]["source"]


def test_a_file_swapped_after_registration_refuses_to_load(client, settings, tenant, headers, marker):
    model_id, source = _registered(client, settings, tenant, headers)
    folder = hostile.local_path(source)
    evil_run = hostile.log_loader_module(settings, tenant)  # an MLmodel naming a loader_module, and its code/
    evil_model = hostile.logged_model_dir(settings, evil_run)
    shutil.copy(evil_model / "MLmodel", folder / "MLmodel")
    shutil.copytree(evil_model / "code", folder / "code")
    response = client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "MODEL_ARTIFACT_CHANGED"
    assert "MLmodel" in error["details"]["files"] and "code/evil_loader.py" in error["details"]["files"]
    assert not marker.exists()


def test_a_version_created_behind_the_platforms_back_is_not_loaded(client, settings, tenant, headers, marker):
    import mlflow

    model_id, _source = _registered(client, settings, tenant, headers)
    evil_run = hostile.log_loader_module(settings, tenant)
    ml = mlflow.MlflowClient(settings.effective_tracking_uri)
    name = f"{tenant}.swap"
    evil_source = hostile.logged_model_dir(settings, evil_run).as_uri()
    ml.create_model_version(name, evil_source, run_id=evil_run,
                            tags={"mlservice.semver": "9.0.0", "mlservice.stage": "development", "mlservice.tenant": tenant})
    for request in (
        lambda: client.post("/api/v1/predictions", json={"model_id": model_id, "version": "9.0.0", "features": ROW}, headers=headers),
        lambda: client.post("/v2/models/swap/versions/9.0.0/infer", headers=headers, json={
            "inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in ROW.items()]}),
    ):
        response = request()
        error_envelope(response, 503, "MODEL_NOT_VERIFIED")
    assert not marker.exists()


def test_a_refused_load_is_remembered_briefly_not_downloaded_per_request(client, settings, tenant, headers):
    model_id, source = _registered(client, settings, tenant, headers)
    (hostile.local_path(source) / "model.skops").write_bytes(b"swapped")
    cache = client.app.state.model_cache
    loads = cache.loads
    for _ in range(10):
        response = client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers)
        error_envelope(response, 503, "MODEL_ARTIFACT_CHANGED")
    assert cache.loads == loads + 1


def test_a_version_that_does_not_load_is_503_with_its_own_code_and_is_tried_again(client, settings, tenant, headers,
                                                                                  monkeypatch):
    """A failure the platform does not know (here: the rebuild raises) is the platform's 503
    MODEL_LOAD_FAILED naming the version, not a 500; it is not remembered, so the next request loads."""
    model_id, _source = _registered(client, settings, tenant, headers)
    cache = client.app.state.model_cache
    real_load = cache._load

    def broken(*args, **kwargs):
        raise RuntimeError("the rebuild failed")

    monkeypatch.setattr(cache, "_load", broken)
    response = client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "MODEL_LOAD_FAILED" and error["details"]["model_id"] == model_id
    assert "RuntimeError" in error["message"] and "the rebuild failed" not in error["message"]  # internals stay in the log
    monkeypatch.setattr(cache, "_load", real_load)
    assert client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers).status_code == 200
