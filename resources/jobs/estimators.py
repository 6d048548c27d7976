"""The scikit-learn estimators a ``TrainerSpec`` can name, and how iterative ones train per epoch.

* ``TrainerSpec.estimator`` picks an entry of ``ESTIMATORS`` (default per model type in
  ``DEFAULT_ESTIMATOR``); ``TrainerSpec.hyperparameters`` become constructor kwargs, checked
  against ``get_params()`` of the estimator.
* Scale-sensitive estimators (``SCALED``) are returned as ``Pipeline(StandardScaler, estimator)``;
  hyperparameters always apply to the final step (``final_estimator(model)``).
* ``ITERATIVE`` estimators train epoch by epoch (``EpochRunner``):
  - sgd / mlp: ``partial_fit`` over shuffled mini-batches of ``batch_size`` rows (``classes=``
    for classifiers). ``TrainerSpec.learning_rate`` is ``eta0`` (sgd, with a "constant" schedule
    unless ``learning_rate`` is given) / ``learning_rate_init`` (mlp) unless the hyperparameters
    set those. SGD classifiers default to ``loss="log_loss"`` so they have probabilities.
  - gradient_boosting: ``warm_start=True``, growing ``n_estimators`` per epoch. Choice: the total
    ``n_estimators`` (hyperparameter, default 100) is always the target; ``TrainerSpec.epochs``
    sets the granularity: step = ceil(total / min(epochs, total)), epochs run = ceil(total / step)
    (so at most ``TrainerSpec.epochs``). ``TrainerSpec.learning_rate`` is NOT the boosting
    shrinkage: that is the ``learning_rate`` hyperparameter.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from resources.jobs.limits import PLATFORM_DEFAULTS, hyperparameter_problems, layer_problems
from resources.vocabulary import MODEL_TYPES, TRAINABLE_FRAMEWORKS

ESTIMATORS: dict[str, dict[str, str]] = {
    "random_forest": {"classification": "sklearn.ensemble:RandomForestClassifier",
                      "regression": "sklearn.ensemble:RandomForestRegressor"},
    "extra_trees": {"classification": "sklearn.ensemble:ExtraTreesClassifier",
                    "regression": "sklearn.ensemble:ExtraTreesRegressor"},
    "gradient_boosting": {"classification": "sklearn.ensemble:GradientBoostingClassifier",
                          "regression": "sklearn.ensemble:GradientBoostingRegressor"},
    "hist_gradient_boosting": {"classification": "sklearn.ensemble:HistGradientBoostingClassifier",
                               "regression": "sklearn.ensemble:HistGradientBoostingRegressor"},
    "logistic_regression": {"classification": "sklearn.linear_model:LogisticRegression"},
    "linear_regression": {"regression": "sklearn.linear_model:LinearRegression"},
    "ridge": {"regression": "sklearn.linear_model:Ridge"},
    "sgd": {"classification": "sklearn.linear_model:SGDClassifier",
            "regression": "sklearn.linear_model:SGDRegressor"},
    "mlp": {"classification": "sklearn.neural_network:MLPClassifier",
            "regression": "sklearn.neural_network:MLPRegressor"},
    "knn": {"classification": "sklearn.neighbors:KNeighborsClassifier",
            "regression": "sklearn.neighbors:KNeighborsRegressor"},
}
DEFAULT_ESTIMATOR = {"classification": "random_forest", "regression": "random_forest"}
ITERATIVE = frozenset({"sgd", "mlp", "gradient_boosting"})
SCALED = frozenset({"sgd", "mlp", "knn", "logistic_regression"})
# LogisticRegression's n_jobs has no effect since scikit-learn 1.8 (FutureWarning).
_NO_N_JOBS = frozenset({"logistic_regression"})
TORCH_ESTIMATORS = (None, "mlp", "tabular_mlp")
TORCH_HYPERPARAMETERS = {"hidden_sizes": "list of positive ints (bounds: resources/jobs/limits.py), default [64, 32]",
                         "dropout": "float in [0, 1), default 0.0",
                         "weight_decay": "float >= 0 (Adam), default 0.0",
                         "random_state": "int seed, default 0"}


def estimator_name(trainer) -> str:
    return trainer.estimator or DEFAULT_ESTIMATOR.get(trainer.model_type, "random_forest")


def estimator_class(name: str, model_type: str):
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; known estimators: {sorted(ESTIMATORS)}")
    if model_type not in ESTIMATORS[name]:
        raise ValueError(f"estimator {name!r} does not support {model_type}; "
                         f"it supports: {sorted(ESTIMATORS[name])}")
    module, attr = ESTIMATORS[name][model_type].split(":")
    return getattr(importlib.import_module(module), attr)


def _kwargs(trainer, name: str, n_jobs: int | None, seed: int | None) -> dict[str, Any]:
    """Constructor kwargs: platform defaults, then the tenant's hyperparameters, then n_jobs."""
    cls = estimator_class(name, trainer.model_type)
    allowed = set(cls().get_params())
    unknown = sorted(set(trainer.hyperparameters) - allowed)
    if unknown:
        raise ValueError(f"unknown hyperparameters for {name!r}: {unknown}; allowed: {sorted(allowed)}")
    kwargs: dict[str, Any] = {}
    if seed is not None and "random_state" in allowed:
        kwargs["random_state"] = seed
    if name == "sgd":
        kwargs.update(learning_rate="constant", eta0=trainer.learning_rate)
        if trainer.model_type == "classification":
            kwargs["loss"] = "log_loss"
    elif name == "mlp":
        kwargs["learning_rate_init"] = trainer.learning_rate
    kwargs.update(PLATFORM_DEFAULTS.get(name, {}))  # bounded defaults (resources/jobs/limits.py)
    kwargs.update(trainer.hyperparameters)
    if name == "gradient_boosting":
        kwargs["warm_start"] = True
    if n_jobs is not None and "n_jobs" in allowed and name not in _NO_N_JOBS:
        kwargs["n_jobs"] = n_jobs  # the platform reserved these CPUs: it wins over a hyperparameter
    return kwargs


def build_estimator(trainer, n_jobs: int | None = None, seed: int | None = None):
    """A fresh, unfitted estimator (or scaler pipeline) for ``trainer``; ValueError on bad specs."""
    name = estimator_name(trainer)
    estimator = estimator_class(name, trainer.model_type)(**_kwargs(trainer, name, n_jobs, seed))
    if name in SCALED:
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scaler", StandardScaler()), (name, estimator)])
    return estimator


def final_estimator(model):
    return model[-1] if hasattr(model, "steps") else model


def is_iterative(trainer) -> bool:
    return estimator_name(trainer) in ITERATIVE


def boosting_schedule(total: int, epochs: int) -> list[int]:
    """``n_estimators`` after each epoch of gradient_boosting (see module docstring)."""
    step = math.ceil(total / max(1, min(epochs, total)))
    return [min(total, step * epoch) for epoch in range(1, math.ceil(total / step) + 1)]


def validate_trainer(trainer) -> list[str]:
    """Human-readable problems with ``trainer``, found without fitting anything; hyperparameters
    beyond the bounds of ``resources/jobs/limits.py`` (effective values, defaults included) among them."""
    if trainer.framework not in TRAINABLE_FRAMEWORKS:
        return [f"framework {trainer.framework!r} is not supported; use one of {list(TRAINABLE_FRAMEWORKS)}"]
    if trainer.model_type not in MODEL_TYPES:
        return [f"model_type {trainer.model_type!r} is not supported; use one of {list(MODEL_TYPES)}"]
    if trainer.framework == "pytorch":
        return _validate_torch(trainer)
    name = estimator_name(trainer)
    try:
        estimator = final_estimator(build_estimator(trainer))
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if hasattr(estimator, "_validate_params"):  # scikit-learn's own type/range checks, no fit
        try:
            estimator._validate_params()
        except (TypeError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
    problems.extend(hyperparameter_problems(name, estimator.get_params()))
    if name == "mlp" and estimator.get_params().get("solver") == "lbfgs":
        problems.append("mlp with solver='lbfgs' cannot be trained epoch by epoch; use 'adam' or 'sgd'")
    return problems


def _validate_torch(trainer) -> list[str]:
    problems = []
    if trainer.estimator not in TORCH_ESTIMATORS:
        problems.append(f"pytorch trains a tabular MLP: estimator must be empty, 'mlp' or 'tabular_mlp', "
                        f"not {trainer.estimator!r}")
    unknown = sorted(set(trainer.hyperparameters) - set(TORCH_HYPERPARAMETERS))
    if unknown:
        problems.append(f"unknown hyperparameters for pytorch: {unknown}; allowed: {sorted(TORCH_HYPERPARAMETERS)}")
    hp = trainer.hyperparameters
    problems.extend(layer_problems("hidden_sizes", hp.get("hidden_sizes", [64, 32])))
    dropout = hp.get("dropout", 0.0)
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        problems.append(f"dropout must be a number in [0, 1), not {dropout!r}")
    weight_decay = hp.get("weight_decay", 0.0)
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        problems.append(f"weight_decay must be a number >= 0, not {weight_decay!r}")
    return problems
