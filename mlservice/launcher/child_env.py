"""The environment of each process ``mlservice up`` starts: what it needs, and no signing key.

Every child gets the platform's locations (``MLSERVICE_*`` URLs, the data dir, Ray's token path)
and the variable that keeps Ray on loopback. Only the API and the ``seed-demo`` step (which mints
tokens) keep JWT material; Ray, MLflow, the embedded S3 server and Dagster (webserver, daemon, and
so the run workers and code servers they start) get the caller's environment without any variable
naming JWT, so code running in a Dagster run or a Ray worker cannot read a key that signs tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Ray takes loopback as the node address when this is false (ray_constants.ENABLE_RAY_CLUSTER ->
# services.get_node_ip_address), so the head's servers, its workers and every driver bind and dial
# 127.0.0.1. Without it `--node-ip-address 127.0.0.1` is resolved to the host's address and the
# GCS, raylet, workers and agents listen on all interfaces. It also refuses to add nodes: the
# embedded head is one machine.
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

PARTS_WITH_SECRETS = frozenset({"api", "seed"})
PARTS = PARTS_WITH_SECRETS | {"ray", "mlflow", "dagster", "s3"}
_SECRET_NAME = re.compile(r"JWT", re.IGNORECASE)


def is_secret(name: str) -> bool:
    """A variable only the API may see: anything naming JWT (secret, private key, their files)."""
    return bool(_SECRET_NAME.search(name))


def for_part(base: Mapping[str, str], part: str) -> dict[str, str]:
    """``base`` (the launcher's full child environment) as one part should see it."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; one of {sorted(PARTS)}")
    env = dict(base)
    if part not in PARTS_WITH_SECRETS:
        env = {name: value for name, value in env.items() if not is_secret(name)}
    return env
