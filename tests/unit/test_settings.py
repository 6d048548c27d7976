"""Settings: MLSERVICE_* parsing and validation, and the JWT keys derived from them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from mlservice.config.settings import RateLimit, Settings
from serving_api.auth import KeyNotConfigured, Principal, TokenVerifier, issue_token, verification_key
from serving_api.errors import ApiError

SECRET = "s" * 40
pytestmark = pytest.mark.usefixtures("clean_env")


# --- environment parsing ------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["RS256,ES256", " RS256 , ES256 ", '["RS256", "ES256"]'])
def test_jwt_algorithms_from_env_comma_or_json(monkeypatch, tmp_path, raw):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_JWT_ALGORITHMS", raw)
    settings = Settings()
    assert settings.jwt_algorithms == ["RS256", "ES256"]
    assert not settings.uses_hmac


@pytest.mark.parametrize("raw", ["HS256,RS256", '["RS256", "HS512"]'])
def test_mixing_hmac_and_public_key_algorithms_is_refused(monkeypatch, tmp_path, raw):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_JWT_ALGORITHMS", raw)
    with pytest.raises(ValidationError, match="mixes HMAC"):
        Settings()


@pytest.mark.parametrize("algorithms", [["none"], ["None"], ["HS256", "none"], ["XX999"]])
def test_none_and_unknown_algorithms_are_refused(tmp_path, algorithms):
    with pytest.raises(ValidationError, match="unsupported JWT algorithms"):
        Settings(data_dir=tmp_path, jwt_algorithms=algorithms)


def test_empty_algorithm_list_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_JWT_ALGORITHMS", "")
    with pytest.raises(ValidationError, match="at least one algorithm"):
        Settings()


@pytest.mark.parametrize(
    "secret",
    ["x" * 31, "changeme", "secret", "  ChangeMe  ", "é" * 15],  # "é" is 2 bytes: 30 bytes
)
def test_weak_jwt_secret_is_refused(monkeypatch, tmp_path, secret):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_JWT_SECRET", secret)
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings()


def test_secret_of_32_bytes_is_accepted(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_JWT_SECRET", "k" * 32)
    settings = Settings()
    assert settings.jwt_secret.get_secret_value() == "k" * 32
    assert "k" * 32 not in repr(settings)  # SecretStr keeps it out of logs


def test_relative_data_dir_becomes_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSERVICE_DATA_DIR", "state/here")
    settings = Settings()
    assert settings.data_dir.is_absolute()
    assert settings.data_dir == tmp_path.resolve() / "state" / "here"


def test_default_data_dir_is_absolute_under_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert Settings().data_dir == tmp_path.resolve() / ".mlservice"


def test_default_tracking_and_database_urls_live_under_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path)
    data_dir = tmp_path.resolve()
    assert settings.effective_tracking_uri == f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    assert settings.effective_database_url == f"sqlite:///{data_dir / 'api' / 'state.db'}"
    assert settings.experiment_artifact_root == (data_dir / "mlflow" / "artifacts").as_uri()


def test_explicit_tracking_and_database_urls_win(tmp_path):
    settings = Settings(
        data_dir=tmp_path, mlflow_tracking_uri="http://mlflow:5000", database_url="postgresql://db/x"
    )
    assert settings.effective_tracking_uri == "http://mlflow:5000"
    assert settings.effective_database_url == "postgresql://db/x"
    assert settings.experiment_artifact_root is None  # the artifact server decides


def test_rate_limit_overrides_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_RATE_LIMIT_PER_SECOND", "5")
    monkeypatch.setenv("MLSERVICE_RATE_LIMIT_BURST", "10")
    monkeypatch.setenv("MLSERVICE_RATE_LIMIT_OVERRIDES", '{"tenant-big": {"rate": 50.5, "burst": 100}}')
    settings = Settings()
    assert settings.rate_limit_for("tenant-big") == RateLimit(rate=50.5, burst=100)
    assert settings.rate_limit_for("tenant-small") == RateLimit(rate=5.0, burst=10)


@pytest.mark.parametrize("override", ['{"t": {"rate": 0, "burst": 1}}', '{"t": {"rate": 1}}', "not json"])
def test_invalid_rate_limit_overrides_are_refused(monkeypatch, tmp_path, override):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_RATE_LIMIT_OVERRIDES", override)
    with pytest.raises((ValidationError, ValueError)):
        Settings()


def test_list_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_S3_BUCKETS", "raw, lake/{tenant} ,,models")
    monkeypatch.setenv("MLSERVICE_DATA_ROOTS", '["/srv/data", "/srv/{tenant}"]')
    settings = Settings()
    assert settings.s3_buckets == ["raw", "lake/{tenant}", "models"]
    assert settings.data_roots == ["/srv/data", "/srv/{tenant}"]


def test_empty_list_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_S3_BUCKETS", "")
    assert Settings().s3_buckets == []


def test_s3_tenant_grants_from_env_reach_the_policy(monkeypatch, tmp_path):
    from mlservice.config.wiring import build_data_policy

    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_S3_TENANT_BUCKETS", '{"acme-corp": ["data", "predictions"], "beta": ["lake/beta/in"]}')
    settings = Settings()
    assert settings.s3_tenant_buckets == {"acme-corp": ["data", "predictions"], "beta": ["lake/beta/in"]}
    policy = build_data_policy(settings)
    assert policy.s3_tenant_buckets == settings.s3_tenant_buckets and policy.s3_buckets == []
    assert policy.resolve("acme-corp", "s3://data/x.parquet").path == "data/x.parquet"


def test_s3_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    for name in ("MLSERVICE_S3_TENANT_BUCKETS", "MLSERVICE_S3_ENDPOINT_URL", "MLSERVICE_S3_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.s3_tenant_buckets, settings.s3_endpoint_url, settings.s3_port) == ({}, None, 9000)
    others = {settings.api_port, settings.dagster_port, settings.mlflow_port, settings.ray_port, settings.ray_dashboard_port}
    assert settings.s3_port not in others and settings.s3_port not in range(10002, 20000)  # Ray's worker ports


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLSERVICE_S3_TENANT_BUCKETS", '{"../etc": ["data"]}'),  # not a tenant id
        ("MLSERVICE_S3_TENANT_BUCKETS", '{"acme-corp": "data"}'),  # not a list
        ("MLSERVICE_S3_TENANT_BUCKETS", '{"acme-corp": ["s3://data"]}'),
        ("MLSERVICE_S3_TENANT_BUCKETS", '{"acme-corp": ["data/../other"]}'),
        ("MLSERVICE_S3_TENANT_BUCKETS", "data"),  # not JSON
        ("MLSERVICE_S3_BUCKETS", "/data"),
        ("MLSERVICE_S3_BUCKETS", "lake/a//b"),
        ("MLSERVICE_S3_PORT", "0"),
    ],
)
def test_bad_s3_settings_are_refused(monkeypatch, tmp_path, variable, value):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises((ValidationError, ValueError)):
        Settings()


# --- JWT keys -----------------------------------------------------------------------------


def rsa_settings(tmp_path, rsa_pems, **kwargs) -> Settings:
    private_pem, public_pem = rsa_pems
    kwargs.setdefault("jwt_audience", "mlservice-api")  # public-key algorithms need an audience
    return Settings(
        data_dir=tmp_path, jwt_algorithms=["RS256"], jwt_public_key=public_pem, jwt_private_key=private_pem, **kwargs
    )


def test_rs256_issue_and_verify_round_trip(tmp_path, rsa_pems):
    settings = rsa_settings(tmp_path, rsa_pems)
    token = issue_token(
        settings, tenant_id="tenant-a", subject="alice", scopes=["models:read", "jobs:write"], ttl_s=300
    )
    principal = TokenVerifier(settings).verify(token)
    assert principal == Principal(subject="alice", tenant_id="tenant-a", scopes=frozenset({"models:read", "jobs:write"}))
    assert principal.has_scope("jobs:write")
    assert not principal.has_scope("admin")


def test_rs256_keys_may_be_given_as_file_paths(tmp_path, rsa_pems):
    private_pem, public_pem = rsa_pems
    (tmp_path / "priv.pem").write_text(private_pem)
    (tmp_path / "priv.pem").chmod(0o600)  # a private key others may read is refused
    (tmp_path / "pub.pem").write_text(public_pem)
    settings = Settings(
        data_dir=tmp_path,
        jwt_algorithms=["RS256"],
        jwt_audience="mlservice-api",
        jwt_public_key=str(tmp_path / "pub.pem"),
        jwt_private_key=str(tmp_path / "priv.pem"),
    )
    token = issue_token(settings, tenant_id="tenant-b", subject="bob", scopes=["admin"], ttl_s=60)
    assert TokenVerifier(settings).verify(token).tenant_id == "tenant-b"


def test_rs256_verifier_rejects_token_signed_by_another_key(tmp_path, rsa_pems):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    forger = Settings(
        data_dir=tmp_path, jwt_algorithms=["RS256"], jwt_public_key=rsa_pems[1], jwt_private_key=other_pem
    )
    token = issue_token(forger, tenant_id="tenant-a", subject="mallory", scopes=["admin"], ttl_s=60)
    with pytest.raises(ApiError):
        TokenVerifier(rsa_settings(tmp_path, rsa_pems)).verify(token)


def test_rs256_verifier_rejects_hs256_token(tmp_path, rsa_pems):
    hmac_settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    token = issue_token(hmac_settings, tenant_id="tenant-a", subject="mallory", scopes=["admin"], ttl_s=60)
    with pytest.raises(ApiError):
        TokenVerifier(rsa_settings(tmp_path, rsa_pems)).verify(token)


def test_public_key_algorithms_without_public_key_raise(tmp_path):
    settings = Settings(data_dir=tmp_path, jwt_algorithms=["RS256"])
    with pytest.raises(KeyNotConfigured):
        verification_key(settings)


def test_hmac_configured_secret_is_the_verification_key(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "jwt_secret").write_text("d" * 40)
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    assert verification_key(settings) == SECRET  # the configured secret beats the dev file


def test_hmac_without_secret_reads_dev_secret_file(tmp_path):
    dev_secret = "d" * 40
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "jwt_secret").write_text(dev_secret + "\n")
    (secrets / "jwt_secret").chmod(0o600)  # as `mlservice up` writes it; a looser one is refused
    settings = Settings(data_dir=tmp_path)
    assert settings.dev_jwt_secret_path == tmp_path.resolve() / "secrets" / "jwt_secret"
    assert verification_key(settings) == dev_secret

    token = issue_token(settings, tenant_id="tenant-a", subject="dev", scopes=["models:read"], ttl_s=60)
    assert TokenVerifier(settings).verify(token).subject == "dev"


def test_hmac_without_secret_or_dev_file_raises(tmp_path):
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(KeyNotConfigured):
        verification_key(settings)
    with pytest.raises(KeyNotConfigured):
        TokenVerifier(settings)
