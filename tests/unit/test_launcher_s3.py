"""The embedded S3 server of ``mlservice up`` (``mlservice.launcher.embedded_s3``): started by the launcher's
own spawning on loopback, seeded, its endpoint, credentials and the demo grant handed to every
part, and a taken port refused like the other parts'. The whole platform with it: the platform
integration test."""

from __future__ import annotations

import json
import os
import socket

import pytest

from mlservice.config.settings import Settings
from mlservice.config.wiring import build_data_policy
from mlservice.launcher.up import Platform, child_env, embedded_s3, exposure
from resources.data import storage
from resources.errors import InvalidRequest
from tests.utils.platform import free_ports

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux /proc")

DEMO_TENANT = "acme-corp"


def settings_on_free_ports(tmp_path, **overrides) -> Settings:
    api, dagster, mlflow, ray, dashboard, s3 = free_ports(6)
    values = dict(data_dir=tmp_path / "data", api_port=api, dagster_port=dagster, mlflow_port=mlflow, ray_port=ray,
                  ray_dashboard_port=dashboard, s3_port=s3)
    return Settings(**{**values, **overrides})


@pytest.fixture
def no_aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("MLSERVICE_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("part", sorted(child_env.PARTS))
def test_every_part_gets_the_endpoint_credentials_and_the_demo_grant(tmp_path, no_aws, part):
    platform = Platform(settings_on_free_ports(tmp_path))
    env = platform.environment(part)
    assert env["MLSERVICE_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{platform.settings.s3_port}"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"] and env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert json.loads(env["MLSERVICE_S3_TENANT_BUCKETS"]) == {DEMO_TENANT: ["data", "predictions"]}


def test_the_callers_credentials_and_grants_are_kept(tmp_path, no_aws, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mine")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "my-secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    grants = {"beta": ["data/beta"]}
    env = Platform(settings_on_free_ports(tmp_path, s3_tenant_buckets=grants)).environment("dagster")
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"]) == ("mine", "my-secret", "eu-west-1")
    assert "AWS_DEFAULT_REGION" not in env
    assert "MLSERVICE_S3_TENANT_BUCKETS" not in env  # the operator's grants (from their MLSERVICE_*) stand alone
    env = Platform(settings_on_free_ports(tmp_path, s3_buckets=["shared"])).environment("dagster")
    assert "MLSERVICE_S3_TENANT_BUCKETS" not in env


@pytest.mark.parametrize("overrides", [{"s3_endpoint_url": "http://127.0.0.1:9999"}, {"s3_embedded": False}])
def test_no_embedded_server_with_an_endpoint_or_when_switched_off(tmp_path, no_aws, overrides):
    platform = Platform(settings_on_free_ports(tmp_path, **overrides))
    assert not platform.start_s3
    env = platform.environment("api")
    assert "MLSERVICE_S3_ENDPOINT_URL" not in env and "AWS_ACCESS_KEY_ID" not in env
    assert "MLSERVICE_S3_TENANT_BUCKETS" not in env


def test_a_taken_s3_port_is_refused_before_anything_starts(tmp_path, no_aws):
    settings = settings_on_free_ports(tmp_path)
    with socket.create_server(("127.0.0.1", settings.s3_port)):
        with pytest.raises(RuntimeError, match=rf"S3 \(embedded\) port {settings.s3_port} \(MLSERVICE_S3_PORT\)"):
            Platform(settings).prepare()


def test_the_embedded_server_listens_on_loopback_and_serves_the_seed(tmp_path, no_aws, monkeypatch):
    lines: list[str] = []
    platform = Platform(settings_on_free_ports(tmp_path), echo=lines.append)
    platform.settings.logs_dir.mkdir(parents=True)
    try:
        server = platform.start_s3_server()
        from mlservice.launcher.processes import wait_until

        wait_until(lambda: embedded_s3.ready(platform.settings), timeout_s=60, what="S3", process=server)
        written = platform.seed_s3()
        assert written == [f"s3://data/{name}" for name in ("customers_to_score.parquet", "train.parquet", "val.parquet")]
        assert platform.settings.s3_port and f"127.0.0.1:{platform.settings.s3_port}" in lines[-1]

        listening = exposure.listeners(exposure.processes_of([server.pid]))
        assert {item.port for item in listening} == {platform.settings.s3_port}, listening
        assert all(exposure.is_loopback(item.address) for item in listening), listening
        platform.check_exposure()  # the launcher's own check passes

        # what the API and the run workers see, read through the platform's storage module
        env = platform.environment("api")
        for name in ("MLSERVICE_S3_ENDPOINT_URL", "MLSERVICE_S3_TENANT_BUCKETS", "AWS_ACCESS_KEY_ID",
                     "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(name, env[name])
        policy = build_data_policy(Settings(data_dir=platform.settings.data_dir))
        scored = policy.resolve(DEMO_TENANT, "s3://data/customers_to_score.parquet")
        assert storage.exists(scored, policy) and storage.parquet_rows(scored, policy) == embedded_s3.SCORE_ROWS
        frame = storage.read_table(scored, policy)
        assert list(frame.columns) == ["customer_id", "total_orders", "days_since_last_order", "avg_order_value",
                                       "support_tickets"]
        assert frame["customer_id"].is_unique and frame.notna().all().all()
        train = storage.read_table(policy.resolve(DEMO_TENANT, "s3://data/train.parquet"), policy)
        validation = storage.read_table(policy.resolve(DEMO_TENANT, "s3://data/val.parquet"), policy)
        assert "churned" in train.columns and set(train["customer_id"]).isdisjoint(validation["customer_id"])
        assert 0.15 < len(validation) / (len(train) + len(validation)) < 0.25
        assert storage.exists(policy.resolve(DEMO_TENANT, "s3://predictions/anything"), policy) is False
        with pytest.raises(InvalidRequest):  # the demo grant is the demo tenant's alone
            policy.resolve("other-co", "s3://data/customers_to_score.parquet")
        # no line per request in its log (moto's own server writes one: s3.log would grow without bound)
        log = (platform.settings.logs_dir / "s3.log").read_text()
        assert '"GET ' not in log and '"PUT ' not in log and "HTTP/1.1" not in log, log[-2000:]
    finally:
        platform.stop()
    assert not server.alive()
