"""What each process ``mlservice up`` starts sees of the environment: JWT keys reach only the API
and the seed step; every part keeps Ray on loopback and finds the platform's locations."""

from __future__ import annotations

import pytest

from mlservice.config.settings import Settings
from mlservice.launcher.up import Platform, child_env

SECRET = "k" * 48
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----"


@pytest.fixture
def platform(monkeypatch, tmp_path) -> Platform:
    monkeypatch.setenv("MLSERVICE_JWT_SECRET", SECRET)
    monkeypatch.setenv("MLSERVICE_JWT_PRIVATE_KEY", PRIVATE_KEY)
    monkeypatch.setenv("JWT_SIGNING_KEY", "from the user's shell")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "tenant data in S3")  # runs read tenant data: kept
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)  # the launcher sets it itself
    return Platform(Settings(data_dir=tmp_path / "data"))


@pytest.mark.parametrize("part", ["ray", "mlflow", "dagster", "s3"])
def test_no_signing_key_reaches_ray_mlflow_dagster_or_s3(platform, part):
    env = platform.environment(part)
    assert not [name for name in env if "JWT" in name.upper()]
    assert SECRET not in "".join(env.values()) and "PRIVATE KEY" not in "".join(env.values())
    assert env["AWS_SECRET_ACCESS_KEY"] == "tenant data in S3"
    assert env["MLSERVICE_DATA_DIR"] == str(platform.settings.data_dir)
    assert env["RAY_AUTH_TOKEN_PATH"] == str(platform.settings.ray_token_path)


@pytest.mark.parametrize("part", ["api", "seed"])
def test_the_api_and_the_seed_step_keep_the_key(platform, part):
    env = platform.environment(part)
    assert env["MLSERVICE_JWT_SECRET"] == SECRET and env["MLSERVICE_JWT_PRIVATE_KEY"] == PRIVATE_KEY


@pytest.mark.parametrize("part", sorted(child_env.PARTS))
def test_every_part_keeps_ray_on_loopback(platform, part):
    assert platform.environment(part)["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"


def test_the_dagster_side_still_loads_its_settings(platform):
    """Run workers build Settings() from their environment: without the JWT variables it is valid."""
    import os

    env = platform.environment("dagster")
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert settings.jwt_secret is None and settings.jwt_private_key is None
    assert settings.data_dir == platform.settings.data_dir


def test_unknown_part_is_refused():
    with pytest.raises(ValueError):
        child_env.for_part({}, "scheduler")
