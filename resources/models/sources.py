"""Where a model to register comes from: a tenant's MLflow run or logged model, checked.

``resolve_source`` accepts a run id, ``runs:/<run_id>/<path>`` or ``models:/m-<id>`` and returns
a concrete artifact location, only when
- the run (or its experiment) carries the caller's tenant tag (else "model source not found",
  the same answer as a missing run);
- a ``runs:/`` path is made of plain segments (letters, digits, ``.``, ``_``, ``-``; no ``..``);
- the location lies inside the run's artifact root, or for a logged model inside its
  experiment's artifact location, compared after normalising the path;
- that experiment's artifact location is its own: under the platform's artifact root only in the
  tenant's folder, elsewhere ending in the experiment's id (MLflow's default), so an experiment
  created with another tenant's folder as its location cannot lend out that tenant's files.
``inspect_source`` then downloads the files (bounded in count and bytes, listed first) and hands
them to ``resources.models.artifact_check``.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from resources.errors import InvalidRequest
from resources.models.artifact_check import Inspected, inspect_artifact, refuse
from resources.vocabulary import T_TENANT

if TYPE_CHECKING:
    from mlflow import MlflowClient

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
LOGGED_MODEL_RE = re.compile(r"^m-[0-9a-f]{32}$")
SEGMENT_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_FILES, MAX_TOTAL_BYTES = 200, 2 << 30


def artifact_path_of(path: str) -> str:
    """The path inside a run of ``runs:/<run>/<path>``: plain segments only, or a 400."""
    if not path:
        return "model"
    segments = path.strip("/").split("/")
    if len(segments) > 8 or any(not SEGMENT_RE.match(s) or s in (".", "..") for s in segments):
        raise InvalidRequest("a runs:/ model path is made of plain segments (letters, digits, '.', '_', '-')",
                             {"source": path})
    return "/".join(segments)


def _normal(uri: str) -> tuple[str, str, str]:
    parsed = urlparse(uri)
    path = posixpath.normpath("/" + unquote(parsed.path).lstrip("/"))
    return parsed.scheme.lower(), parsed.netloc, path


def inside(location: str, root: str) -> bool:
    """``location`` is ``root`` or below it (same scheme and host; paths normalised). A query,
    fragment or parameters (which some artifact stores drop when they map a URI to a path) never are."""
    for uri in (location, root):
        parsed = urlparse(uri)
        if parsed.query or parsed.fragment or parsed.params:
            return False
    scheme, host, path = _normal(location)
    root_scheme, root_host, root_path = _normal(root)
    if (scheme, host) != (root_scheme, root_host):
        return False
    return path == root_path or path.startswith(root_path.rstrip("/") + "/")


def own_location(experiment: Any, tenant_id: str, artifact_root: str | None) -> bool:
    location = experiment.artifact_location or ""
    if artifact_root and inside(location, artifact_root):
        return inside(location, f"{artifact_root.rstrip('/')}/{tenant_id}")
    return posixpath.basename(_normal(location)[2]) == str(experiment.experiment_id)


def resolve_source(
    client: MlflowClient, tenant_id: str, model_uri: str, artifact_root: str | None = None,
) -> tuple[str, str | None, str | None]:
    """``(location, run_id, logged_model_id)`` of a tenant's model source, or a 400 (see module doc)."""
    from mlflow.exceptions import MlflowException

    not_found = InvalidRequest("model source not found", {"source": model_uri})
    if RUN_ID_RE.match(model_uri):
        model_uri = f"runs:/{model_uri}/model"
    try:
        if model_uri.startswith("runs:/"):
            run_id, _, raw_path = model_uri[len("runs:/"):].partition("/")
            if not RUN_ID_RE.match(run_id):
                raise not_found
            artifact_path = artifact_path_of(raw_path)
            run = client.get_run(run_id)
            experiment = client.get_experiment(run.info.experiment_id)
            logged = client.search_logged_models(
                experiment_ids=[experiment.experiment_id],
                filter_string=f"source_run_id = '{run_id}' AND name = '{artifact_path}'", max_results=1,
            )
            model_id = logged[0].model_id if logged else None
            # A concrete location, not models:/...: resolving that would use MLflow's
            # process-global tracking URI rather than this registry's.
            if logged:
                source, root = logged[0].artifact_location, experiment.artifact_location
            else:
                source, root = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}", run.info.artifact_uri
            tenant_tag = run.data.tags.get(T_TENANT)
        elif model_uri.startswith("models:/"):
            model_id = model_uri[len("models:/"):]
            if not LOGGED_MODEL_RE.match(model_id):
                raise InvalidRequest("model source must be a run id, a runs:/ URI or a models:/m-<id> URI",
                                     {"source": model_uri})
            logged_model = client.get_logged_model(model_id)
            run_id = logged_model.source_run_id
            if not run_id:
                raise not_found
            experiment = client.get_experiment(logged_model.experiment_id)
            source, root = logged_model.artifact_location, experiment.artifact_location
            tenant_tag = client.get_run(run_id).data.tags.get(T_TENANT)
        else:
            raise InvalidRequest("model source must be a run id, a runs:/ URI or a models:/m-<id> URI",
                                 {"source": model_uri})
        if tenant_tag is None:
            tenant_tag = experiment.tags.get(T_TENANT)
    except MlflowException:
        raise not_found from None
    if tenant_tag != tenant_id:
        raise not_found
    if not (source and inside(source, root) and inside(root, experiment.artifact_location or "")
            and own_location(experiment, tenant_id, artifact_root)):
        raise InvalidRequest("the model's files lie outside its run's artifact location", {"source": model_uri})
    return source, run_id, model_id


def _listing(location: str, tracking_uri: str) -> list[tuple[str, int]]:
    """Every file below ``location`` with its size, at most MAX_FILES of them."""
    import mlflow

    files: list[tuple[str, int]] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        uri = f"{location.rstrip('/')}/{prefix}" if prefix else location
        for info in mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri):
            name = posixpath.basename(info.path.rstrip("/"))
            path = f"{prefix}/{name}" if prefix else name
            if info.is_dir:
                pending.append(path)
            else:
                files.append((path, int(info.file_size or 0)))
            if len(files) + len(pending) > MAX_FILES:
                raise refuse(f"a model artifact holds at most {MAX_FILES} files")
    return files


def inspect_source(location: str, tracking_uri: str) -> Inspected:
    """Download the model at ``location`` (after checking its size) and inspect it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        total = sum(size for _, size in _listing(location, tracking_uri))
        if total > MAX_TOTAL_BYTES:
            raise refuse(f"a model artifact holds at most {MAX_TOTAL_BYTES} bytes", bytes=total)
        workdir = tempfile.mkdtemp(prefix="mlservice-inspect-")
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=workdir, tracking_uri=tracking_uri)
            return inspect_artifact(Path(local))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    except MlflowException:
        raise refuse("the model's files could not be read") from None
