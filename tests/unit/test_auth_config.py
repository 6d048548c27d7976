"""Configuration that would silently weaken authentication refuses to start, and tokens living
longer than the maximum lifetime are refused (the `mlservice token` command will not make one)."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import ValidationError

from mlservice.config.settings import Settings, get_settings
from serving_api.auth import TokenVerifier, UnsafeKeyConfig, issue_token, signing_key
from serving_api.errors import ApiError

SECRET = "s" * 40


pytestmark = pytest.mark.usefixtures("clean_env")


def _write(path, text: str, mode: int):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_public_key_with_hmac_algorithms_is_refused(monkeypatch, tmp_path, rsa_pems):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_JWT_SECRET", SECRET)
    monkeypatch.setenv("MLSERVICE_JWT_PUBLIC_KEY", rsa_pems[1])  # algorithms left at HS256
    with pytest.raises(ValidationError, match="MLSERVICE_JWT_PUBLIC_KEY is set but MLSERVICE_JWT_ALGORITHMS are HMAC"):
        Settings()


def test_a_public_key_algorithm_without_an_audience_is_refused(tmp_path, rsa_pems):
    settings = Settings(data_dir=tmp_path, jwt_algorithms=["RS256"], jwt_public_key=rsa_pems[1])
    with pytest.raises(UnsafeKeyConfig, match="MLSERVICE_JWT_AUDIENCE is not set"):
        TokenVerifier(settings)
    TokenVerifier(settings.model_copy(update={"jwt_audience": "mlservice-api"}))


@pytest.mark.parametrize("mode,text,problem", [
    (0o644, "d" * 64, "may be read or written by group or others"),
    (0o620, "d" * 64, "may be read or written by group or others"),
    (0o600, "d" * 31, "shorter than 32 bytes"),
])
def test_a_loose_or_short_development_secret_is_refused(tmp_path, mode, text, problem):
    settings = Settings(data_dir=tmp_path)
    settings.secrets_dir.mkdir(parents=True)
    _write(settings.dev_jwt_secret_path, text, mode)
    with pytest.raises(UnsafeKeyConfig, match=problem):
        TokenVerifier(settings)


def test_a_private_development_secret_is_used(tmp_path):
    settings = Settings(data_dir=tmp_path)
    settings.secrets_dir.mkdir(parents=True)
    _write(settings.dev_jwt_secret_path, "d" * 64 + "\n", 0o600)
    token = issue_token(settings, tenant_id="tenant-a", subject="dev", scopes=["models:read"], ttl_s=60)
    assert TokenVerifier(settings).verify(token).tenant_id == "tenant-a"


def test_key_files_others_may_read_or_change_are_refused(tmp_path, rsa_pems):
    private, public = rsa_pems
    key_settings = dict(data_dir=tmp_path, jwt_algorithms=["RS256"], jwt_audience="mlservice-api")
    loose_private = _write(tmp_path / "private.pem", private, 0o640)
    with pytest.raises(UnsafeKeyConfig, match="chmod 600"):
        signing_key(Settings(**key_settings, jwt_private_key=str(loose_private)))
    writable_public = _write(tmp_path / "public.pem", public, 0o666)
    with pytest.raises(UnsafeKeyConfig, match="may be written by group or others"):
        TokenVerifier(Settings(**key_settings, jwt_public_key=str(writable_public)))
    private_path, public_path = _write(tmp_path / "p600.pem", private, 0o600), _write(tmp_path / "p644.pem", public, 0o644)
    settings = Settings(**key_settings, jwt_public_key=str(public_path), jwt_private_key=str(private_path))
    token = issue_token(settings, tenant_id="tenant-a", subject="u", scopes=["models:read"], ttl_s=60)
    assert TokenVerifier(settings).verify(token).subject == "u"


def _token(**claims) -> str:
    payload = {"sub": "u", "tenant_id": "tenant-a", "scope": "models:read", **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, algorithm="HS256")


@pytest.mark.parametrize("claims", [
    {"iat": 0, "exp": 3601},  # exp - iat
    {"nbf": 0, "exp": 3601},  # exp - nbf
    {"exp": 3630},  # exp - now, neither given (a margin for the seconds the test takes)
    {"iat": -1, "nbf": 0, "exp": 3600},  # iat counts before nbf
])
def test_a_token_living_longer_than_the_maximum_is_refused(tmp_path, claims):
    verifier = TokenVerifier(Settings(data_dir=tmp_path, jwt_secret=SECRET, max_token_lifetime_s=3600))
    now = int(time.time())
    shifted = {k: now + v for k, v in claims.items()}
    with pytest.raises(ApiError) as refused:
        verifier.verify(_token(**shifted))
    assert refused.value.code == "UNAUTHORIZED" and "lifetime" in refused.value.message
    shorter = {**shifted, "exp": shifted["exp"] - 30}
    assert verifier.verify(_token(**shorter)).subject == "u"


def test_the_token_command_refuses_a_ttl_beyond_the_maximum(monkeypatch, tmp_path, capsys):
    from mlservice.cli import main

    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_JWT_SECRET", SECRET)
    monkeypatch.setenv("MLSERVICE_MAX_TOKEN_LIFETIME_S", "7200")
    get_settings.cache_clear()
    try:
        assert main(["token", "--tenant", "tenant-a", "--ttl", "7201"]) == 2
        assert "1 to 7200 s" in capsys.readouterr().err
        assert main(["token", "--tenant", "tenant-a", "--ttl", "7200"]) == 0
        token = capsys.readouterr().out.strip()
        assert TokenVerifier(get_settings()).verify(token).tenant_id == "tenant-a"
    finally:
        get_settings.cache_clear()


def test_the_banner_token_fits_the_default_maximum(tmp_path):
    from mlservice.cli import BANNER_TOKEN_TTL_S

    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    assert BANNER_TOKEN_TTL_S == 12 * 3600 <= settings.max_token_lifetime_s
    token = issue_token(settings, tenant_id="acme-corp", subject="dev@acme-corp", scopes=["models:read"], ttl_s=BANNER_TOKEN_TTL_S)
    assert TokenVerifier(settings).verify(token).tenant_id == "acme-corp"
