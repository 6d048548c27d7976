"""Which model artifacts the platform accepts, and the digest that pins them.

Loading an MLflow model the usual way lets the artifact decide what runs: its ``MLmodel`` names a
pyfunc ``loader_module``, a bundled ``code/`` folder, a models-from-code file or a pickled
``python_model``, and skops' trusted types are read from the artifact too. The platform never
does that. It accepts exactly two shapes, both of which it loads with its own code:

- ``sklearn-skops``: a scikit-learn model saved by MLflow's sklearn flavor with skops. It is read
  with ``skops.io.load`` and a trusted-type list fixed here (skops' own defaults plus
  ``EXTRA_TRUSTED_TYPES``, the internals of the estimators the platform trains), never the list
  in the artifact.
- ``torch-state-dict``: the platform's tabular MLP: tensors only (``state_dict.pt``, read with
  ``weights_only=True``), ``arch.json``, and the platform's own pyfunc file, byte-identical to a
  released copy (``TORCH_PYFUNC_SHA256``). Serving never executes that file: ``resources.models.torch_mlp``
  rebuilds the network from the weights.

Anything else (another flavor or loader, ``code`` paths, ``python_model``, pickles, files the
shape does not have) is refused at registration, naming what was refused. Every file's sha256
is recorded with the version (``resources.models.artifact_records``) and checked again before each load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resources.errors import InvalidRequest

SKLEARN_SKOPS, TORCH_STATE_DICT = "sklearn-skops", "torch-state-dict"
KINDS = (SKLEARN_SKOPS, TORCH_STATE_DICT)
# skops trusts scikit-learn's estimators, numpy arrays and the like by default; these are the
# internals of the estimators in resources/jobs/estimators.py that it does not (tests/unit/test_artifact_check.py
# fits every one of them and checks the list covers it).
EXTRA_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)
# sha256 of every released assets/training/torch_pyfunc.py (a test pins the current file's).
TORCH_PYFUNC_SHA256 = frozenset({"6f8a2d7f0dff8bcafe991b249f9a03c9e0dbec571db11cb9a23d9ec210e99049"})
TORCH_PYFUNC_FILE = "torch_pyfunc.py"
SKOPS_FILE = "model.skops"
STATE_DIR = "artifacts/state"
# What MLflow writes beside every model: metadata, environments and the input example (JSON).
COMMON_FILES = frozenset({
    "MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
    "serving_input_example.json", "registered_model_meta",
})
FILES_BY_KIND = {
    SKLEARN_SKOPS: COMMON_FILES | {SKOPS_FILE},
    TORCH_STATE_DICT: COMMON_FILES | {TORCH_PYFUNC_FILE, f"{STATE_DIR}/arch.json", f"{STATE_DIR}/state_dict.pt"},
}
COLUMN_TYPES = frozenset({"double", "float", "long", "integer", "boolean", "string"})
MAX_FILE_BYTES = 2 << 30


@dataclass
class Inspected:
    """What registration learned about an accepted artifact."""

    kind: str
    files: dict[str, str]  # relative path -> sha256
    digest: str
    features: list[dict[str, str]]
    classes: list[Any] | None


def refuse(message: str, **details: Any) -> InvalidRequest:
    return InvalidRequest(f"model artifact refused: {message}", {"artifact": details} if details else None)


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` by relative POSIX path; a link is refused."""
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise refuse("links are not accepted", file=relative)
        if path.is_dir():
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            raise refuse(f"files larger than {MAX_FILE_BYTES} bytes are not accepted", file=relative)
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        files[relative] = sha.hexdigest()
    return files


def combined_digest(files: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{p}\0{h}\n" for p, h in sorted(files.items())).encode()).hexdigest()


def _kind(mlmodel: dict[str, Any]) -> str:
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, dict):
        raise refuse("MLmodel has no flavors")
    pyfunc = flavors.get("python_function") or {}
    names = sorted(flavors)
    for key in ("code", "python_model"):
        if pyfunc.get(key) or (flavors.get("sklearn") or {}).get(key):
            raise refuse(f"MLmodel names {key!r}: bundled code and pickled python models are never loaded", field=key)
    if names == ["python_function", "sklearn"]:
        sk = flavors["sklearn"]
        if sk.get("serialization_format") != "skops" or sk.get("pickled_model") != SKOPS_FILE:
            raise refuse("scikit-learn models must be saved with skops (MLflow's default), not pickle",
                         serialization_format=sk.get("serialization_format"))
        if pyfunc.get("loader_module") != "mlflow.sklearn" or pyfunc.get("model_path") != SKOPS_FILE:
            raise refuse("unexpected pyfunc loader_module for a scikit-learn model", loader_module=pyfunc.get("loader_module"))
        return SKLEARN_SKOPS
    if names == ["python_function"] and pyfunc.get("loader_module") == "mlflow.pyfunc.loaders.code_model":
        if set(pyfunc.get("artifacts") or {}) != {"state"} or pyfunc["artifacts"]["state"].get("path") != STATE_DIR:
            raise refuse("a models-from-code artifact is accepted only as the platform's torch model")
        return TORCH_STATE_DICT
    raise refuse("only scikit-learn models saved with skops and the platform's torch models are accepted",
                 flavors=names, loader_module=pyfunc.get("loader_module"))


def signature_features(mlmodel: dict[str, Any]) -> list[dict[str, str]] | None:
    """The signature's named input columns, or None when the MLmodel has no signature."""
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return None
    try:
        columns = json.loads(raw)
    except (TypeError, ValueError):
        raise refuse("the signature's inputs are not JSON") from None
    if not isinstance(columns, list) or not columns:
        raise refuse("the signature has no inputs")
    features = []
    for column in columns:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str) or column.get("type") not in COLUMN_TYPES:
            raise refuse("signature inputs must be named columns of type " + ", ".join(sorted(COLUMN_TYPES)), column=column)
        features.append({"name": column["name"], "type": column["type"]})
    return features


def inspect_artifact(root: Path) -> Inspected:
    """Accept or refuse the model in ``root`` (a downloaded artifact directory)."""
    files = file_digests(root)
    try:
        mlmodel = yaml.safe_load((root / "MLmodel").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        raise refuse("no readable MLmodel file") from None
    if not isinstance(mlmodel, dict):
        raise refuse("no readable MLmodel file")
    kind = _kind(mlmodel)
    extra = sorted(set(files) - FILES_BY_KIND[kind])
    if extra:
        raise refuse("files this kind of model does not have (code, pickles, other data)", files=extra[:20])
    missing = sorted(f for f in FILES_BY_KIND[kind] - COMMON_FILES if f not in files) + (["MLmodel"] if "MLmodel" not in files else [])
    if missing:
        raise refuse("files are missing", files=missing)
    features = signature_features(mlmodel)
    if kind == SKLEARN_SKOPS:
        estimator = load_sklearn(root)
        classes = _plain_list(getattr(estimator, "classes_", None))
        if features is None and hasattr(estimator, "feature_names_in_"):
            features = [{"name": str(n), "type": "double"} for n in estimator.feature_names_in_]
    else:
        from resources.models.torch_mlp import check_state_dir  # torch only for torch models

        if files[TORCH_PYFUNC_FILE] not in TORCH_PYFUNC_SHA256:
            raise refuse(f"{TORCH_PYFUNC_FILE} is not the platform's own file", file=TORCH_PYFUNC_FILE)
        info = check_state_dir(root / STATE_DIR)
        classes = list(info["classes"]) if info["arch"]["task"] == "classification" else None
    if not features:
        raise refuse("the model needs a signature with named input columns (or an estimator with feature names)")
    return Inspected(kind, files, combined_digest(files), features, classes)


def verify_files(root: Path, expected: dict[str, str]) -> list[str]:
    """The relative paths whose content differs from ``expected`` (missing and extra ones too)."""
    try:
        actual = file_digests(root)
    except InvalidRequest:
        return ["<a link or an oversized file>"]
    return sorted(p for p in set(actual) | set(expected) if actual.get(p) != expected.get(p))


def load_sklearn(root: Path) -> Any:
    """The estimator, read by skops with the fixed trusted types; refused if it holds others."""
    from resources.models.skops_import import skops_io

    skops = skops_io()
    path = root / SKOPS_FILE
    try:
        untrusted = skops.get_untrusted_types(file=path)
    except Exception:
        raise refuse("model.skops is not a readable skops file") from None
    refused = sorted(set(untrusted) - set(EXTRA_TRUSTED_TYPES))
    if refused:
        raise refuse("the skops file holds types the platform does not trust", types=refused[:20])
    try:
        return skops.load(path, trusted=list(EXTRA_TRUSTED_TYPES))
    except Exception as exc:
        raise refuse(f"model.skops could not be read ({type(exc).__name__})") from None


def _plain_list(values: Any) -> list[Any] | None:
    if values is None:
        return None
    return [v.item() if hasattr(v, "item") else v for v in list(values)]
