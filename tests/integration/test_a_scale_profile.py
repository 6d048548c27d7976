"""The scale profile, run once as a user would (`MLSERVICE_PROFILE=scale mlservice up`): PostgreSQL
and Redis started by the launcher, 2 API workers, and a second API replica on another port that
this test starts with the first one's environment (behind nothing but this test's clients).

What must hold across processes and replicas: a promotion through one replica is served by the
other's next prediction; one tenant's rate limit is spent once across both; one Idempotency-Key
sent to both at once gives one job, and that job runs (Dagster on PostgreSQL) to `succeeded`; a
replica SIGKILLed under load loses no record of a prediction it answered 200; the platform's state
is in PostgreSQL (API, Dagster, MLflow) and Feast's online store in Redis.

Runs first (module name): before the tier's shared embedded platform starts, so the two never
run at once on 2 cores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import redis

from tests.integration.conftest import DEMO_MODEL, DEMO_TENANT
from tests.utils.load import predictions_under_load
from tests.utils.platform import (
    REPO_ROOT,
    cmdline,
    environ,
    follow_job,
    free_ports,
    integration_marks,
    parts,
    running_platform,
    tenant_client,
)

pytestmark = integration_marks(timeout_s=900)
LIMITED = "limited-lab"  # a tenant with a small burst and almost no refill: its budget is counted across replicas
ROW = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.5, "support_tickets": 3}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("scale-data").resolve()
    env = {"MLSERVICE_PROFILE": "scale", "MLSERVICE_API_WORKERS": "2",
           "MLSERVICE_RATE_LIMIT_OVERRIDES": json.dumps({LIMITED: {"rate": 0.01, "burst": 30}})}
    with running_platform(data_dir, data_dir.parent / "scale-up.log", extra_env=env) as up:
        yield up


@pytest.fixture(scope="module")
def replica(scaled):
    """A second API replica: the launcher's API environment, another port; stopped by its group."""
    [api_root] = [pid for pid in parts(scaled)["api"] if "--workers" in cmdline(pid)]
    env = environ(api_root)
    [port] = free_ports(1)
    log = open(scaled.data_dir.parent / "replica.log", "wb")  # closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serving_api.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health/ready", trust_env=False, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the second replica did not start: {(scaled.data_dir.parent / 'replica.log').read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield {"base": base, "proc": proc, "env": env}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _clients(scaled, replica, tenant: str) -> tuple[httpx.Client, httpx.Client]:
    first = tenant_client(scaled, tenant)
    second = httpx.Client(base_url=replica["base"], headers=dict(first.headers), trust_env=False, timeout=60)
    return first, second


def _database(scaled, name: str) -> psycopg.Connection:
    password = (scaled.data_dir / "secrets" / "postgres_password").read_text().strip()
    return psycopg.connect(f"postgresql://mlservice:{password}@127.0.0.1:{scaled.ports['POSTGRES']}/{name}")


def test_the_parts_run_on_postgres_and_redis_with_two_api_workers(scaled):
    running = parts(scaled)
    assert {"postgres", "redis", "api", "mlflow", "dagster-daemon"} <= set(running), running
    assert sum("spawn_main" in cmdline(p) for p in running["api"]) == 2  # uvicorn's supervisor spawned 2 workers
    assert "PostgreSQL" in scaled.log() and "2 API processes" in scaled.log()
    with _database(scaled, "mlservice") as conn:  # the demo's seed: its training job, its model's stage history
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM stage_transitions").fetchone()[0] >= 1
    with _database(scaled, "dagster") as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'").fetchone()[0] >= 1
    with _database(scaled, "mlflow") as conn:
        assert conn.execute("SELECT count(*) FROM registered_models").fetchone()[0] >= 1
    assert not (scaled.data_dir / "api" / "state.db").exists() and not (scaled.data_dir / "mlflow" / "mlflow.db").exists()
    password = (scaled.data_dir / "secrets" / "redis_password").read_text().strip()
    online = redis.Redis(host="127.0.0.1", port=scaled.ports["REDIS"], password=password, db=1)
    assert online.dbsize() > 0  # the demo's churn features, materialized by make up


def test_a_promotion_through_one_replica_is_served_by_the_others_next_prediction(scaled, replica):
    first, second = _clients(scaled, replica, DEMO_TENANT)
    with first, second:
        [model] = [m for m in first.get("/api/v1/models", params={"name_prefix": DEMO_MODEL}).json()["data"]
                   if m["name"] == DEMO_MODEL]
        versions = first.get(f"/api/v1/models/{model['model_id']}/versions").json()["data"]
        run_id = next(v["run_id"] for v in versions if v["version"] == "1.0.0")
        added = first.post(f"/api/v1/models/{model['model_id']}/versions", json={"source": {"run_id": run_id}})
        assert added.status_code == 201, added.text
        new = added.json()["version"]
        body = {"model_id": model["model_id"], "features": ROW}
        before = [second.post("/api/v1/predictions", json=body) for _ in range(3)]  # resolved and cached there
        assert {r.json()["version"] for r in before} == {"1.0.0"}, [r.text for r in before]
        promoted = first.put(f"/api/v1/models/{model['model_id']}/stage",
                             json={"version": new, "target_stage": "production", "via": "staging"})
        assert promoted.status_code == 200, promoted.text
        after = second.post("/api/v1/predictions", json=body)
        assert after.status_code == 200 and after.json()["version"] == new, after.text


def test_one_tenants_rate_limit_is_spent_once_across_replicas(scaled, replica):
    first, second = _clients(scaled, replica, LIMITED)
    with first, second:
        codes = [(first if i % 2 else second).get("/api/v1/models").status_code for i in range(60)]
    assert codes.count(200) == 30 and codes.count(429) == 30, codes  # burst 30 in all, not 30 a replica (or a worker)


def test_one_idempotency_key_on_both_replicas_gives_one_job_that_runs_on_dagster_over_postgres(scaled, replica):
    first, second = _clients(scaled, replica, DEMO_TENANT)
    body = {"model_name": "scaled_forest", "estimator": "random_forest",
            "data_config": {"train_path": "s3://data/train.parquet", "target_column": "churned"},
            "hyperparameters": {"n_estimators": 20, "random_state": 0}}
    with first, second, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda c: c.post("/api/v1/training", json=body, headers={"Idempotency-Key": "scaled-1"}),
                                [first, second, first, second]))
        assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
        assert len({a.json()["job_id"] for a in answers}) == 1
        done = follow_job(first, f"/api/v1/training/{answers[0].json()['job_id']}", timeout_s=400)
    assert done["status"] == "succeeded" and done["model_version"] == "1.0.0", done
    with _database(scaled, "mlservice") as conn:
        count = conn.execute("SELECT count(*) FROM jobs WHERE tenant_id = %s AND model_name = %s",
                             (DEMO_TENANT, "scaled_forest")).fetchone()[0]
    assert count == 1


def test_lookups_from_the_platforms_redis_equal_a_sqlite_store_of_the_same_sources(scaled, replica, tmp_path):
    """Feast's online store on Redis, as `make up` materialized it, against a SQLite online store
    materialized here from the same registry and source files: every lookup answers the same,
    through either replica, by feature references and by feature service."""
    import shutil

    from resources.features.store import FeatureStoreResource

    first, second = _clients(scaled, replica, DEMO_TENANT)
    with first, second:
        catalog = first.get("/api/v1/features/views").json()
        refs = [f"{v['name']}:{f}" for v in catalog["feature_views"] for f in v["features"]]
        services = [s["name"] for s in catalog["feature_services"]]
        assert refs and services, catalog
        rows = [{"customer_id": f"cust-{i}"} for i in (*range(1, 400, 13), 10**6)]  # the last: no such customer
        by_refs = [c.post("/api/v1/features/online", json={"feature_refs": refs, "entity_rows": rows}) for c in (first, second)]
        by_service = [c.post("/api/v1/features/online", json={"feature_service": services[0], "entity_rows": rows})
                      for c in (first, second)]
    assert all(r.status_code == 200 for r in by_refs + by_service), [r.text for r in by_refs + by_service]
    from_redis = by_refs[0].json()["results"]
    assert by_refs[1].json()["results"] == from_redis and by_service[1].json() == by_service[0].json()
    assert from_redis[-1]["status"] == "missing" and sum(r["status"] == "ok" for r in from_redis) >= 10, from_redis

    local = tmp_path / "sqlite"
    shutil.copytree(scaled.data_dir / "feast" / DEMO_TENANT, local / "feast" / DEMO_TENANT)  # the registry; the sources stay put
    sqlite = FeatureStoreResource(data_dir=str(local), online_store="sqlite")
    feast = sqlite.store(DEMO_TENANT)  # the registry's own objects applied again: the SQLite store's tables
    sqlite.apply_objects(DEMO_TENANT, [*feast.list_entities(), *feast.list_data_sources(), *feast.list_feature_views(),
                                       *feast.list_feature_services()])
    sqlite.materialize(DEMO_TENANT, incremental=False)
    assert json.loads(json.dumps(sqlite.online_features(DEMO_TENANT, refs, rows))) == from_redis
    assert json.loads(json.dumps(sqlite.online_features_for_service(DEMO_TENANT, services[0], rows))) == by_service[0].json()["results"]


def test_a_replica_killed_under_load_loses_no_record_of_an_answered_prediction(scaled, replica):
    """Last: it kills the second replica."""
    first, second = _clients(scaled, replica, DEMO_TENANT)
    [model] = [m for m in first.get("/api/v1/models", params={"name_prefix": DEMO_MODEL}).json()["data"]
               if m["name"] == DEMO_MODEL]
    body = {"model_id": model["model_id"], "features": ROW}
    with predictions_under_load(replica["base"], dict(first.headers), body, clients=6, at_least=200) as answered:
        os.killpg(replica["proc"].pid, signal.SIGKILL)  # mid-load: requests are in flight
        replica["proc"].wait(timeout=30)
    first.close()
    second.close()
    assert len(answered) >= 200
    with _database(scaled, "mlservice") as conn:
        logged = {row[0] for row in conn.execute("SELECT request_id FROM prediction_log WHERE tenant_id = %s", (DEMO_TENANT,))}
    missing = [r for r in answered if r not in logged]
    assert missing == [], f"{len(missing)} answered predictions have no record"
