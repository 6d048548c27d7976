"""Search spaces as the API states them, checked and turned into Ray Tune domains.

A search space maps a parameter name to a spec::

    {"n_estimators": {"type": "choice", "values": [50, 100]},
     "max_depth": {"type": "randint", "min": 2, "max": 8},          # max INCLUSIVE
     "alpha": {"type": "loguniform", "min": 1e-5, "max": 1e-1},
     "learning_rate": {"type": "uniform", "min": 0.01, "max": 0.3},
     "subsample": {"type": "quniform", "min": 0.5, "max": 1.0, "q": 0.1}}

Problems are reported all at once through ``InvalidRequest`` with
``details={"search_space": {param: problem}}`` (several problems of one parameter are joined
with "; "). A problem of the whole space (empty space, grid too large) is reported as
``details={"search_space": "<problem>"}``.

``validate_tuning`` checks a whole ``TuningConfig`` (space, objective metric, grid budget, the
trainer with a sample point applied, every value the space can give a parameter against its bound
in ``resources/jobs/limits.py``) and returns sentences; ``trial_trainer`` applies one point of
the space to the trainer: a key that is a tunable ``TrainerSpec`` field (``TUNABLE_TRAINER_FIELDS``)
sets that field, any other key is an estimator hyperparameter. ``learning_rate`` (a training
setting in the API's reference, tuned beside hyperparameters) is the hyperparameter of the
estimators that have one (gradient boosting's shrinkage; sgd's and mlp's schedule names), else the
trainer's field: it drives sgd (eta0), mlp (learning_rate_init) and torch, and has no effect on
estimators without a learning rate (random forest, ...), which the job's status reports
(``ignored_search_space``) rather than refusing the space.

Nothing here imports Ray at module level (``to_tune_space`` does, inside), so the API can
validate requests cheaply.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from resources.errors import InvalidRequest
from resources.jobs.limits import MAX_GRID_POINTS, hyperparameter_problems, range_ends

if TYPE_CHECKING:
    from resources.jobs.specs import TrainerSpec, TuningConfig

OBJECTIVE_METRICS = {
    "classification": ("val_accuracy", "val_loss", "train_accuracy", "train_loss"),
    "regression": ("val_loss", "val_rmse", "val_r2", "train_loss"),
}
TUNABLE_TRAINER_FIELDS = frozenset({"epochs", "learning_rate", "batch_size", "early_stopping", "patience"})
LEARNING_RATE_ESTIMATORS = frozenset({"sgd", "mlp"})  # driven by the trainer's learning_rate
LEARNING_RATE_HYPERPARAMETER = frozenset({"gradient_boosting", "hist_gradient_boosting"})  # their own learning_rate
ALGORITHMS = ("bayesian", "random", "grid")

_KEYS = {
    "choice": {"type", "values"},
    "randint": {"type", "min", "max"},
    "uniform": {"type", "min", "max"},
    "loguniform": {"type", "min", "max"},
    "quniform": {"type", "min", "max", "q"},
}
GRID_TYPES = ("choice", "randint")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_json_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)) or _is_int(value):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _param_problems(spec: Any, algorithm: str) -> list[str]:
    if not isinstance(spec, dict):
        return [f"must be an object with a 'type', got {type(spec).__name__}"]
    kind = spec.get("type")
    if kind not in _KEYS:
        return [f"unknown type {kind!r}; expected one of {', '.join(_KEYS)}"]
    problems: list[str] = []
    unexpected = sorted(str(k) for k in set(spec) - _KEYS[kind])
    if unexpected:
        problems.append(f"unexpected keys {unexpected} for type {kind!r}")
    if algorithm == "grid" and kind not in GRID_TYPES:
        problems.append("grid search needs choice or randint")
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            problems.append("choice needs a non-empty list 'values'")
        elif not all(_is_json_scalar(v) for v in values):
            problems.append("choice values must be JSON scalars (string, number, boolean or null)")
        return problems
    low, high = spec.get("min"), spec.get("max")
    if kind == "randint":
        if not (_is_int(low) and _is_int(high)):
            problems.append("randint needs integer 'min' and 'max'")
        elif low > high:
            problems.append(f"randint needs min <= max (max is inclusive), got {low} > {high}")
        return problems
    if not (_is_number(low) and _is_number(high)):
        problems.append(f"{kind} needs numeric 'min' and 'max'")
    elif low >= high:
        problems.append(f"{kind} needs min < max, got {low} >= {high}")
    elif kind == "loguniform" and low <= 0:
        problems.append(f"loguniform needs min > 0, got {low}")
    if kind == "quniform":
        q = spec.get("q")
        if not _is_number(q) or q <= 0:
            problems.append("quniform needs a number 'q' > 0")
    return problems


def _points(spec: dict) -> int:
    if spec["type"] == "choice":
        return len(spec["values"])
    if spec["type"] == "randint":
        return spec["max"] - spec["min"] + 1
    raise ValueError(f"type {spec['type']!r} has no grid; grid search needs choice or randint")


def grid_size(space: dict) -> int:
    """Number of points (trials) of the grid over a space of choice/randint parameters."""
    size = 1
    for spec in space.values():
        size *= _points(spec)
    return size


def search_space_problems(space: Any, algorithm: str) -> dict[str, str] | str:
    """The problems of ``space`` (empty dict / empty string when there are none).

    Per-parameter problems come back as ``{param: problem}``; a problem of the whole space
    as a string.
    """
    if algorithm not in ALGORITHMS:
        return f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}"
    if not isinstance(space, dict) or not space:
        return "the search space must name at least one parameter"
    problems: dict[str, str] = {}
    for name, spec in space.items():
        found = _param_problems(spec, algorithm)
        if not isinstance(name, str) or not name.strip():
            found.insert(0, "parameter names must be non-empty strings")
        if found:
            problems[str(name)] = "; ".join(found)
    if problems:
        return problems
    if algorithm == "grid":
        size = grid_size(space)
        if size > MAX_GRID_POINTS:
            return f"the grid has {size} points; at most {MAX_GRID_POINTS} are allowed"
    return {}


def validate_search_space(space: dict, algorithm: str) -> None:
    """Raise ``InvalidRequest`` listing every problem of ``space`` for ``algorithm``."""
    problems = search_space_problems(space, algorithm)
    if not problems:
        return
    if isinstance(problems, str):
        message = f"invalid search space: {problems}"
    else:
        message = "invalid search space: " + "; ".join(f"{k}: {v}" for k, v in problems.items())
    raise InvalidRequest(message, {"search_space": problems})


def to_tune_space(space: dict, algorithm: str) -> dict[str, Any]:
    """Ray Tune domains for a valid ``space`` (validated again here).

    ``randint`` ``max`` is inclusive as the API states it: ``tune.randint(min, max + 1)``; on a
    grid it expands to every integer ``min..max``.
    """
    from ray import tune

    validate_search_space(space, algorithm)
    domains: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if algorithm == "grid":
            if kind == "choice":
                domains[name] = tune.grid_search(list(spec["values"]))
            else:
                domains[name] = tune.grid_search(list(range(spec["min"], spec["max"] + 1)))
        elif kind == "choice":
            domains[name] = tune.choice(list(spec["values"]))
        elif kind == "randint":
            domains[name] = tune.randint(spec["min"], spec["max"] + 1)
        elif kind == "uniform":
            domains[name] = tune.uniform(spec["min"], spec["max"])
        elif kind == "loguniform":
            domains[name] = tune.loguniform(spec["min"], spec["max"])
        else:
            domains[name] = tune.quniform(spec["min"], spec["max"], spec["q"])
    return domains


def _plain(value: Any) -> Any:
    """Python scalars for values that Tune or Optuna hand over as numpy scalars."""
    return value.item() if hasattr(value, "item") and callable(value.item) else value


def _is_trainer_field(key: str, value: Any, fields: dict) -> bool:
    if key not in TUNABLE_TRAINER_FIELDS:
        return False
    if key == "learning_rate":  # boosting's shrinkage and sgd/mlp schedule names are hyperparameters
        return fields.get("estimator") not in LEARNING_RATE_HYPERPARAMETER and _is_number(value)
    return True


def ignored_search_space(space: dict[str, Any], estimator: str | None, framework: str = "sklearn") -> dict[str, str]:
    """Parameters of a search space that have no effect on the estimator (reported in the job's status)."""
    name = estimator or "random_forest"
    if "learning_rate" in space and framework == "sklearn" and name not in LEARNING_RATE_ESTIMATORS | LEARNING_RATE_HYPERPARAMETER:
        return {"search_space.learning_rate": f"{name} has no learning rate: the trials' values have no effect on it"}
    return {}


def _trial_values(fields: dict, config: dict) -> dict:
    """TrainerSpec field values (``fields``) with one point of the space applied."""
    values = {**fields, "hyperparameters": dict(fields.get("hyperparameters") or {})}
    for key, raw in config.items():
        value = _plain(raw)
        if _is_trainer_field(key, value, fields):
            values[key] = value
        else:
            values["hyperparameters"][key] = value
    return values


def trial_trainer(trainer: TrainerSpec, config: dict) -> TrainerSpec:
    """``trainer`` with one trial's config applied (TrainerSpec fields, else hyperparameters)."""
    return type(trainer)(**_trial_values(trainer.model_dump(), config))


def validate_tuning(tuning: TuningConfig) -> list[str]:
    """Every problem of a tuning request, as sentences the API can answer 400 with."""
    from resources.jobs.specs import TrainerSpec

    problems: list[str] = []
    space, trainer = tuning.search_space, tuning.trainer
    space_problems = search_space_problems(space, tuning.algorithm)
    if isinstance(space_problems, str):
        problems.append(f"search_space: {space_problems}")
    else:
        problems.extend(f"search_space.{name}: {p}" for name, p in space_problems.items())
    if trainer.framework != "sklearn":
        problems.append(f"trainer.framework: tuning supports 'sklearn' trainers, not {trainer.framework!r}")
    allowed = OBJECTIVE_METRICS.get(trainer.model_type, ())
    if tuning.objective_metric not in allowed:
        problems.append(f"objective_metric: {tuning.objective_metric!r} is not produced by {trainer.model_type} "
                        f"models; use one of {', '.join(allowed)}")
    fixed = sorted(set(space) & (set(TrainerSpec.model_fields) - TUNABLE_TRAINER_FIELDS))
    problems.extend(f"search_space.{name}: trainer setting {name!r} cannot be tuned" for name in fixed)
    if space_problems or fixed or trainer.framework != "sklearn":
        return problems
    if tuning.algorithm == "grid" and grid_size(space) > tuning.num_trials:
        problems.append(f"num_trials: the grid has {grid_size(space)} points but num_trials is "
                        f"{tuning.num_trials}; raise num_trials or shrink the grid")
    for name in sorted(set(space) & TUNABLE_TRAINER_FIELDS):  # every end of a trainer field's range
        for value in range_ends(space[name]):
            try:
                trial_trainer(trainer, {name: value})
            except ValueError as exc:  # pydantic's ValidationError
                problems.append(f"search_space.{name}: {value!r} is not a valid {name}: {exc.errors()[0]['msg']}"
                                if hasattr(exc, "errors") else f"search_space.{name}: {exc}")
    if not problems:
        from resources.jobs.estimators import validate_trainer

        sample = {name: spec["values"][0] if spec["type"] == "choice" else spec["min"] for name, spec in space.items()}
        problems.extend(f"trainer: {p}" for p in validate_trainer(trial_trainer(trainer, sample)))
        if not problems:
            problems.extend(_bound_problems(trainer, space, sample))
    return problems


def _bound_problems(trainer: TrainerSpec, space: dict, sample: dict) -> list[str]:
    """Every value the space can give an estimator hyperparameter (each choice, both ends of a
    range), with the sample point for the others, checked against the bounds."""
    from resources.jobs.estimators import build_estimator, estimator_name, final_estimator

    name, fields = estimator_name(trainer), trainer.model_dump()
    params = final_estimator(build_estimator(trial_trainer(trainer, sample))).get_params()
    found: dict[str, None] = {}
    for key, spec in space.items():
        for value in range_ends(spec):
            if not _is_trainer_field(key, value, fields):
                found.update(dict.fromkeys(f"search_space.{key}: {p}" for p in hyperparameter_problems(name, {**params, key: value})))
    return list(found)
