"""The Dagster instance file of the embedded platform, rendered from the repository's dagster.yaml
with the run queue limits taken from the settings.

- ``max_concurrent_runs``: runs at once, all tenants (``MLSERVICE_MAX_CONCURRENT_RUNS``).
- per tenant (tag ``mlservice/compute_tenant`` of training, tuning and batch scoring runs, one limit per value):
  ``MLSERVICE_TENANT_MAX_CONCURRENT_RUNS``, so two huge jobs of one tenant leave room for the
  others' (and its own scheduled materializations never wait behind them).
- the compute pool (tag ``mlservice/pool=compute`` on the training, tuning and batch scoring jobs):
  ``max_concurrent_runs - 1``, so one slot always stays for feature materialization runs.
- the scale profile: Dagster's storage on PostgreSQL (``MLSERVICE_DAGSTER_POSTGRES_URL``).

Beside it, the workspace file of the webserver and the daemon: the code location is the platform's
own code server (``dagster api grpc`` with run workers forked from a fork server that has imported
what runs import: ``mlservice.launcher.code_server``; a part of its own, on a unix socket), not a ``python_module``
entry. With a module entry, the webserver and the daemon each started a code server of their own,
and the daemon replaced its code server with a new process every 60 s (Dagster reloads a daemon's
workspace every minute), each importing the definitions again: about 3 s of CPU a minute per
platform for nothing. The repository's ``workspace.yaml`` (a module entry) stays for ``dagster dev``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlservice.config.settings import Settings
from resources.infra.dagster_runs import LOCATION_NAME
from resources.vocabulary import COMPUTE_POOL, RUN_COMPUTE_TENANT, RUN_POOL

TEMPLATE = Path(__file__).resolve().parents[2] / "dagster.yaml"
HEADER = "# Rendered by `mlservice up` from the repository's dagster.yaml and the settings; edits are overwritten.\n"


def instance_config(settings: Settings, template: Path = TEMPLATE) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load(template.read_text())
    coordinator = config["run_coordinator"]["config"]
    coordinator["max_concurrent_runs"] = settings.max_concurrent_runs
    others = [limit for limit in coordinator.get("tag_concurrency_limits", []) if limit["key"] not in (RUN_COMPUTE_TENANT, RUN_POOL)]
    coordinator["tag_concurrency_limits"] = [
        {"key": RUN_COMPUTE_TENANT, "value": {"applyLimitPerUniqueValue": True}, "limit": settings.tenant_max_concurrent_runs},
        {"key": RUN_POOL, "value": COMPUTE_POOL, "limit": max(1, settings.max_concurrent_runs - 1)},
        *others,
    ]
    if settings.profile == "scale":  # runs, events and schedules on the profile's PostgreSQL (mlservice/launcher/scale.py)
        config["storage"] = {"postgres": {"postgres_url": {"env": "MLSERVICE_DAGSTER_POSTGRES_URL"}}}
    return config


def render(settings: Settings, template: Path = TEMPLATE) -> str:
    import yaml

    return HEADER + yaml.safe_dump(instance_config(settings, template), sort_keys=False)


def write(settings: Settings, dagster_home: Path, template: Path = TEMPLATE) -> Path:
    return _replace(dagster_home / "dagster.yaml", render(settings, template))


def _replace(path: Path, text: str) -> Path:
    """``path`` holds ``text``, written beside it and moved in place (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def code_server_argv(python: str, socket: Path) -> list[str]:
    """The platform's code server: the definitions loaded once, served on ``socket``."""
    return [python, "-m", "mlservice.launcher.code_server", "api", "grpc", "--module-name", "pipelines.definitions",
            "--location-name", LOCATION_NAME, "--socket", str(socket), "--log-level", "warning"]


def write_workspace(dagster_home: Path, socket: Path) -> Path:
    """The webserver's and the daemon's workspace: the code server on ``socket``."""
    import yaml

    return _replace(dagster_home / "workspace.yaml", HEADER + yaml.safe_dump(
        {"load_from": [{"grpc_server": {"socket": str(socket), "location_name": LOCATION_NAME}}]}, sort_keys=False))
