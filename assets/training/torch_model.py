"""PyTorch tabular MLP trained data-parallel with Ray Train, and its MLflow logging (no pickle).

Only the pytorch path imports this module (lazily), so ``import torch`` at module level is fine.
The network is ``resources.models.torch_mlp.TabularMLP`` (registration and serving read it from there);
keep the copy in ``torch_pyfunc.py`` in step (same layer layout/state_dict keys).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assets.training.outcome import FitOutcome, class_labels, evaluate, report_safely
from resources.models.torch_mlp import ARCH_FILE, STATE_FILE, build_module

TRAIN_FILE = "train.json"
PYFUNC_FILE = Path(__file__).with_name("torch_pyfunc.py")
PIP_REQUIREMENTS = ["torch==2.13.0", "pandas", "numpy"]


@dataclass
class TorchModelState:
    """What the driver gets back: CPU weights plus everything needed to predict on a DataFrame."""

    state_dict: dict[str, torch.Tensor]
    arch: dict  # n_features, hidden, n_outputs, dropout, task, target_mean, target_std
    feature_columns: list[str]
    classes: list
    mean: list[float]
    std: list[float]
    _module: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_module"} | {"_module": None}

    def _outputs(self, df) -> np.ndarray:
        if self._module is None:
            self._module = build_module(self.arch)
            self._module.load_state_dict(self.state_dict)
            self._module.eval()
        x = (df[self.feature_columns].to_numpy(dtype=np.float32) - np.asarray(self.mean, np.float32)) \
            / np.asarray(self.std, np.float32)
        with torch.no_grad():
            return self._module(torch.from_numpy(x)).numpy()

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def predict_proba(self, df) -> np.ndarray:
        if self.arch["task"] != "classification":
            raise AttributeError("predict_proba is only defined for classification models")
        return torch.softmax(torch.from_numpy(self._outputs(df)).double(), dim=1).numpy()

    def predict(self, df) -> np.ndarray:
        if self.arch["task"] == "classification":
            return self.classes_[self.predict_proba(df).argmax(axis=1)]
        return self._outputs(df)[:, 0] * self.arch["target_std"] + self.arch["target_mean"]

    def save(self, directory: str | Path) -> Path:
        """``state_dict.pt`` (tensors only, loadable with weights_only=True) and ``arch.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.state_dict.items()}, directory / STATE_FILE)
        info = {"arch": self.arch, "feature_columns": list(self.feature_columns),
                "classes": [c.item() if hasattr(c, "item") else c for c in self.classes],
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}
        (directory / ARCH_FILE).write_text(json.dumps(info, indent=1))
        return directory


def _train_loop(config: dict) -> None:
    """Ray Train worker: data-parallel over row shards (rank::world_size), validation on every rank."""
    import ray
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    arrays = ray.get(config["data"])
    classification = config["arch"]["task"] == "classification"
    device = ray.train.torch.get_device()
    torch.manual_seed(config["seed"])
    model = ray.train.torch.prepare_model(build_module(config["arch"]))
    net = getattr(model, "module", model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    loss_fn = nn.CrossEntropyLoss() if classification else nn.MSELoss()
    target_std = config["arch"]["target_std"]

    # torch.tensor copies: arrays from the object store are read-only.
    x_shard = torch.tensor(arrays["x_train"][rank::world], device=device)
    y_shard = torch.tensor(arrays["y_train"][rank::world], device=device)
    x_val = torch.tensor(arrays["x_val"], device=device)
    y_val = torch.tensor(arrays["y_val"], device=device)
    # The same number of optimizer steps on every rank, or DDP's gradient all-reduce would hang.
    steps = max(1, math.ceil((len(arrays["x_train"]) // world) / config["batch_size"]))
    rng = np.random.default_rng(config["seed"] + 7919 * rank)

    best_loss, best_epoch, best_state, stale, history, epoch = math.inf, 0, None, 0, [], 0
    for epoch in range(1, config["epochs"] + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        for rows in np.array_split(rng.permutation(len(x_shard)), steps):
            index = torch.from_numpy(rows).to(device)
            out = model(x_shard[index])
            loss = loss_fn(out if classification else out[:, 0], y_shard[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(rows)
        net.eval()
        with torch.no_grad():
            out = net(x_val)
            if classification:
                val_loss = nn.functional.cross_entropy(out, y_val)
                val_accuracy = (out.argmax(dim=1) == y_val).float().mean()
            else:
                pred = out[:, 0] * target_std + config["arch"]["target_mean"]
                val_loss, val_accuracy = torch.mean((pred - y_val) ** 2), torch.zeros((), device=device)
        stats = torch.stack([loss_sum, torch.tensor(float(len(x_shard)), device=device), val_loss, val_accuracy])
        if world > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)  # sums: every rank then takes the same early-stopping decision
            stats[2:] /= world
        train_loss = float(stats[0] / stats[1]) * (1.0 if classification else target_std ** 2)
        metrics = {"train_loss": train_loss, "val_loss": float(stats[2])}
        if classification:
            metrics["val_accuracy"] = float(stats[3])
        else:
            metrics["val_rmse"] = math.sqrt(metrics["val_loss"])
        if metrics["val_loss"] < best_loss:
            best_loss, best_epoch, stale = metrics["val_loss"], epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        payload = {**metrics, "current_loss": train_loss, "best_loss": best_loss, "learning_rate": config["lr"]}
        history.append({"epoch": epoch, **payload})
        if rank == 0:
            report_safely(config["progress"], epoch, payload)
        if config["early_stopping"] and stale >= config["patience"]:
            break

    final_state = best_state if config["early_stopping"] and best_state is not None else \
        {k: v.detach().cpu() for k, v in net.state_dict().items()}
    summary = {"epochs_run": epoch, "best_epoch": best_epoch or epoch}
    if rank != 0:
        ray.train.report(summary, checkpoint=None)  # every rank must report the same number of times
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(final_state, Path(tmp) / STATE_FILE)
        (Path(tmp) / TRAIN_FILE).write_text(json.dumps({**summary, "history": history}))
        ray.train.report(summary, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def fit_torch_on_ray(trainer, data, batch_size: int = 64, progress=None, seed: int | None = None) -> FitOutcome:
    """Train ``TabularMLP`` with Ray Train's TorchTrainer; the driver must have called ``ray.init``.

    Workers: 1 for strategy="single", else ``num_workers`` capped at the CPUs (GPUs with use_gpu)
    free when it starts and the number of training rows, so the run cannot wait forever for resources.
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from assets.training.progress import NullProgress

    classification = trainer.model_type == "classification"
    hp = trainer.hyperparameters
    x_train = data.x_train[data.feature_columns].to_numpy(dtype=np.float32)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0).astype(np.float32)
    classes = class_labels(data) if classification else []
    if classification:
        index = {label: i for i, label in enumerate(classes)}
        y_train = data.y_train.map(index).to_numpy(dtype=np.int64)
        y_val = data.y_val.map(index).to_numpy(dtype=np.int64)
        target_mean, target_std = 0.0, 1.0
    else:
        y_raw = data.y_train.to_numpy(dtype=np.float32)
        target_mean, target_std = float(y_raw.mean()), float(y_raw.std()) or 1.0
        y_train = ((y_raw - target_mean) / target_std).astype(np.float32)
        y_val = data.y_val.to_numpy(dtype=np.float32)
    arch = {"n_features": len(data.feature_columns), "hidden": [int(h) for h in hp.get("hidden_sizes", [64, 32])],
            "n_outputs": len(classes) if classification else 1, "dropout": float(hp.get("dropout", 0.0)),
            "task": trainer.model_type, "target_mean": target_mean, "target_std": target_std}
    arrays = {"x_train": (x_train - mean) / std, "y_train": y_train, "y_val": y_val,
              "x_val": (data.x_val[data.feature_columns].to_numpy(dtype=np.float32) - mean) / std}

    from resources.infra.ray_capacity import workers_now

    # one CPU (or GPU) each, as many as are free now: a worker group sized from the cluster's total waits for what others hold
    workers = 1 if trainer.strategy == "single" else min(workers_now(trainer.num_workers, "GPU" if trainer.use_gpu else "CPU"),
                                                         len(x_train))
    config = {"data": ray.put(arrays), "arch": arch, "epochs": trainer.epochs, "lr": trainer.learning_rate,
              "weight_decay": float(hp.get("weight_decay", 0.0)), "batch_size": int(batch_size),
              "early_stopping": trainer.early_stopping, "patience": trainer.patience,
              "seed": int(hp.get("random_state", seed if seed is not None else 0)),
              "progress": progress or NullProgress()}
    storage = tempfile.mkdtemp(prefix="mlservice-ray-train-")
    try:
        result = TorchTrainer(
            _train_loop, train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=trainer.use_gpu),
            run_config=RunConfig(name=f"tabular-mlp-{uuid.uuid4().hex[:8]}", storage_path=storage),
        ).fit()
        with result.checkpoint.as_directory() as directory:
            state_dict = torch.load(Path(directory) / STATE_FILE, weights_only=True)
            info = json.loads((Path(directory) / TRAIN_FILE).read_text())
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    state = TorchModelState(state_dict, arch, list(data.feature_columns), classes, mean.tolist(), std.tolist())
    return FitOutcome(state, evaluate(state, data), info["epochs_run"], info["best_epoch"], info["history"], "pytorch",
                      resources={"workers": workers, "gpus": workers if trainer.use_gpu else 0})


def log_torch_model(state: TorchModelState, name: str = "model", signature=None, input_example=None):
    """Log to the active MLflow run as a models-from-code pyfunc (weights + JSON, no pickle)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        state_dir = state.save(Path(tmp) / "state")
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(PYFUNC_FILE), artifacts={"state": str(state_dir)},
            pip_requirements=PIP_REQUIREMENTS, signature=signature, input_example=input_example,
        )
