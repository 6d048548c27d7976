"""Platform configuration: environment variables with the prefix ``MLSERVICE_``.

One ``Settings`` object describes where every part of the platform lives. The API reads it
through ``get_settings()`` (cached; tests override it with ``app.dependency_overrides`` or by
passing settings to ``create_app``); the launcher reads the same object to start the parts.
Nothing here touches the disk at import.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from resources.tenants.ids import is_valid_tenant

HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}
ASYMMETRIC_ALGORITHMS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
MIN_SECRET_BYTES = 32
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", "please-change-me"}


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _check_s3_entry(entry: str, variable: str) -> None:
    """``bucket`` or ``bucket/prefix``: no scheme, no empty or ``..`` segments (they would never match)."""
    bucket, _, prefix = entry.partition("/")
    segments = prefix.strip("/").split("/") if prefix.strip("/") else []
    if "://" in entry or not bucket or any(part in ("", "..", ".") for part in segments):
        raise ValueError(f"{variable}: {entry!r} is not 'bucket' or 'bucket/prefix' (no scheme, no empty or '..' segments)")


class RateLimit(BaseModel):
    rate: float = Field(gt=0, description="tokens added per second")
    burst: int = Field(gt=0, description="bucket size")


class Quotas(BaseModel):
    """What one tenant may hold at once (``MLSERVICE_QUOTAS``; per tenant ``MLSERVICE_QUOTA_OVERRIDES``)."""

    models: int = Field(default=100, ge=0, description="registered models")
    versions_per_model: int = Field(default=100, ge=1, description="versions of one model")
    concurrent_jobs: int = Field(default=4, ge=1, description="jobs submitted and not yet ended")
    ensembles: int = Field(default=50, ge=0, description="ensembles")
    deployments: int = Field(default=5, ge=0, description="Ray Serve deployments (each holds replicas on the cluster)")


class Retention(BaseModel):
    """How long records are kept, in days (``MLSERVICE_RETENTION``; per tenant ``MLSERVICE_RETENTION_OVERRIDES``)."""

    prediction_log_days: int = Field(default=30, ge=1)
    audit_log_days: int = Field(default=90, ge=1)
    finished_jobs_days: int = Field(default=90, ge=1)
    idempotency_keys_days: int = Field(default=7, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLSERVICE_", extra="ignore")

    data_dir: Path = Path(".mlservice")
    profile: Literal["embedded", "scale"] = Field(
        default="embedded", description="embedded: SQLite files and one API process; scale: `mlservice up` also runs "
        "PostgreSQL (API state, Dagster, MLflow) and Redis (Feast online store, shared rate limits and model changes) "
        "and the API runs api_workers processes (mlservice/launcher/scale.py)")
    api_workers: int | None = Field(default=None, ge=1, le=64,
                                    description="API processes behind the API port; unset: 1 (embedded) or the machine's cores (scale)")
    postgres_port: int = Field(default=5433, ge=1, le=65535, description="the scale profile's PostgreSQL (loopback)")
    redis_port: int = Field(default=6390, ge=1, le=65535, description="the scale profile's Redis (loopback)")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dagster_port: int = 3000
    dagster_url: str | None = None
    mlflow_port: int = 5000
    mlflow_tracking_uri: str | None = None
    database_url: str | None = None
    redis_url: str | None = Field(default=None, description="Redis the API processes share state in (rate-limit "
                                  "buckets): redis://[:password@]host:port/db; unset: each process its own")
    ray_address: str | None = None
    ray_port: int = 6380
    ray_dashboard_port: int = 8265
    ray_dashboard_url: str | None = None
    serve_port: int = Field(default=8100, ge=1, le=65535,
                            description="Ray Serve's HTTP proxy (loopback); the API forwards predictions of deployments to it")
    deploy_timeout_s: float = Field(default=300.0, gt=0, le=3600,
                                    description="how long a deploy_model run waits for Serve to report the application running")
    serve_url: str | None = Field(default=None, description="Ray Serve's HTTP proxy as the API reaches it (default: loopback serve_port)")

    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_private_key: SecretStr | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256"]
    jwt_audience: str | None = None
    jwt_issuer: str | None = None

    data_roots: Annotated[list[str], NoDecode] = []
    s3_buckets: Annotated[list[str], NoDecode] = []
    s3_tenant_buckets: dict[str, list[str]] = Field(
        default={}, description='JSON, tenant id -> entries as in s3_buckets granted to that tenant alone, e.g. {"acme-corp": ["data"]}')
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, ...); unset: `mlservice up` runs an embedded one, else AWS")
    s3_port: int = Field(default=9000, ge=1, le=65535, description="port of the embedded S3 server (loopback, in memory)")
    s3_embedded: bool = Field(
        default=True, description="`mlservice up` runs the embedded S3 server when s3_endpoint_url is unset; false: AWS S3")

    rate_limit_per_second: float = Field(default=200.0, gt=0)
    rate_limit_burst: int = Field(default=400, gt=0)
    rate_limit_overrides: dict[str, RateLimit] = {}
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    health_timeout_s: float = Field(default=2.0, gt=0)
    model_cache_max_models: int = Field(default=32, ge=1)
    model_cache_max_bytes: int = Field(default=4 << 30, ge=1)
    batch_max_size: int = Field(default=64, ge=1, description="rows per micro-batched predict call")
    batch_max_wait_ms: float = Field(default=2.0, ge=0, description="wait for more rows once requests queue up")
    warm_models: bool = True
    # -- bounds on what one request, job or tenant can cost (README, "Security") --------------
    quotas: Quotas = Quotas()
    quota_overrides: dict[str, Quotas] = Field(default={}, description="per tenant; fields not given keep the defaults")
    max_run_minutes: float = Field(default=120.0, gt=0, description="a Dagster run past this ends failed")
    max_run_minutes_overrides: dict[str, float] = Field(
        default={}, description="per tenant, lower than max_run_minutes (a higher value is held to it)")
    max_concurrent_runs: int = Field(default=4, ge=2, description="Dagster runs at once; training and tuning get one less")
    tenant_max_concurrent_runs: int = Field(default=2, ge=1, description="training and tuning runs at once per tenant")
    retention: Retention = Retention()
    retention_overrides: dict[str, Retention] = Field(default={}, description="per tenant; fields not given keep the defaults")
    retention_cron: str = Field(default="17 3 * * *", description="schedule of the retention job")
    drift_report_cron: str = Field(default="15 * * * *", description="schedule of the drift reports (every monitored model)")
    monitoring_sensor_interval_s: int = Field(
        default=60, ge=5, le=3600, description="how often the monitored_models and retrain_on_drift sensors look")
    deployment_sensor_interval_s: int = Field(
        default=30, ge=5, le=3600, description="how often the deployment_reconciler sensor compares deployments with Serve")
    prediction_log_max_payload_bytes: int = Field(default=65_536, ge=1024, description="features+outputs kept per record")
    max_token_lifetime_s: int = Field(default=86_400, gt=0, description="tokens living longer (exp - iat) are refused")
    unauthenticated_rate_per_second: float = Field(default=10.0, gt=0, description="per client address, before auth")
    unauthenticated_burst: int = Field(default=50, gt=0)
    health_cache_s: float = Field(default=2.0, ge=0, description="/health/ready answers from a result this fresh")
    model_cache_tenant_max_models: int = Field(default=8, ge=1, description="loaded versions per tenant")
    model_cache_tenant_max_bytes: int = Field(default=1 << 30, ge=1, description="approximate memory per tenant")
    negative_cache_s: float = Field(default=5.0, ge=0, description="unknown model ids and versions are remembered this long")
    explain_max_cost: int = Field(default=2_000_000, ge=1, description="rows x coalitions x background rows per request")
    explain_workers: int = Field(default=1, ge=1, description="threads of the explanations' own executor")
    offload_rows: int = Field(default=64, ge=1, description="requests with more rows validate and serialise off the event loop")
    feast_online_store: Literal["sqlite", "redis", "postgres"] = Field(
        default="sqlite", description="Feast online store of every tenant; redis/postgres need feast[redis]/feast[postgres]"
    )
    feast_online_store_url: str | None = Field(
        default=None, description="redis://host:port[/db] or postgresql://user:pw@host:port/db (not for sqlite)"
    )

    @field_validator("quota_overrides", "retention_overrides", "rate_limit_overrides", "s3_tenant_buckets",
                     "max_run_minutes_overrides")
    @classmethod
    def _known_tenants(cls, value: dict) -> dict:
        bad = sorted(k for k in value if not is_valid_tenant(k))
        if bad:
            raise ValueError(f"overrides name invalid tenant ids: {bad}")
        return value

    @field_validator("jwt_algorithms", "data_roots", "s3_buckets", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("s3_buckets")
    @classmethod
    def _s3_entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            _check_s3_entry(entry, "MLSERVICE_S3_BUCKETS")
        return value

    @field_validator("s3_tenant_buckets")
    @classmethod
    def _s3_tenant_entries(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for entries in value.values():
            for entry in entries:
                _check_s3_entry(entry, "MLSERVICE_S3_TENANT_BUCKETS")
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("MLSERVICE_JWT_ALGORITHMS must name at least one algorithm")
        unknown = set(value) - HMAC_ALGORITHMS - ASYMMETRIC_ALGORITHMS
        if unknown:
            raise ValueError(f"unsupported JWT algorithms: {sorted(unknown)} ('none' is never accepted)")
        if set(value) & HMAC_ALGORITHMS and set(value) & ASYMMETRIC_ALGORITHMS:
            raise ValueError("MLSERVICE_JWT_ALGORITHMS mixes HMAC and public-key algorithms; choose one family")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in _PLACEHOLDER_SECRETS or len(raw.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"MLSERVICE_JWT_SECRET must be a random value of at least {MIN_SECRET_BYTES} bytes"
            )
        return value

    @model_validator(mode="after")
    def _public_key_needs_its_algorithms(self) -> Settings:
        """A public key next to HMAC algorithms would be ignored, tokens checked against a shared
        secret instead of the identity provider's key: refused rather than run weaker."""
        if self.jwt_public_key and self.uses_hmac:
            raise ValueError(
                "MLSERVICE_JWT_PUBLIC_KEY is set but MLSERVICE_JWT_ALGORITHMS are HMAC "
                f"({', '.join(self.jwt_algorithms)}): set the public-key algorithm (e.g. RS256, ES256) "
                "or unset the public key"
            )
        return self

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    # Derived locations: one data directory holds all state.
    @property
    def uses_hmac(self) -> bool:
        return self.jwt_algorithms[0] in HMAC_ALGORITHMS

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def dev_jwt_secret_path(self) -> Path:
        return self.secrets_dir / "jwt_secret"

    @property
    def ray_token_path(self) -> Path:
        return self.secrets_dir / "ray_auth_token"

    @property
    def tenants_dir(self) -> Path:
        return self.data_dir / "tenants"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def effective_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def experiment_artifact_root(self) -> str | None:
        """Where experiments keep artifacts when MLflow is used without its artifact server."""
        if self.effective_tracking_uri.startswith(("http://", "https://")):
            return None
        return self.mlflow_artifacts_dir.as_uri()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'api' / 'state.db'}"

    @property
    def effective_api_workers(self) -> int:
        if self.api_workers is not None:
            return self.api_workers
        return max(1, os.cpu_count() or 1) if self.profile == "scale" else 1

    @property
    def effective_dagster_url(self) -> str:
        return self.dagster_url or f"http://127.0.0.1:{self.dagster_port}"

    @property
    def effective_ray_address(self) -> str:
        return self.ray_address or f"127.0.0.1:{self.ray_port}"

    @property
    def effective_serve_url(self) -> str:
        return self.serve_url or f"http://127.0.0.1:{self.serve_port}"

    @property
    def effective_ray_dashboard_url(self) -> str:
        return self.ray_dashboard_url or f"http://127.0.0.1:{self.ray_dashboard_port}"

    def rate_limit_for(self, tenant_id: str) -> RateLimit:
        return self.rate_limit_overrides.get(
            tenant_id, RateLimit(rate=self.rate_limit_per_second, burst=self.rate_limit_burst)
        )

    def max_run_minutes_for(self, tenant_id: str) -> float:
        """How long a run of the tenant's may take: the platform's bound, or the tenant's lower one."""
        return min(self.max_run_minutes, self.max_run_minutes_overrides.get(tenant_id, self.max_run_minutes))

    def quotas_for(self, tenant_id: str) -> Quotas:
        """The defaults with the tenant's override applied field by field."""
        return _overridden(self.quotas, self.quota_overrides.get(tenant_id))

    def retention_for(self, tenant_id: str) -> Retention:
        return _overridden(self.retention, self.retention_overrides.get(tenant_id))


def _overridden(default: BaseModel, override: BaseModel | None):
    if override is None:
        return default
    return default.model_copy(update=override.model_dump(exclude_unset=True))


@lru_cache
def get_settings() -> Settings:
    return Settings()
