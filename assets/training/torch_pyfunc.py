"""MLflow "models from code" file for the platform's PyTorch tabular MLP (see torch_model.py).

MLflow copies this file into the logged model; it must stay self-contained (no imports from the
platform). Artifact "state" holds ``state_dict.pt`` (tensors only, read with weights_only=True)
and ``arch.json`` (architecture, feature columns, classes, normalisation).
predict(DataFrame) -> class probabilities (n_rows x n_classes, columns in ``classes`` order) for
classification, a 1-D array of predictions for regression.
"""

import json
from pathlib import Path

import mlflow
import numpy as np
import torch
from torch import nn


class TabularMLP(nn.Module):
    """Same layout as assets.training.torch_model.TabularMLP (state_dict keys must match)."""

    def __init__(self, n_features, hidden=(64, 32), n_outputs=1, dropout=0.0):
        super().__init__()
        layers = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(size)
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class TabularMLPModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        state_dir = Path(context.artifacts["state"])
        info = json.loads((state_dir / "arch.json").read_text())
        arch = info["arch"]
        self.arch = arch
        self.feature_columns = info["feature_columns"]
        self.classes = info["classes"]
        self.mean = np.asarray(info["mean"], dtype=np.float32)
        self.std = np.asarray(info["std"], dtype=np.float32)
        self.module = TabularMLP(arch["n_features"], arch["hidden"], arch["n_outputs"], arch["dropout"])
        self.module.load_state_dict(torch.load(state_dir / "state_dict.pt", weights_only=True))
        self.module.eval()

    def predict(self, context, model_input, params=None):
        if hasattr(model_input, "columns"):
            model_input = model_input[self.feature_columns]
        x = (np.asarray(model_input, dtype=np.float32) - self.mean) / self.std
        with torch.no_grad():
            out = self.module(torch.from_numpy(x))
        if self.arch["task"] == "classification":
            return torch.softmax(out.double(), dim=1).numpy()
        return out[:, 0].numpy() * self.arch["target_std"] + self.arch["target_mean"]


mlflow.models.set_model(TabularMLPModel())
