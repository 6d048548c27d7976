"""The artifact rules on their own: what the platform trains passes, what it does not is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resources.errors import InvalidRequest
from resources.jobs.estimators import ESTIMATORS, build_estimator
from resources.jobs.specs import TrainerSpec
from resources.models import artifact_check
from resources.models.sources import artifact_path_of, inside

PYFUNC = Path(artifact_check.__file__).resolve().parents[2] / "assets" / "training" / "torch_pyfunc.py"


def test_the_torch_pyfunc_file_is_a_released_one():
    """Changing assets/training/torch_pyfunc.py means adding its digest (older models keep theirs)."""
    assert hashlib.sha256(PYFUNC.read_bytes()).hexdigest() in artifact_check.TORCH_PYFUNC_SHA256


@pytest.mark.parametrize("name, model_type", [(n, t) for n, kinds in ESTIMATORS.items() for t in kinds])
def test_every_estimator_the_platform_trains_needs_only_trusted_types(name, model_type):
    import skops.io

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    target = (frame["a"] > 0).astype(int) if model_type == "classification" else frame["a"] * 2
    model = build_estimator(TrainerSpec(model_type=model_type, estimator=name)).fit(frame, target)
    untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    assert untrusted <= set(artifact_check.EXTRA_TRUSTED_TYPES)


def _sklearn_dir(tmp_path: Path) -> Path:
    import mlflow
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame, (frame["a"] > 20).astype(int))
    path = tmp_path / "model"
    mlflow.sklearn.save_model(model, str(path), signature=mlflow.models.infer_signature(frame, model.predict_proba(frame)),
                              pip_requirements=["scikit-learn"],
                              skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    return path


def test_a_saved_sklearn_model_is_accepted_with_its_digest(tmp_path):
    path = _sklearn_dir(tmp_path)
    inspected = artifact_check.inspect_artifact(path)
    assert inspected.kind == artifact_check.SKLEARN_SKOPS
    assert inspected.features == [{"name": "a", "type": "double"}, {"name": "b", "type": "double"}]
    assert inspected.classes == [0, 1]
    assert artifact_check.verify_files(path, inspected.files) == []
    (path / "model.skops").write_bytes((path / "model.skops").read_bytes() + b"\0")
    assert artifact_check.verify_files(path, inspected.files) == ["model.skops"]


@pytest.mark.parametrize("change, refused", [
    (lambda p: (p / "python_model.pkl").write_bytes(b"\x80\x04N."), "files this kind of model does not have"),
    (lambda p: (p / "code").mkdir() or (p / "code" / "x.py").write_text("import os"), "files this kind"),
    (lambda p: (p / "link").symlink_to("/etc/passwd"), "links are not accepted"),
    (lambda p: (p / "MLmodel").write_text((p / "MLmodel").read_text().replace("loader_module: mlflow.sklearn",
                                                                               "loader_module: evil")), "loader_module"),
    (lambda p: (p / "MLmodel").write_text((p / "MLmodel").read_text().replace("code: null", "code: code")), "'code'"),
    (lambda p: (p / "MLmodel").write_text("flavors: [1, 2"), "MLmodel"),
    (lambda p: (p / "model.skops").write_bytes(b"not a zip"), "not a readable skops file"),
])
def test_changed_artifacts_are_refused(tmp_path, change, refused):
    path = _sklearn_dir(tmp_path)
    change(path)
    with pytest.raises(InvalidRequest) as caught:
        artifact_check.inspect_artifact(path)
    assert refused in caught.value.message


@pytest.mark.parametrize("path", ["..", "a/../b", "./a", "a b", "a/" * 9 + "a", "a\\..\\b"])
def test_runs_paths_are_plain_segments(path):
    with pytest.raises(InvalidRequest):
        artifact_path_of(path)


def test_inside_compares_normalised_paths_and_refuses_queries():
    assert inside("file:///a/b/models/m-1/artifacts", "file:///a/b")
    assert not inside("file:///a/b/../c", "file:///a/b")
    assert not inside("file:///a/bc", "file:///a/b")
    assert not inside("file:///a/b%2F..%2F..%2Fetc", "file:///a/b")  # decoded, then normalised
    assert not inside("file:///a/b/x?/../../y", "file:///a/b")
    assert not inside("s3://other/a/b", "file:///a/b")
    assert not inside("mlflow-artifacts:/1/x#frag", "mlflow-artifacts:/1")
