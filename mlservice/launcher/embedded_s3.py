"""The embedded S3-compatible server of ``mlservice up``: moto's server mode on loopback, in memory.

When ``MLSERVICE_S3_ENDPOINT_URL`` is unset (and ``MLSERVICE_S3_EMBEDDED`` is not false), the
launcher runs moto's server (``python -m mlservice.launcher.s3_server``: no log line per request) on
``127.0.0.1:MLSERVICE_S3_PORT`` (9000) and gives every
part its endpoint (``child_environment``): the API, the Dagster webserver, daemon and run
workers, Ray's head and workers, the demo seed. It also sets ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_DEFAULT_REGION`` where the caller's environment has none (moto
accepts any key), and, when the operator granted no buckets (``MLSERVICE_S3_BUCKETS``,
``MLSERVICE_S3_TENANT_BUCKETS``), grants the buckets ``data`` and ``predictions`` to the demo
tenant. ``seed`` then creates those buckets (and every bucket a grant names literally) and writes
the demo files.

moto keeps everything in memory: the seed runs at every start, and whatever jobs write there
(batch outputs) is lost when the platform stops. It checks no credentials: anyone on this machine
who reaches the loopback port can read and write it. For real data, set
``MLSERVICE_S3_ENDPOINT_URL`` to MinIO (or another S3-compatible store), or set
``MLSERVICE_S3_EMBEDDED=false`` and leave the endpoint unset for AWS S3.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mlservice.launcher.processes import http_ok

if TYPE_CHECKING:
    import pandas as pd

    from mlservice.config.settings import Settings

BUCKETS = ("data", "predictions")
REGION = "us-east-1"
# moto accepts any credentials; these only fill in for an environment that has none.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mlservice-embedded", "AWS_SECRET_ACCESS_KEY": "mlservice-embedded"}
SCORE_ROWS = 10_000
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 11


def endpoint_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.s3_port}"


def server_argv(settings: Settings) -> list[str]:
    """moto's server (werkzeug, threaded) on loopback only, without request logging."""
    return [sys.executable, "-m", "mlservice.launcher.s3_server", "-H", "127.0.0.1", "-p", str(settings.s3_port)]


def ready(settings: Settings) -> bool:
    return http_ok(f"{endpoint_url(settings)}/moto-api/")


def demo_grants() -> dict[str, list[str]]:
    from mlservice.demo.seed import DEMO_TENANT

    return {DEMO_TENANT: list(BUCKETS)}


def child_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """What every part gets on top of ``base`` (the launcher's environment) while the embedded
    server runs: its endpoint, credentials and region where ``base`` has none, and the demo
    tenant's grants where the operator granted nothing."""
    env = {"MLSERVICE_S3_ENDPOINT_URL": endpoint_url(settings)}
    env.update({name: value for name, value in CREDENTIALS.items() if not base.get(name)})
    if not (base.get("AWS_REGION") or base.get("AWS_DEFAULT_REGION")):
        env["AWS_DEFAULT_REGION"] = REGION
    if not settings.s3_buckets and not settings.s3_tenant_buckets:
        env["MLSERVICE_S3_TENANT_BUCKETS"] = json.dumps(demo_grants())
    return env


def granted_buckets(settings: Settings, env: Mapping[str, str]) -> list[str]:
    """``BUCKETS`` and every bucket a grant names literally (``{tenant}`` in a bucket name: skipped)."""
    grants = json.loads(env.get("MLSERVICE_S3_TENANT_BUCKETS") or "{}") or settings.s3_tenant_buckets
    entries = [*settings.s3_buckets, *(entry for entries in grants.values() for entry in entries)]
    named = [entry.partition("/")[0] for entry in entries]
    return list(dict.fromkeys([*BUCKETS, *(b for b in named if "{" not in b)]))


def demo_files() -> dict[str, pd.DataFrame]:
    """Keys in bucket ``data`` -> frames: the demo population (``mlservice.demo.feature_data``, the
    seed's n and seed) flat, as the demo model sees it: ``customers_to_score.parquet`` (the first
    10,000 customers' four churn features now, equal to the online store's values) and
    ``train.parquet``/``val.parquet`` (the labelled rows, 80/20 at random, fixed seed)."""
    import numpy as np

    from mlservice.demo.feature_data import churn_flat_frames

    frames = churn_flat_frames()
    labelled = frames["labelled"]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labelled))
    cut = int(len(labelled) * (1 - VALIDATION_FRACTION))
    return {
        "customers_to_score.parquet": frames["current"].head(SCORE_ROWS).reset_index(drop=True),
        "train.parquet": labelled.iloc[np.sort(order[:cut])].reset_index(drop=True),
        "val.parquet": labelled.iloc[np.sort(order[cut:])].reset_index(drop=True),
    }


def client(endpoint: str, env: Mapping[str, str]):
    """A boto3 S3 client of ``endpoint`` with the credentials and region of ``env`` (path-style)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or REGION,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"), aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}, proxies={}),
    )


def seed(settings: Settings, env: Mapping[str, str]) -> list[str]:
    """Create the buckets and write the demo files to the embedded server; returns their URIs."""
    s3 = client(endpoint_url(settings), env)
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    for bucket in granted_buckets(settings, env):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    written = []
    for key, frame in demo_files().items():
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        s3.put_object(Bucket="data", Key=key, Body=buffer.getvalue())
        written.append(f"s3://data/{key}")
    return written

