"""MLflow's plugin entry points, less one that costs seconds in every process.

feast registers an ``mlflow.request_header_provider`` (``FeastMLflowHeaderProvider``: it adds
Feast's own bearer token to MLflow requests made inside Feast's feature server, and is "in
context" only there). MLflow loads every such provider at a process's first REST call, and loading
this one imports all of feast, torch included: 5-9 s of CPU on this machine in every process that
talks to the MLflow server (each run worker of a training or batch job, each API worker at its
first model load). The platform never makes MLflow calls from Feast's feature server, so the
provider would never add a header; ``skip_feast_header_provider`` leaves it out, before the first
REST call of the process (afterwards it no longer matters: the providers are loaded once).
"""

from __future__ import annotations

HEADER_PROVIDERS = "mlflow.request_header_provider"
SKIPPED_PREFIX = "feast."


def skip_feast_header_provider() -> None:
    """Make MLflow's entry-point lookup leave out feast's request-header provider (idempotent)."""
    from mlflow.utils import plugins

    original = plugins.get_entry_points
    if getattr(original, "skips_feast", False):
        return

    def get_entry_points(group: str) -> list:
        found = original(group)
        if group != HEADER_PROVIDERS:
            return found
        return [entry for entry in found if not entry.value.startswith(SKIPPED_PREFIX)]

    get_entry_points.skips_feast = True  # type: ignore[attr-defined]
    plugins.get_entry_points = get_entry_points
