"""The Open Inference Protocol (KServe v2) with a real client of that protocol: tritonclient
over HTTP against the API served by uvicorn on a free loopback port."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
import uvicorn

from mlservice.launcher.up import free_port
from serving_api.main import create_app
from tests.utils.api import error_envelope
from tests.utils.mlflow_models import FEATURES, churn_like, log_sklearn_model
from tests.utils.tokens import auth, make_token


@pytest.fixture(scope="module")
def server(settings):
    port = free_port()
    app = create_app(settings)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started
    yield app, f"127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def oip_model(server, settings):
    import httpx

    _app, address = server
    tenant = f"oip-{uuid.uuid4().hex[:6]}"
    headers = auth(make_token(tenant))
    run_id = log_sklearn_model(settings, tenant, kind="forest")
    with httpx.Client(base_url=f"http://{address}", headers=headers, trust_env=False) as http:
        created = http.post("/api/v1/models", json={"name": "churn-oip", "source": {"run_id": run_id}})
        assert created.status_code == 201, created.text
        model_id = created.json()["model_id"]
        for stage in ("staging", "production"):
            http.put(f"/api/v1/models/{model_id}/stage", json={"version": "1.0.0", "target_stage": stage}).raise_for_status()
    return {"tenant": tenant, "headers": headers, "model_id": model_id}


def _column_tensors(metadata: dict, frame, *, binary: bool) -> list:
    """One tritonclient input per feature of the model's metadata, from the frame's columns."""
    import tritonclient.http as httpclient

    tensors = []
    for spec in metadata["inputs"]:
        column = frame[spec["name"]].to_numpy().astype(np.int64 if spec["datatype"] == "INT64" else np.float64)
        tensor = httpclient.InferInput(spec["name"], [len(column)], spec["datatype"])
        tensor.set_data_from_numpy(column, binary_data=binary)
        tensors.append(tensor)
    return tensors


def test_tritonclient_health_metadata_and_infer(server, oip_model):
    import tritonclient.http as httpclient

    app, address = server
    client = httpclient.InferenceServerClient(url=address)
    headers = oip_model["headers"]
    assert client.is_server_live()
    deadline = time.monotonic() + 30  # the promotion loads the production version in the background
    while not client.is_model_ready("churn-oip", headers=headers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.is_model_ready("churn-oip", headers=headers)
    metadata = client.get_model_metadata("churn-oip", headers=headers)
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    assert {o["name"] for o in metadata["outputs"]} == {"predict", "predict_proba"}

    frame, _ = churn_like(n=4, seed=9)
    inputs = _column_tensors(metadata, frame, binary=False)
    outputs = [httpclient.InferRequestedOutput("predict", binary_data=False),
               httpclient.InferRequestedOutput("predict_proba", binary_data=False)]
    result = client.infer("churn-oip", inputs, outputs=outputs, headers=headers)
    proba = result.as_numpy("predict_proba")
    labels = result.as_numpy("predict")
    assert proba.shape == (4, 2) and labels.shape == (4,)
    served = next(s for k, s in app.state.model_cache._models.items() if k[1] == oip_model["model_id"])
    assert np.allclose(proba, served.model.estimator.predict_proba(frame[FEATURES]))
    assert list(labels) == list(proba.argmax(axis=1))
    # The same answer through a [N, F] tensor, version pinned.
    matrix = httpclient.InferInput("input-0", [4, len(FEATURES)], "FP64")
    matrix.set_data_from_numpy(frame[FEATURES].to_numpy(dtype=np.float64), binary_data=False)
    pinned = client.infer("churn-oip", [matrix], model_version="1.0.0", outputs=outputs[1:], headers=headers)
    assert np.allclose(pinned.as_numpy("predict_proba"), proba)
    # Every answered inference is logged.
    logged = app.state.prediction_log.records(oip_model["tenant"], model_id=oip_model["model_id"])
    assert len(logged) >= 2


def test_oip_refuses_without_token_and_hides_other_tenants(server, oip_model):
    import httpx

    _, address = server
    with httpx.Client(base_url=f"http://{address}", trust_env=False) as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        assert http.get("/v2/models/churn-oip").status_code == 401
        other = http.get("/v2/models/churn-oip", headers=auth(make_token("somebody-else")))
        error_envelope(other, 404, "MODEL_NOT_FOUND")
        binary = http.post("/v2/models/churn-oip/infer", content=b"\x00", headers={
            **oip_model["headers"], "Inference-Header-Content-Length": "10", "content-type": "application/octet-stream"})
        error_envelope(binary, 400, "INVALID_REQUEST")  # a header longer than the body
        bad = http.post("/v2/models/churn-oip/infer", json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
                        headers=oip_model["headers"])
        assert bad.status_code == 400 and bad.json()["error"]["details"]["expected_inputs"] == FEATURES


def test_tritonclient_with_its_defaults_uses_the_binary_extension_both_ways(server, oip_model):
    """set_data_from_numpy and InferRequestedOutput default to binary data: the same answer as JSON."""
    import tritonclient.http as httpclient

    _app, address = server
    client = httpclient.InferenceServerClient(url=address)
    headers = oip_model["headers"]
    frame, _ = churn_like(n=5, seed=11)
    metadata = client.get_model_metadata("churn-oip", headers=headers)
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

    def inputs(binary: bool):
        return _column_tensors(metadata, frame, binary=binary)

    as_json = client.infer("churn-oip", inputs(False), headers=headers, outputs=[
        httpclient.InferRequestedOutput("predict", binary_data=False), httpclient.InferRequestedOutput("predict_proba", binary_data=False)])
    default = client.infer("churn-oip", inputs(True), headers=headers)  # no outputs named: every output binary
    assert default.get_response()["outputs"][0]["parameters"]["binary_data_size"] > 0
    assert np.array_equal(default.as_numpy("predict"), as_json.as_numpy("predict"))
    assert np.allclose(default.as_numpy("predict_proba"), as_json.as_numpy("predict_proba"), rtol=0, atol=1e-15)
    mixed = client.infer("churn-oip", inputs(True), headers=headers, outputs=[
        httpclient.InferRequestedOutput("predict_proba", binary_data=True), httpclient.InferRequestedOutput("predict", binary_data=False)])
    assert "data" in next(o for o in mixed.get_response()["outputs"] if o["name"] == "predict")
    assert np.allclose(mixed.as_numpy("predict_proba"), as_json.as_numpy("predict_proba"), rtol=0, atol=1e-15)


@pytest.mark.parametrize("case", ["size_beyond_body", "bytes_beyond_tensors", "size_not_shape", "bad_header", "no_data"])
def test_malformed_binary_requests_are_400(server, oip_model, case):
    import json

    import httpx

    _, address = server
    tensor = {"name": "input-0", "shape": [1, len(FEATURES)], "datatype": "FP64",
              "parameters": {"binary_data_size": 8 * len(FEATURES)}}
    payload = np.arange(len(FEATURES), dtype="<f8").tobytes()
    length = None
    if case == "size_beyond_body":
        tensor["parameters"]["binary_data_size"] = 10_000
    elif case == "size_not_shape":
        tensor["shape"] = [2, len(FEATURES)]
    elif case == "no_data":
        tensor.pop("parameters")
    header = json.dumps({"inputs": [tensor]}).encode()
    body = header + payload + (b"\x00" if case == "bytes_beyond_tensors" else b"")
    length = "nope" if case == "bad_header" else str(len(header))
    with httpx.Client(base_url=f"http://{address}", trust_env=False) as http:
        response = http.post("/v2/models/churn-oip/infer", content=body, headers={
            **oip_model["headers"], "Inference-Header-Content-Length": length, "content-type": "application/octet-stream"})
    error_envelope(response, 400, "INVALID_REQUEST")
