"""The platform's tabular MLP: its layout, and reading a saved one without running artifact code.

Training (``assets/training/torch_model.py``) builds and saves it; registration checks a saved
state directory (``check_state_dir``) and serving rebuilds it from the weights
(``load_predictor``). The self-contained copy that MLflow keeps in the artifact
(``assets/training/torch_pyfunc.py``) has the same layout, for people who load the model with
MLflow; the platform never executes that copy. Import this module lazily (it imports torch).

A state directory holds ``state_dict.pt`` (tensors only, read with ``weights_only=True``) and
``arch.json``: {"arch": {n_features, hidden, n_outputs, dropout, task, target_mean, target_std},
"feature_columns", "classes", "mean", "std"}.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resources.errors import InvalidRequest

STATE_FILE, ARCH_FILE = "state_dict.pt", "arch.json"
MAX_LAYERS, MAX_WIDTH, MAX_FEATURES, MAX_OUTPUTS = 16, 8192, 10_000, 10_000


class TabularMLP(nn.Module):
    """Linear-ReLU-Dropout blocks then a linear head (Dropout(0) keeps state_dict keys stable)."""

    def __init__(self, n_features: int, hidden=(64, 32), n_outputs: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(size)
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_module(arch: dict) -> TabularMLP:
    return TabularMLP(int(arch["n_features"]), arch["hidden"], int(arch["n_outputs"]), float(arch["dropout"]))


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(f"model artifact refused: {message}", {"artifact": {"file": f"artifacts/state/{ARCH_FILE}"}})


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _finite_numbers(values: Any, length: int) -> bool:
    return (isinstance(values, list) and len(values) == length
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def read_info(state_dir: Path) -> dict:
    """``arch.json`` checked field by field (types and bounds), or a 400."""
    try:
        info = json.loads((state_dir / ARCH_FILE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise _bad("arch.json is not readable JSON") from None
    arch = info.get("arch") if isinstance(info, dict) else None
    if not isinstance(arch, dict):
        raise _bad("arch.json has no 'arch'")
    n = arch.get("n_features")
    if not _is_int(n, 1, MAX_FEATURES) or not _is_int(arch.get("n_outputs"), 1, MAX_OUTPUTS):
        raise _bad("n_features and n_outputs must be positive integers within bounds")
    hidden = arch.get("hidden")
    if not (isinstance(hidden, list) and 1 <= len(hidden) <= MAX_LAYERS and all(_is_int(h, 1, MAX_WIDTH) for h in hidden)):
        raise _bad(f"hidden must be 1-{MAX_LAYERS} layer widths of 1-{MAX_WIDTH}")
    if arch.get("task") not in ("classification", "regression"):
        raise _bad("task must be classification or regression")
    if not _finite_numbers([arch.get("dropout"), arch.get("target_mean"), arch.get("target_std")], 3):
        raise _bad("dropout, target_mean and target_std must be finite numbers")
    columns = info.get("feature_columns")
    if not (isinstance(columns, list) and len(columns) == n and all(isinstance(c, str) for c in columns)):
        raise _bad("feature_columns must name n_features columns")
    if not (_finite_numbers(info.get("mean"), n) and _finite_numbers(info.get("std"), n)):
        raise _bad("mean and std must be n_features finite numbers")
    classes = info.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, (str, int, float, bool)) for c in classes):
        raise _bad("classes must be a list of scalars")
    if arch["task"] == "classification" and len(classes) != arch["n_outputs"]:
        raise _bad("a classifier needs one class per output")
    return info


def _load_module(state_dir: Path, arch: dict) -> TabularMLP:
    try:
        state = torch.load(state_dir / STATE_FILE, weights_only=True, map_location="cpu")
        module = build_module(arch)
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise _bad(f"state_dict.pt does not hold this network's weights ({type(exc).__name__})") from None
    module.eval()
    return module


def check_state_dir(state_dir: Path) -> dict:
    """Registration: arch.json is well-formed and the weights fit it exactly. Returns arch.json."""
    info = read_info(state_dir)
    _load_module(state_dir, info["arch"])
    return info


def load_predictor(state_dir: Path) -> tuple[Callable, dict]:
    """Serving: ``predict(frame) -> outputs`` (class probabilities, or values) and arch.json."""
    info = read_info(state_dir)
    arch, columns = info["arch"], info["feature_columns"]
    module = _load_module(state_dir, arch)
    mean, std = np.asarray(info["mean"], np.float32), np.asarray(info["std"], np.float32)

    def predict(frame) -> np.ndarray:
        rows = frame[columns] if hasattr(frame, "columns") else frame
        x = (np.asarray(rows, dtype=np.float32) - mean) / std
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(x)))
        if arch["task"] == "classification":
            return torch.softmax(out.double(), dim=1).numpy()
        return out[:, 0].numpy() * arch["target_std"] + arch["target_mean"]

    return predict, info
