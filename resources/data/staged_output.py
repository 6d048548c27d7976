"""All-or-nothing output of a batch job: staged, then made visible with a ``_SUCCESS`` manifest.

Layout under the output directory (a local folder or an S3 prefix)::

    part-00000-000.parquet ...   the scored rows (Ray Data's write tasks, named by task and block:
                                 with order preserved, files in name order hold the input's rows in
                                 the input's order)
    _rejected/rejected-*.parquet rows that did not fit the signature (on_invalid=skip), with reasons
    _SUCCESS                     the manifest (JSON): job, model, version, rows, files, schema
    _staging/<job_id>/           where a running job writes (data/, _rejected/); never read as output

A job writes only under its staging folder. ``commit`` runs once every block succeeded: it
removes what an earlier output left (only with ``overwrite``), moves the staged files into place
and writes ``_SUCCESS`` last; the output is complete exactly when ``_SUCCESS`` exists, and readers
should look for it (Spark and Hadoop's convention). ``discard`` removes a failed or cancelled job's
staging folder. A retry of the same job writes the same file names with the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resources.errors import InvalidRequest, OutputExists

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from resources.data.access import DataAccessPolicy, DataLocation

SUCCESS, STAGING, REJECTED = "_SUCCESS", "_staging", "_rejected"
# The output's columns: the kept input columns, then these (one probability per class).
PREDICTION, MODEL_VERSION, REASON = "prediction", "model_version", "rejection_reason"
PROBABILITY_PREFIX = "probability_"


def probability_column(label: Any) -> str:
    return f"{PROBABILITY_PREFIX}{label}"


def output_columns(keep_columns: list[str], classes: list, model_type: str) -> list[str]:
    """The output's columns, in order."""
    probabilities = [probability_column(c) for c in classes] if model_type == "classification" else []
    return [*keep_columns, PREDICTION, *probabilities, MODEL_VERSION]


def kept_columns(requested: list[str] | None, input_columns: list[str], features: list[str]) -> list[str]:
    """The input columns copied to the output: the requested ones (each must exist), else every
    column that is not a feature; none may take an output column's name. 400 otherwise."""
    if requested is None:
        kept = [c for c in input_columns if c not in set(features)]
    else:
        missing = [c for c in requested if c not in set(input_columns)]
        if missing:
            raise InvalidRequest(f"keep_columns not in the input: {', '.join(missing[:20])}", {"missing": missing[:100]})
        kept = list(dict.fromkeys(requested))
    taken = [c for c in kept if c in (PREDICTION, MODEL_VERSION) or c.startswith(PROBABILITY_PREFIX)]
    if taken:
        raise InvalidRequest(f"input columns would collide with the output's: {', '.join(taken[:20])}; choose keep_columns",
                             {"columns": taken[:100]})
    return kept


@dataclass
class OutputPlan:
    fs: pafs.FileSystem
    root: str  # the output directory, as the filesystem names it
    staging: str  # root/_staging/<job_id>
    uri: str  # the output as the request named it (for messages and the manifest)

    @property
    def staged_data(self) -> str:
        """Where the write tasks put the scored rows (a folder the writer may replace whole)."""
        return f"{self.staging}/data"

    @property
    def staged_rejected(self) -> str:
        return f"{self.staging}/{REJECTED}"


def check_output_location(location: DataLocation, policy: DataAccessPolicy, overwrite: bool) -> None:
    """Before a job is launched: 409 OUTPUT_EXISTS when the output holds files and ``overwrite`` is false."""
    check_output_free(plan_output(location, policy, "-"), overwrite)


def plan_output(location: DataLocation, policy: DataAccessPolicy, job_id: str) -> OutputPlan:
    from resources.data.storage import filesystem

    fs, root = filesystem(location, policy)
    root = root.rstrip("/")
    return OutputPlan(fs, root, f"{root}/{STAGING}/{job_id}", location.uri)


def visible_files(plan: OutputPlan) -> list[str]:
    """What the output directory holds outside ``_staging`` (empty when it does not exist)."""
    import pyarrow.fs as pafs

    info = plan.fs.get_file_info(plan.root)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        return [plan.root]
    found = plan.fs.get_file_info(pafs.FileSelector(plan.root, recursive=True))
    prefix = f"{plan.root}/{STAGING}"
    return sorted(f.path for f in found if f.type == pafs.FileType.File and not (f.path == prefix or f.path.startswith(prefix + "/")))


def check_output_free(plan: OutputPlan, overwrite: bool) -> None:
    """409 OUTPUT_EXISTS when the output holds files and ``overwrite`` is false."""
    existing = visible_files(plan)
    if existing and not overwrite:
        raise OutputExists(f"the output path already holds {len(existing)} file(s); set overwrite to replace them",
                           {"output_path": plan.uri, "files": [_name(plan, f) for f in existing[:10]]})


def staged_data_files(plan: OutputPlan) -> list[str]:
    import pyarrow.fs as pafs

    if plan.fs.get_file_info(plan.staging).type == pafs.FileType.NotFound:
        return []
    found = plan.fs.get_file_info(pafs.FileSelector(plan.staging, recursive=True))
    return sorted(f.path for f in found if f.type == pafs.FileType.File)


def commit(plan: OutputPlan, manifest: dict[str, Any], *, overwrite: bool) -> list[str]:
    """Make the staged output visible; returns the visible files' names (relative to the output)."""
    from resources.data.storage import ensure_dir

    existing = visible_files(plan)
    if existing and not overwrite:
        raise OutputExists(f"the output path was written while the job ran: {plan.uri}", {"output_path": plan.uri})
    success = f"{plan.root}/{SUCCESS}"
    for path in [p for p in existing if p == success] + [p for p in existing if p != success]:
        plan.fs.delete_file(path)  # the old manifest first: the old output stops being complete at once
    moved = []
    for path in staged_data_files(plan):
        relative = path[len(plan.staged_data):] if path.startswith(plan.staged_data + "/") else path[len(plan.staging):]
        target = plan.root + relative
        parent = target.rsplit("/", 1)[0]
        ensure_dir(plan.fs, parent)
        plan.fs.move(path, target)
        moved.append(_name(plan, target))
    body = json.dumps({**manifest, "files": moved}, indent=2, sort_keys=True, default=str).encode()
    with plan.fs.open_output_stream(success) as stream:
        stream.write(body)
    discard(plan)
    return [*moved, SUCCESS]


def discard(plan: OutputPlan) -> None:
    """Remove the job's staging folder (and ``_staging`` itself when it is left empty); best effort."""
    import pyarrow.fs as pafs

    for path in (plan.staging, f"{plan.root}/{STAGING}"):
        try:
            info = plan.fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                continue
            if path == plan.staging or not plan.fs.get_file_info(pafs.FileSelector(path, recursive=False)):
                plan.fs.delete_dir(path)
        except OSError:
            pass


def _name(plan: OutputPlan, path: str) -> str:
    return path[len(plan.root) + 1:] if path.startswith(plan.root + "/") else path


def discard_job_staging(policy: DataAccessPolicy, tenant_id: str, output_path: str | None, job_id: str) -> None:
    """Remove a job's staging folder from outside its run (the API, when it sees the job end
    failed or cancelled); best effort: a path the policy no longer allows, or an unreachable
    store, leaves it for the next look."""
    from resources.errors import DomainError

    if not output_path:
        return
    try:
        discard(plan_output(policy.resolve(tenant_id, output_path), policy, job_id))
    except (DomainError, OSError, ValueError):
        pass
