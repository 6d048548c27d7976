"""A real S3-compatible server for tests: moto's server mode as its own process on a free loopback
port (no mocking inside the test process), and helpers to fill it: buckets, parquet files, and a
data-access policy that grants them. The session fixture ``s3_server`` (tests/conftest.py) starts
one for the whole run."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlservice.launcher.processes import free_port, http_ok

if TYPE_CHECKING:
    import pandas as pd

    from resources.data.access import DataAccessPolicy

# moto accepts any credentials; what pyarrow and boto3 in the tests (and their children) sign with.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint_url: str
    pid: int
    env: dict[str, str] = field(default_factory=lambda: dict(CREDENTIALS))

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, proxies={}),
        )

    def bucket(self, prefix: str = "b") -> str:
        """A new bucket with a unique name (tests share the session's server)."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def put_bytes(self, uri: str, data: bytes) -> str:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return uri

    def put_parquet(self, uri: str, frame: pd.DataFrame) -> str:
        """``frame`` as one parquet object at ``s3://bucket/key`` (the bucket must exist)."""
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.put_bytes(uri, buffer.getvalue())

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def policy(self, data_dir: str | Path, *, buckets: list[str] | None = None,
               tenant_buckets: dict[str, list[str]] | None = None) -> DataAccessPolicy:
        """The data-access policy on ``data_dir`` with these grants, reading this server."""
        from resources.data.access import DataAccessPolicy

        return DataAccessPolicy(data_dir=str(data_dir), s3_buckets=buckets or [], s3_tenant_buckets=tenant_buckets or {},
                                s3_endpoint_url=self.endpoint_url)


@contextmanager
def moto_server(log_path: Path | None = None, timeout_s: float = 60) -> Iterator[S3Server]:
    """The embedded S3 server (``python -m mlservice.launcher.s3_server``: moto's server) on 127.0.0.1 and a
    free port, in a session of its own; stopped by its process group (SIGTERM, then SIGKILL)."""
    port = free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # closed below
    proc = subprocess.Popen([sys.executable, "-m", "mlservice.launcher.s3_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while not http_ok(f"{url}/moto-api/"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server on port {port} did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        yield S3Server(endpoint_url=url, pid=proc.pid)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        if log_path:
            log.close()
