"""Bounds on what one training or tuning job can cost: the table the README quotes.

A request past a bound is answered 400 ``INVALID_REQUEST`` naming the setting and its bound,
before anything is stored or launched. The same checks run again in the assets (the Dagster
configs carry the same field bounds; the assets call ``validate_trainer`` / ``validate_tuning``),
so a run launched from the Dagster UI is bounded too. Every run the platform launches also carries
``dagster/max_runtime`` (``resources.vocabulary``): the daemon's run monitoring fails a run past
``MLSERVICE_MAX_RUN_MINUTES``.

Trainer settings (the API's ``training_config`` / ``data_config.batch_size``, ``TrainerSpec``):

  ==================================  =======
  setting                             bound
  ==================================  =======
  epochs                              5000
  batch_size                          65536
  num_workers                         16
  num_trials (tuning)                 200 (a grid has one trial per point: at most 200 points)
  max_concurrent_trials (tuning)      16
  ==================================  =======

Hyperparameters (``HYPERPARAMETER_BOUNDS``; upper bounds, sklearn checks the lower ends):

  ======================  =====================================================================
  estimator               bounds
  ======================  =====================================================================
  random_forest,          n_estimators 1000, max_depth 32, max_leaf_nodes 65536
  extra_trees
  gradient_boosting       n_estimators 1000, max_depth 16, max_leaf_nodes 4096
  hist_gradient_boosting  max_iter 1000, max_depth 32, max_leaf_nodes 4096
  logistic_regression,    max_iter 10000
  ridge, sgd
  mlp                     max_iter 10000, max_fun 100000; hidden_layer_sizes: at most 8 layers,
                          each at most 1024 wide, 4096 units in all
  knn                     n_neighbors 1000
  pytorch (tabular MLP)   hidden_sizes: at most 8 layers, each at most 1024 wide, 4096 units
  ======================  =====================================================================

Decisions:
* Trees need a size bound. scikit-learn's forests default to ``max_depth=None`` (full trees, as
  many leaves as rows): the platform's default for random_forest / extra_trees is ``max_depth=32``
  (``PLATFORM_DEFAULTS``; a tree shallower than that is identical), and a tree estimator whose
  ``max_depth`` and ``max_leaf_nodes`` are both None is refused.
* ``min_samples_split`` / ``min_samples_leaf`` are not bounded: their lowest legal values are the
  defaults (full growth), which the depth / leaf bounds above already limit.
* Search spaces: every value a parameter can take (each choice, both ends of a range; a quniform
  end rounded outward to a multiple of q) must lie within the bound of that parameter. A fine q is
  fine for random/bayesian; the grid is bounded by ``num_trials``.
"""

from __future__ import annotations

import math
from typing import Any

MAX_EPOCHS = 5000
MAX_BATCH_SIZE = 65536
MAX_SCORING_BATCH_SIZE = 100_000  # rows per batch of a batch scoring job (an actor holds a few batches)
MAX_KEEP_COLUMNS = 1000  # input columns a batch scoring job copies to its output
MAX_WORKERS = 16
MAX_TRIALS = 200
MAX_CONCURRENT_TRIALS = 16
MAX_GRID_POINTS = MAX_TRIALS
MLP_MAX_LAYERS, MLP_MAX_WIDTH, MLP_MAX_UNITS = 8, 1024, 4096

_FOREST = {"n_estimators": 1000, "max_depth": 32, "max_leaf_nodes": 65536}
HYPERPARAMETER_BOUNDS: dict[str, dict[str, float]] = {
    "random_forest": _FOREST,
    "extra_trees": _FOREST,
    "gradient_boosting": {"n_estimators": 1000, "max_depth": 16, "max_leaf_nodes": 4096},
    "hist_gradient_boosting": {"max_iter": 1000, "max_depth": 32, "max_leaf_nodes": 4096},
    "logistic_regression": {"max_iter": 10000},
    "ridge": {"max_iter": 10000},
    "sgd": {"max_iter": 10000},
    "mlp": {"max_iter": 10000, "max_fun": 100000},
    "knn": {"n_neighbors": 1000},
    "linear_regression": {},
}
PLATFORM_DEFAULTS: dict[str, dict[str, Any]] = {"random_forest": {"max_depth": 32}, "extra_trees": {"max_depth": 32}}
TREE_ESTIMATORS = frozenset({"random_forest", "extra_trees", "gradient_boosting", "hist_gradient_boosting"})
LAYER_PARAMETERS = {"mlp": "hidden_layer_sizes"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def layer_problems(name: str, sizes: Any) -> list[str]:
    """Problems of a list of hidden-layer widths (sklearn's hidden_layer_sizes, torch's hidden_sizes)."""
    if not (isinstance(sizes, (list, tuple)) and sizes
            and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in sizes)):
        return [f"{name} must be a non-empty list of positive ints, not {sizes!r}"]
    problems = []
    if len(sizes) > MLP_MAX_LAYERS:
        problems.append(f"{name} has {len(sizes)} layers; the bound is {MLP_MAX_LAYERS}")
    if max(sizes) > MLP_MAX_WIDTH:
        problems.append(f"{name} has a layer of {max(sizes)} units; the bound is {MLP_MAX_WIDTH} per layer")
    if sum(sizes) > MLP_MAX_UNITS:
        problems.append(f"{name} has {sum(sizes)} hidden units in all; the bound is {MLP_MAX_UNITS}")
    return problems


def value_problem(estimator: str, parameter: str, value: Any) -> str | None:
    """Why ``value`` of one hyperparameter is beyond its bound (None when it is within)."""
    if parameter == LAYER_PARAMETERS.get(estimator):  # sklearn also takes one int: one layer
        problems = layer_problems(parameter, [value] if _is_number(value) else value)
        return f"{estimator}: " + "; ".join(problems) if problems else None
    bound = HYPERPARAMETER_BOUNDS.get(estimator, {}).get(parameter)
    if bound is not None and _is_number(value) and not value <= bound:
        return f"{estimator}: {parameter}={value!r} is above the bound {bound}"
    return None


def hyperparameter_problems(estimator: str, params: dict[str, Any]) -> list[str]:
    """Problems of an estimator's effective constructor parameters (defaults included)."""
    problems = [p for name, value in params.items() if (p := value_problem(estimator, name, value))]
    if estimator in TREE_ESTIMATORS and params.get("max_depth") is None and params.get("max_leaf_nodes") is None:
        bounds = HYPERPARAMETER_BOUNDS[estimator]
        problems.append(f"{estimator}: max_depth and max_leaf_nodes are both None, so trees grow without bound; "
                        f"set max_depth <= {bounds['max_depth']} or max_leaf_nodes <= {bounds['max_leaf_nodes']}")
    return problems


def range_ends(spec: dict) -> list[Any]:
    """Every value a search-space parameter can reach at its extremes (see the module docstring)."""
    if spec["type"] == "choice":
        return list(spec["values"])
    low, high = spec["min"], spec["max"]
    if spec["type"] == "quniform":
        q = spec["q"]
        return [math.floor(low / q) * q, math.ceil(high / q) * q]
    return [low, high]


# -- deployments (Ray Serve) ---------------------------------------------------------------------
MAX_REPLICAS = 64  # per deployment version (num_replicas, autoscaling max_replicas)
MAX_REPLICA_CPUS = 64
MAX_REPLICA_MEMORY_GB = 512
MAX_REPLICA_GPUS = 8
DEFAULT_REPLICA_CPUS = 0.25  # a replica of a tabular model uses a fraction of a core; 2 fit next to the platform on 2 cores
