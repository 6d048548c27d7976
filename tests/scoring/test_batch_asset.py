"""The batch_predictions asset under ``dg.materialize`` on a local Ray: Ray Data scores a parquet
input with the version's verified predictor; the output holds the kept columns, the prediction,
the class probabilities and the version, in the input's order, equal to the online API's answers
for the same rows; rows that do not fit go to _rejected/ with reasons (skip) or fail the job with
their count and examples (fail), and a failed job leaves nothing visible."""

from __future__ import annotations

import json
import math
import uuid

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.scoring.assets import batch_predictions
from mlservice.config.wiring import build_data_policy, build_registry, build_state_store
from resources.data.staged_output import SUCCESS, plan_output, visible_files
from resources.infra.ray_cluster import RayCluster
from resources.jobs.records import JobStore
from resources.jobs.specs import BatchScoringConfig
from tests.utils.api import register_model
from tests.utils.asset_resources import submitted_job
from tests.utils.mlflow_models import FEATURES, churn_like, log_sklearn_model
from tests.utils.tokens import auth, make_token


@pytest.fixture(scope="module")
def scoring(client, settings, local_ray):
    tenant = f"b-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant, kind="forest"), "churn")
    area = settings.data_dir / "tenants" / tenant
    (area / "in").mkdir(parents=True)
    frame, _ = churn_like(n=2500, seed=11)
    frame.insert(0, "customer_id", [f"c-{i:05d}" for i in range(len(frame))])
    frame.iloc[:1200].to_parquet(area / "in" / "a.parquet")  # two files: read in name order
    frame.iloc[1200:].to_parquet(area / "in" / "b.parquet")
    state = build_state_store(settings)
    resources = {"registry": build_registry(settings, state), "state": state, "data_access": build_data_policy(settings),
                 "ray_cluster": RayCluster(address="auto")}
    return {"tenant": tenant, "headers": headers, "model_id": model_id, "frame": frame, "area": area,
            "resources": resources, "state": state, "policy": resources["data_access"]}


def _run(scoring, **fields):
    context = submitted_job(scoring["state"], scoring["tenant"], "batch_prediction")
    config = BatchScoringConfig(context=context, model_id=scoring["model_id"], version="1.0.0", **fields)
    result = dg.materialize([batch_predictions], resources=scoring["resources"], raise_on_error=False,
                            run_config={"ops": {"batch_predictions": {"config": config.model_dump()}}})
    return result, JobStore(scoring["state"]).get(scoring["tenant"], context.job_id)


def _output(scoring, path: str) -> tuple[pd.DataFrame, dict]:
    folder = scoring["area"] / path
    parts = sorted(p for p in folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True), json.loads((folder / SUCCESS).read_text())


def test_batch_scores_equal_online_scores_in_the_inputs_order(client, scoring):
    result, job = _run(scoring, input_path="in", output_path="out/all", batch_size=400)
    assert result.success, job.reason
    scored, manifest = _output(scoring, "out/all")

    frame = scoring["frame"]
    assert list(scored.columns) == ["customer_id", "prediction", "probability_0", "probability_1", "model_version"]
    assert scored["customer_id"].tolist() == frame["customer_id"].tolist()
    assert (scored["model_version"] == "1.0.0").all()
    assert manifest["rows"] == len(frame) and manifest["rejected_rows"] == 0 and manifest["model_version"] == "1.0.0"
    parts = sorted(p.name for p in (scoring["area"] / "out" / "all").glob("part-*.parquet"))
    assert manifest["job_id"] == job.job_id and manifest["files"] == parts and manifest["schema"]
    assert job.result["files"] == [*parts, SUCCESS]
    sample = frame.iloc[::97]
    rows = [{k: (float(v) if k == "avg_order_value" else int(v)) for k, v in r.items()} for r in sample[FEATURES].to_dict("records")]
    online = client.post("/api/v1/predictions", json={"model_id": scoring["model_id"], "instances": rows,
                                                      "options": {"return_probabilities": True}}, headers=scoring["headers"])
    assert online.status_code == 200, online.text
    body = online.json()
    mine = scored.iloc[::97]
    assert mine["prediction"].tolist() == body["prediction"]
    assert np.allclose(mine[["probability_0", "probability_1"]].to_numpy(), np.asarray(body["probabilities"]), atol=1e-12, rtol=0)
    assert job.status in ("submitted", "running", "succeeded")  # the API's field; the run's figures are in result
    assert job.result["rows_done"] == len(frame) and job.result["rows_rejected"] == 0 and job.result["files"]
    assert 0 < job.result["startup_seconds"] < job.result["seconds"] and job.result["first_rows_at"]


def _with_bad_rows(scoring, name: str) -> pd.DataFrame:
    frame = scoring["frame"].iloc[:300].copy()
    frame["avg_order_value"] = frame["avg_order_value"].astype("float64")
    frame.loc[5, "avg_order_value"] = math.nan
    frame.loc[9, "avg_order_value"] = math.inf
    frame.to_parquet(scoring["area"] / "in" / f"../{name}.parquet")
    return frame


def test_skip_writes_rejected_rows_with_reasons_and_scores_the_rest(scoring):
    frame = _with_bad_rows(scoring, "bad-skip")
    result, job = _run(scoring, input_path="bad-skip.parquet", output_path="out/skip", on_invalid="skip")
    assert result.success, job.reason
    scored, manifest = _output(scoring, "out/skip")
    assert len(scored) == 298 and manifest["rejected_rows"] == 2
    assert "c-00005" not in scored["customer_id"].tolist()
    rejected = pd.concat(pd.read_parquet(p) for p in (scoring["area"] / "out" / "skip" / "_rejected").glob("*.parquet"))
    reasons = dict(zip(rejected["customer_id"], rejected["rejection_reason"], strict=True))
    assert reasons == {"c-00005": "feature 'avg_order_value': is null",
                       "c-00009": "feature 'avg_order_value': must be finite (no NaN or infinity)"}
    assert len(frame) == len(scored) + len(rejected)


def test_fail_reports_the_count_and_leaves_no_output(scoring):
    _with_bad_rows(scoring, "bad-fail")
    result, job = _run(scoring, input_path="bad-fail.parquet", output_path="out/fail")
    assert not result.success
    assert "2 row(s) do not fit" in job.reason and job.result["rows_rejected"] == 2
    assert len(job.result["rejected_examples"]) == 2
    plan = plan_output(scoring["policy"].resolve(scoring["tenant"], "out/fail"), scoring["policy"], job.job_id)
    assert visible_files(plan) == [] and not (scoring["area"] / "out" / "fail" / "_staging").exists()


def test_s3_in_and_out_against_a_real_s3_server(scoring, s3_server):
    import io

    bucket = s3_server.bucket("batch")
    frame = scoring["frame"].iloc[:700]
    s3_server.put_parquet(f"s3://{bucket}/in/customers.parquet", frame)
    policy = s3_server.policy(scoring["resources"]["data_access"].data_dir, tenant_buckets={scoring["tenant"]: [bucket]})
    on_s3 = {**scoring, "resources": {**scoring["resources"], "data_access": policy}}
    result, job = _run(on_s3, input_path=f"s3://{bucket}/in/customers.parquet", output_path=f"s3://{bucket}/scores/",
                       keep_columns=["customer_id"])
    assert result.success, job.reason
    keys = s3_server.keys(bucket, "scores/")
    assert "scores/_SUCCESS" in keys and not any("_staging" in k for k in keys)
    # pyarrow keeps a folder's zero-byte marker when it empties one (the staging folder's parent)
    assert [k for k in keys if k.endswith("/")] in ([], ["scores/"]), keys
    parts = [k for k in keys if k.startswith("scores/part-")]
    client = s3_server.client()
    scored = pd.concat([pd.read_parquet(io.BytesIO(client.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in sorted(parts)],
                       ignore_index=True)
    local, _ = _output(scoring, "out/all")  # the local run of the first test scored the same rows
    assert scored["customer_id"].tolist() == frame["customer_id"].tolist()
    assert np.array_equal(scored[["probability_0", "probability_1"]].to_numpy(),
                          local.iloc[:700][["probability_0", "probability_1"]].to_numpy())
    manifest = json.loads(client.get_object(Bucket=bucket, Key="scores/_SUCCESS")["Body"].read())
    assert manifest["rows"] == 700 and manifest["files"] == [k.removeprefix("scores/") for k in sorted(parts)]


def test_an_input_of_one_row_group_is_sliced_into_blocks_for_every_actor(tmp_path, local_ray):
    """Ray Data hands a block to one actor and reads a row group into one block: without the job's
    block cap a file of one row group is scored by one actor however large the pool."""
    import ray.data

    from assets.scoring.pipeline import BLOCKS_PER_ACTOR, _data_context, block_bytes
    from resources.data.access import DataAccessPolicy
    from resources.data.storage import parquet_footers

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(400_000, 4)), columns=["a", "b", "c", "d"])
    (tmp_path / "tenants" / "t").mkdir(parents=True)
    frame.to_parquet(tmp_path / "tenants" / "t" / "one_group.parquet", row_group_size=len(frame))
    policy = DataAccessPolicy(data_dir=str(tmp_path))
    footers = parquet_footers(policy.resolve("t", "one_group.parquet"), policy)
    assert footers.rows == len(frame) and footers.bytes >= frame.memory_usage(index=False).sum()

    assert ray.data.read_parquet(footers.files).materialize().num_blocks() == 1
    context = ray.data.DataContext.get_current()
    before = (context.target_max_block_size, context.execution_options.preserve_order)
    with _data_context(block_bytes(footers.bytes, actors=2)):
        dataset = ray.data.read_parquet(footers.files)
    assert (context.target_max_block_size, context.execution_options.preserve_order) == before
    sliced = dataset.materialize()
    assert sliced.num_blocks() >= BLOCKS_PER_ACTOR  # ~ BLOCKS_PER_ACTOR x 2 (Ray slices at 1.5x the cap)
    assert np.array_equal(sliced.to_pandas().to_numpy(), frame.to_numpy())  # in order


def _scorer_actors() -> list[int]:
    """Pids of Ray Data's scorer actors (Ray titles their processes ``ray::MapWorker(MapBatches(BatchScorer))``)."""
    from pathlib import Path

    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"MapBatches(BatchScorer)" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_a_scorer_actor_killed_mid_job_is_replaced_and_the_output_is_still_whole(scoring):
    """SIGKILL to one of the pool's actors while it scores: Ray restarts the actor and Ray Data
    retries its blocks; the job succeeds and the output holds every row once, in order, with the
    counts from what was written (a retried block may have reached the progress counter twice)."""
    import os
    import signal
    import threading
    import time

    frame = pd.concat([scoring["frame"]] * 80, ignore_index=True)  # 200,000 rows
    frame["customer_id"] = [f"k-{i:06d}" for i in range(len(frame))]
    frame.to_parquet(scoring["area"] / "in" / "../big.parquet")
    context = submitted_job(scoring["state"], scoring["tenant"], "batch_prediction")
    # 5 rows a model call: the pool scores for several seconds
    config = BatchScoringConfig(context=context, model_id=scoring["model_id"], version="1.0.0", input_path="big.parquet",
                                output_path="out/killed", batch_size=5)
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = dg.materialize([batch_predictions], resources=scoring["resources"], raise_on_error=False,
                                           run_config={"ops": {"batch_predictions": {"config": config.model_dump()}}})

    runner = threading.Thread(target=run)
    runner.start()
    jobs = JobStore(scoring["state"])
    killed = None
    deadline = time.monotonic() + 120
    while runner.is_alive() and time.monotonic() < deadline and killed is None:
        done = jobs.get(scoring["tenant"], context.job_id).result.get("rows_done") or 0
        actors = _scorer_actors()
        if 0 < done < len(frame) // 2 and actors:
            killed = actors[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    runner.join(timeout=300)
    assert killed is not None, "no scorer actor was seen while the job scored"
    job = jobs.get(scoring["tenant"], context.job_id)
    folder = scoring["area"] / "out" / "killed"
    assert outcome["result"].success, job.reason
    scored, manifest = _output(scoring, "out/killed")
    assert scored["customer_id"].tolist() == frame["customer_id"].tolist()
    assert manifest["rows"] == len(frame) and job.result["rows_done"] == len(frame) and job.result["rows_rejected"] == 0
    assert not (folder / "_staging").exists()
