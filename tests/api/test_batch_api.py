"""POST /api/v1/predictions/batch without a running cluster: every check answers before anything
is stored (paths under the data-access policy, a missing input, the input's columns against the
version's signature, keep_columns, an output beside the input, bounds), an output that holds
files is 409 OUTPUT_EXISTS unless overwrite, other tenants' models are 404, the scope is
predictions:write, and a valid request with Ray unreachable is 503 with nothing stored."""

from __future__ import annotations

import uuid

import pytest

from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import churn_like, log_sklearn_model
from tests.utils.tokens import auth, make_token


@pytest.fixture(scope="module")
def batch(client, settings):
    tenant = f"bt-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant), "churn")
    area = settings.data_dir / "tenants" / tenant
    (area / "in").mkdir(parents=True)
    frame, _ = churn_like(n=50, seed=3)
    frame.insert(0, "customer_id", [f"c-{i}" for i in range(50)])
    frame.to_parquet(area / "in" / "customers.parquet")
    frame.drop(columns=["support_tickets"]).to_parquet(area / "in" / "lacking.parquet")
    frame.assign(total_orders=frame["total_orders"].astype(str)).to_parquet(area / "in" / "strings.parquet")
    frame.assign(prediction=1).to_parquet(area / "in" / "taken.parquet")
    (area / "in" / "notparquet.parquet").write_text("not parquet")
    (area / "done").mkdir()
    (area / "done" / "part-00000.parquet").write_bytes(b"x")
    return {"model_id": model_id, "area": area, "headers": headers, "body": {"model_id": model_id, "input_path": "in/customers.parquet",
                                                          "output_path": "out/scores/"}}


def _post(client, headers, body):
    return client.post("/api/v1/predictions/batch", json=body, headers=headers)


@pytest.mark.parametrize(("changes", "needle"), [
    ({"input_path": "../other/customers.parquet"}, "data path not allowed"),
    ({"input_path": "/etc/passwd"}, "data path not allowed"),
    ({"input_path": "s3://not-allowed/customers.parquet"}, "data path not allowed"),
    ({"input_path": "in/missing.parquet"}, "holds no parquet file"),
    ({"input_path": "in/notparquet.parquet"}, "not readable parquet"),
    ({"input_path": "in/lacking.parquet"}, "column 'support_tickets' (long) is missing"),
    ({"input_path": "in/strings.parquet"}, "column 'total_orders' is string"),
    ({"input_path": "in/taken.parquet"}, "collide"),
    ({"keep_columns": ["customer_id", "nope"]}, "keep_columns not in the input"),
    ({"output_path": "in"}, "apart from the input"),
    ({"output_path": "in/customers.parquet/out"}, "apart from the input"),
    ({"output_path": "../elsewhere"}, "data path not allowed"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 10_000_000}, "batch_size"),
    ({"on_invalid": "ignore"}, "on_invalid"),
    ({"surprise": True}, "surprise"),
])
def test_bad_requests_are_400_and_store_nothing(client, batch, changes, needle):
    headers = batch["headers"]
    error = error_envelope(_post(client, headers, {**batch["body"], **changes}), 400, "INVALID_REQUEST")
    assert needle in str(error), error
    assert client.get("/api/v1/jobs", headers=headers).json()["count"] == 0


def test_an_output_that_holds_files_is_409_unless_overwrite(client, batch):
    headers = batch["headers"]
    error = error_envelope(_post(client, headers, {**batch["body"], "output_path": "done"}), 409, "OUTPUT_EXISTS")
    assert error["details"]["files"] == ["part-00000.parquet"]
    # with overwrite the checks pass and the request reaches the cluster (none here)
    error_envelope(_post(client, headers, {**batch["body"], "output_path": "done", "overwrite": True}), 503, "RAY_UNAVAILABLE")
    assert (batch["area"] / "done" / "part-00000.parquet").exists()  # nothing is touched before a job runs


def test_models_versions_and_scopes(client, other_headers, batch):
    headers = batch["headers"]
    error_envelope(_post(client, other_headers, batch["body"]), 404, "MODEL_NOT_FOUND")
    error_envelope(_post(client, headers, {**batch["body"], "model_id": "no-such-model"}), 404, "MODEL_NOT_FOUND")
    error_envelope(_post(client, headers, {**batch["body"], "version": "9.9.9"}), 404, "VERSION_NOT_FOUND")
    reader = auth(make_token(batch["area"].name, scopes="models:read jobs:read"))  # the same tenant, no predictions:write
    error_envelope(_post(client, reader, batch["body"]), 403, "FORBIDDEN")


def test_a_valid_request_without_ray_is_503_and_stores_nothing(client, batch):
    headers = batch["headers"]
    error_envelope(_post(client, headers, batch["body"]), 503, "RAY_UNAVAILABLE")
    assert client.get("/api/v1/predictions/batch", headers=headers).json() == {"data": [], "count": 0, "next_cursor": None}
    error_envelope(client.get("/api/v1/predictions/batch/batch-job-000000000000", headers=headers), 404, "JOB_NOT_FOUND")


def test_cancel_removes_the_jobs_staging_files(client, batch):
    from resources.jobs.records import JobStore

    store = JobStore(client.app.state.state_store)
    tenant = batch["area"].name
    record, _ = store.create(tenant, kind="batch_prediction", submitted_by="tester",
                             request={**batch["body"], "output_path": "out/cancelled"})
    store.record_run_state(record.job_id, status="running")
    staging = batch["area"] / "out" / "cancelled" / "_staging" / record.job_id / "data"
    staging.mkdir(parents=True)
    (staging / "part-00000.parquet").write_bytes(b"half written")
    answer = client.post(f"/api/v1/predictions/batch/{record.job_id}/cancel", headers=batch["headers"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled" and answer.json()["files"] == []
    assert not (batch["area"] / "out" / "cancelled" / "_staging").exists()
    other = client.get(f"/api/v1/jobs/{record.job_id}", headers=auth(make_token("someone-else")))
    assert other.status_code == 404


def test_a_retry_with_the_idempotency_key_answers_with_its_job_even_after_it_wrote(client, batch):
    """The job's own output must not turn its retry into a 409: the key is looked up first."""
    from resources.jobs.records import JobStore

    headers = {**batch["headers"], "Idempotency-Key": "batch-retry-1"}
    body = {**batch["body"], "output_path": "done"}  # holds files, as after the job wrote them
    sent = {"batch_size": 1000, "version": None, "keep_columns": None, "on_invalid": "fail", "overwrite": False, **body}
    record, _ = JobStore(client.app.state.state_store).create(
        batch["area"].name, kind="batch_prediction", submitted_by="tester", idempotency_key="batch-retry-1",
        request={**sent, "resolved_version": "1.0.0", "rows_total": 50})
    again = _post(client, headers, body)
    assert again.status_code == 202, again.text
    assert again.json()["job_id"] == record.job_id and again.json()["rows_total"] == 50
    error_envelope(_post(client, headers, {**body, "batch_size": 7}), 409, "IDEMPOTENCY_CONFLICT")
