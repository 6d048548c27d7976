"""GET /api/v1/monitoring/{model_id}/drift: the reference's answer shape, the statistics against
scipy on the same arrays, a shifted feature found and the others not, version and window filters,
ensemble traffic counted for its members, a version without reference, too little data, bad
parameters, scopes and tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from tests.utils.api import error_envelope, move_stages, register_model
from tests.utils.mlflow_models import FEATURES, churn_like, churn_rows, log_sklearn_model
from tests.utils.tokens import auth, make_token

SHIFTED = "avg_order_value"


def _traffic(seed: int, n: int, shift: float = 0.0) -> list[dict]:
    return churn_rows(n, seed, shift=shift)[0]


def _send(client, headers, model_id, rows, version=None):
    for start in range(0, len(rows), 200):
        body = {"model_id": model_id, "instances": rows[start:start + 200], **({"version": version} if version else {})}
        answer = client.post("/api/v1/predictions", json=body, headers=headers)
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def watched(client, settings):
    """Model 'churn' of a fresh tenant: 1.0.0 (production) got 400 rows like its reference, 1.1.0
    (staging) 400 rows with avg_order_value shifted by +60; both carry a reference of 300 rows."""
    tenant = f"m-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant, reference=True), "churn")
    second = log_sklearn_model(settings, tenant, kind="forest", reference=True)
    assert client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": second}}, headers=headers).status_code == 201
    move_stages(client, headers, model_id, "1.0.0", "staging", "production")
    move_stages(client, headers, model_id, "1.1.0", "staging")
    calm, shifted = _traffic(seed=11, n=400), _traffic(seed=12, n=400, shift=60.0)
    _send(client, headers, model_id, calm)
    _send(client, headers, model_id, shifted, version="1.1.0")
    return {"tenant": tenant, "headers": headers, "model_id": model_id, "calm": calm, "shifted": shifted}


def _drift(client, watched, **params):
    return client.get(f"/api/v1/monitoring/{watched['model_id']}/drift", params=params, headers=watched["headers"])


def test_the_reference_shape_and_no_drift_on_traffic_like_the_reference(client, watched):
    answer = _drift(client, watched, features="total_orders,avg_order_value")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_id"] == watched["model_id"] and body["version"] == "1.0.0"  # production by default
    assert body["features_checked"] == 2 and set(body["results"]) == {"total_orders", "avg_order_value"}
    for result in body["results"].values():
        assert {"drifted", "statistic", "p_value", "method"} <= set(result)
        assert result["method"] == "ks_2samp" and result["status"] == "ok"
        assert result["reference_size"] == 300 and result["current_size"] == 400
    assert body["overall_drift"] is False and body["features_drifted"] == 0
    assert body["correction"] == "fdr_bh" and body["alpha"] == 0.05 and body["current"]["rows"] == 400


def test_statistics_equal_scipy_on_the_same_arrays(client, watched):
    body = _drift(client, watched, version="1.1.0").json()
    reference, _ = churn_like()  # what log_sklearn_model fitted on and logged as the reference
    current = np.array([row[SHIFTED] for row in watched["shifted"]])
    result = body["results"][SHIFTED]
    expected = stats.ks_2samp(reference[SHIFTED].to_numpy(), current, method=result["mode"])
    assert abs(result["statistic"] - expected.statistic) < 1e-9 and abs(result["p_value"] - expected.pvalue) < 1e-9


def test_the_shifted_feature_drifts_and_the_others_do_not(client, watched):
    body = _drift(client, watched, version="1.1.0").json()
    assert body["version"] == "1.1.0" and body["features_checked"] == len(FEATURES)
    drifted = {name for name, result in body["results"].items() if result["drifted"]}
    assert drifted == {SHIFTED} and body["overall_drift"] is True and body["features_drifted"] == 1
    shifted = body["results"][SHIFTED]
    assert shifted["p_value_corrected"] < 0.05 and shifted["psi"] > 0.2 and shifted["wasserstein_normed"] > 0.5
    assert body["current"]["rows"] == 400  # only 1.1.0's rows


def test_unknown_feature_is_400_naming_it(client, watched):
    error = error_envelope(_drift(client, watched, features="total_orders,shoe_size"), 400, "INVALID_REQUEST")
    assert "shoe_size" in error["message"] and error["details"]["unknown"] == ["shoe_size"]


def test_a_window_without_traffic_is_insufficient_data(client, watched):
    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    end = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    error = error_envelope(_drift(client, watched, start=start, end=end), 422, "INSUFFICIENT_DATA")
    assert error["details"]["current_rows"] == 0 and error["details"]["minimum"] >= 2


@pytest.mark.parametrize("params", [{"alpha": 2}, {"alpha": 0}, {"correction": "holm-ish"}, {"window_hours": 0},
                                    {"window_hours": 24 * 365}, {"window_hours": 1, "start": "2026-01-01T00:00:00Z"},
                                    {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}])
def test_bad_parameters_are_400(client, watched, params):
    error_envelope(_drift(client, watched, **params), 400, "INVALID_REQUEST")


def test_ensemble_traffic_counts_for_its_members(client, watched):
    headers, model_id = watched["headers"], watched["model_id"]
    created = client.post("/api/v1/ensembles", headers=headers, json={
        "name": f"ens-{uuid.uuid4().hex[:6]}", "method": "voting_soft",
        "models": [{"model_id": model_id, "version": "1.1.0", "weight": 1}, {"model_id": model_id, "version": "1.0.0", "weight": 1}]})
    assert created.status_code == 201, created.text
    rows = _traffic(seed=13, n=50)
    answer = client.post(f"/api/v1/ensembles/{created.json()['ensemble_id']}/predict", json={"instances": rows}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert _drift(client, watched, version="1.1.0").json()["current"]["rows"] == 450
    assert _drift(client, watched, version="1.0.0").json()["current"]["rows"] == 450


def test_a_version_without_reference_is_404_reference_not_found(client, settings):
    tenant = f"m-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant), "bare")
    answer = client.get(f"/api/v1/monitoring/{model_id}/drift", headers=headers)
    error = error_envelope(answer, 404, "REFERENCE_NOT_FOUND")
    assert error["details"] == {"model_id": model_id, "version": "1.0.0"}


def test_another_tenants_model_is_404_and_the_scope_is_needed(client, watched):
    other = client.get(f"/api/v1/monitoring/{watched['model_id']}/drift", headers=auth(make_token(f"o-{uuid.uuid4().hex[:8]}")))
    error_envelope(other, 404, "MODEL_NOT_FOUND")
    unscoped = auth(make_token(watched["tenant"], scopes="models:read predictions:write"))
    error_envelope(client.get(f"/api/v1/monitoring/{watched['model_id']}/drift", headers=unscoped), 403, "FORBIDDEN")


def test_a_reference_from_a_file_or_from_traffic_serves_a_version_registered_without_one(client, settings):
    tenant = f"m-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant), "bare")
    url = f"/api/v1/monitoring/{model_id}"
    error_envelope(client.get(f"{url}/drift", headers=headers), 404, "REFERENCE_NOT_FOUND")
    _send(client, headers, model_id, _traffic(seed=14, n=300))
    # from a file under the tenant's area: a reference the traffic matches
    frame, _ = churn_like(n=500, seed=15)
    folder = settings.tenants_dir / tenant / "ref"
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "reference.parquet")
    made = client.post(f"{url}/reference", json={"source": "path", "path": "ref/reference.parquet"}, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["rows"] == 500 and made.json()["version"] == "1.0.0" and made.json()["source"] == "path"
    body = client.get(f"{url}/drift", headers=headers).json()
    assert body["reference"] == {"source": "path", "rows": 500} and body["overall_drift"] is False
    # from the version's own traffic: the window's rows become the reference, and then nothing drifts against itself
    made = client.post(f"{url}/reference", json={"source": "traffic", "window_hours": 1}, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["rows"] == 300 and made.json()["source"] == "traffic"
    body = client.get(f"{url}/drift", headers=headers).json()
    assert body["reference"] == {"source": "traffic", "rows": 300}
    assert all(r["statistic"] == 0.0 for r in body["results"].values())


@pytest.mark.parametrize("body,status,code", [
    ({"source": "path", "path": "../../etc/passwd"}, 400, "INVALID_REQUEST"),
    ({"source": "path", "path": "missing.parquet"}, 400, "INVALID_REQUEST"),
    ({"source": "path"}, 400, "INVALID_REQUEST"),
    ({"source": "traffic", "path": "x.parquet"}, 400, "INVALID_REQUEST"),
    ({"source": "traffic", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}, 422, "INSUFFICIENT_DATA"),
])
def test_bad_references_are_refused(client, watched, body, status, code):
    answer = client.post(f"/api/v1/monitoring/{watched['model_id']}/reference", json=body, headers=watched["headers"])
    error_envelope(answer, status, code)


def test_a_reference_file_without_the_versions_features_is_400_naming_them(client, settings, watched):
    folder = settings.tenants_dir / watched["tenant"] / "ref"
    folder.mkdir(parents=True, exist_ok=True)
    churn_like(n=50)[0].drop(columns=["support_tickets"]).to_parquet(folder / "partial.parquet")
    answer = client.post(f"/api/v1/monitoring/{watched['model_id']}/reference",
                         json={"source": "path", "path": "ref/partial.parquet"}, headers=watched["headers"])
    assert error_envelope(answer, 400, "INVALID_REQUEST")["details"] == {"missing": ["support_tickets"]}


def test_oip_traffic_is_read_like_every_other_path(client, watched):
    before = _drift(client, watched).json()["current"]["rows"]
    metadata = client.get("/v2/models/churn", headers=watched["headers"]).json()
    frame, _ = churn_like(n=40, seed=16)
    inputs = [{"name": spec["name"], "shape": [40], "datatype": spec["datatype"],
               "data": frame[spec["name"]].astype(float if spec["datatype"] == "FP64" else int).tolist()}
              for spec in metadata["inputs"]]
    answer = client.post("/v2/models/churn/infer", json={"inputs": inputs}, headers=watched["headers"])
    assert answer.status_code == 200, answer.text
    after = _drift(client, watched).json()
    assert after["current"]["rows"] == before + 40 and after["version"] == "1.0.0"


def test_a_reference_file_that_unpacks_too_large_is_refused_before_it_is_read(client, settings, watched, monkeypatch):
    from mlservice.monitoring import reference

    folder = settings.tenants_dir / watched["tenant"] / "ref"
    folder.mkdir(parents=True, exist_ok=True)
    churn_like(n=200)[0].to_parquet(folder / "long.parquet")
    monkeypatch.setattr(reference, "REFERENCE_FILE_MAX_ROWS", 100)  # the metadata's row count decides, not the bytes
    answer = client.post(f"/api/v1/monitoring/{watched['model_id']}/reference",
                         json={"source": "path", "path": "ref/long.parquet"}, headers=watched["headers"])
    assert error_envelope(answer, 400, "INVALID_REQUEST")["details"]["rows"] == 200


def test_a_reference_from_s3_on_a_real_s3_server(client, settings, watched, s3_server, monkeypatch):
    """POST .../reference with an s3:// path reads the file through resources.data.storage from the S3
    server the data-access policy names (moto's server process), within the tenant's grant."""
    bucket = s3_server.bucket("ref")
    frame = churn_like(n=500, seed=21)[0]
    s3_server.put_parquet(f"s3://{bucket}/refs/customers.parquet", frame)
    service = client.app.state.monitoring_service
    monkeypatch.setattr(service, "data_access", s3_server.policy(settings.data_dir, tenant_buckets={watched["tenant"]: [bucket]}))
    url = f"/api/v1/monitoring/{watched['model_id']}/reference"
    made = client.post(url, json={"source": "path", "path": f"s3://{bucket}/refs/customers.parquet"}, headers=watched["headers"])
    assert made.status_code == 201, made.text
    assert made.json()["rows"] == 500 and made.json()["source"] == "path"
    missing = client.post(url, json={"source": "path", "path": f"s3://{bucket}/refs/none.parquet"}, headers=watched["headers"])
    assert error_envelope(missing, 400, "INVALID_REQUEST")["message"] == "the reference file does not exist"
    elsewhere = client.post(url, json={"source": "path", "path": "s3://not-granted/refs/customers.parquet"}, headers=watched["headers"])
    error_envelope(elsewhere, 400, "INVALID_REQUEST")
