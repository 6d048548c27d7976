"""Per-prediction feature contributions for the online prediction API (``return_explanation``).

Every explanation is additive by construction: ``base_value + sum(contributions) == output`` to
floating-point precision, where ``output`` is exactly the number the method explains. Which number
that is depends on the method, and the method says so (``Explanation.method`` and
``Explanation.output_space``):

``linear_exact`` (regressors with ``coef_``/``intercept_``, also as the last step of a Pipeline)
    The prediction is ``intercept + coef . x`` in the final estimator's input space (after the
    Pipeline's preprocessing). Contribution of feature j is ``coef_j * (x_j - mean_j)`` with
    ``mean`` the background mean in that same space; ``base_value = intercept + coef . mean``.
    Exact; output_space ``"prediction"``.

``linear_exact_logit`` (linear classifiers: LogisticRegression, SGDClassifier, LinearSVC, ...)
    The same decomposition of the DECISION FUNCTION, not of the probability: a probability is
    not additive in the features, its log-odds are. So for classifiers these contributions are
    in LOG-ODDS units (``output_space="log_odds"``, checked: sigmoid of the decision value equals
    the model's probability). Binary models explain the log-odds of the positive class
    ``classes_[1]`` whatever the predicted class, so signs read the same for every row (``+``
    pushes towards ``classes_[1]``). Multiclass models explain the predicted class's row of
    ``coef_`` and its decision value (``output_space="logit"``: a softmax logit, i.e. log-odds
    only relative to the other classes). A linear classifier without probabilities (hinge loss,
    LinearSVC) reports ``output_space="decision_function"``: margin units.

``linear_exact_zero_baseline`` / ``linear_exact_logit_zero_baseline``
    As above when no background is given: the reference point is the origin of the final
    estimator's input space (for a StandardScaler pipeline that is the training mean), so
    ``base_value = intercept`` and contributions are ``coef_j * x_j``.

``shapley_exact`` (any other model, n_features <= ``max_exact_features``, default 10)
    Interventional Shapley values over a background set B: ``v(S) = mean_b f(x_S, b_notS)``,
    enumerating all 2^n coalitions in ONE batched predict call. ``f`` is the probability of the
    predicted class (argmax of ``predict_proba``, as the serving predictor decides it) for
    classifiers, the prediction for regressors; ``base_value = mean_b f(b)`` and
    ``output = f(x)``. Works on the raw input features (the whole Pipeline is the function).

``shapley_sampling`` (more features)
    Permutation-sampling Shapley (Strumbelj & Kononenko) with antithetic permutation pairs
    (each permutation and its reverse). Every permutation is walked from each background row b
    to x, one feature at a time, and the walk's increments are credited to the features; each
    walk telescopes to ``f(x) - f(b)``, so the contributions sum to ``f(x) - mean_b f(b)`` exactly
    (efficiency holds by construction, not in expectation). The individual values are estimates
    whose error shrinks as ``n_samples`` grows.

Non-linear models need a background (there is no honest "zero" reference for a tree); it is
capped at ``max_background`` rows (default 50) by a seeded sample without replacement, so a
result is deterministic for a given seed. Nothing is imported from scikit-learn: models are
duck-typed (``steps`` for Pipelines, ``coef_``/``intercept_`` for linear models).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

EXACT_MAX_FEATURES = 10
MAX_BACKGROUND_ROWS = 50
MAX_BATCH_ROWS = 65_536  # rows per predict call in permutation sampling

MODEL_TYPES = ("classification", "regression")


@dataclass
class Explanation:
    method: str
    base_value: float
    contributions: dict[str, float]
    output: float
    target: str
    # What ``output`` (and so every contribution) is measured in: "prediction", "probability",
    # "log_odds", "logit" or "decision_function".
    output_space: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "output": float(self.output),
            "output_space": self.output_space,
            "base_value": float(self.base_value),
            "contributions": {str(k): float(v) for k, v in self.contributions.items()},
        }


def explain(
    model: Any,
    row: pd.DataFrame,
    *,
    model_type: str,
    classes: list | None,
    background: pd.DataFrame | None,
    n_samples: int = 256,
    seed: int = 0,
    max_background: int = MAX_BACKGROUND_ROWS,
    max_exact_features: int = EXACT_MAX_FEATURES,
    max_cost: int | None = None,
) -> Explanation:
    """Explain one prediction of ``model`` for ``row`` (a one-row DataFrame, features in order).

    ``classes`` names the columns of ``predict_proba`` in order (the registry's class list); when
    None the model's ``classes_`` are used. ``background`` is a sample of inputs with the same
    columns (extra columns are ignored); it is required for non-linear models. ``n_samples`` is
    the number of permutations for ``shapley_sampling`` (rounded up to an even number for the
    antithetic pairs); ``seed`` fixes the background sample and the permutations. Setting
    ``max_exact_features=0`` forces sampling. ``max_cost`` bounds a Shapley explanation's
    coalitions x background rows. Raises ValueError for inputs it cannot explain (or past the bound).
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if n_samples < 1:
        raise ValueError("n_samples must be at least 1")
    if max_background < 1:
        raise ValueError("max_background must be at least 1")
    row = _check_row(row)
    if background is not None:
        background = _check_background(background, row)

    linear = _explain_linear(model, row, model_type, classes, background)
    if linear is not None:
        return linear

    if background is None:
        raise ValueError(
            "a background sample is required to explain a non-linear model "
            f"({type(model).__name__}); pass background rows with the model's features"
        )
    background = select_background(background, max_background, seed)
    n_features = row.shape[1]
    coalitions = (1 << n_features) if n_features <= max_exact_features else (n_samples + n_samples % 2) * (n_features - 1) + 1
    if max_cost is not None and coalitions * len(background) > max_cost:
        raise ValueError(f"explaining this row costs {coalitions * len(background):,} (coalitions x background rows), "
                         f"above the bound of {max_cost:,}")
    if n_features <= max_exact_features:
        return _shapley_exact(model, row, background, model_type, classes)
    return _shapley_sampling(model, row, background, model_type, classes, n_samples, seed)


def select_background(background: pd.DataFrame, max_rows: int = MAX_BACKGROUND_ROWS, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``background``: all of them, or a seeded sample without
    replacement kept in the original order. Deterministic for a seed."""
    if len(background) <= max_rows:
        return background.reset_index(drop=True)
    picked = np.sort(np.random.default_rng(seed).choice(len(background), size=max_rows, replace=False))
    return background.iloc[picked].reset_index(drop=True)


# --- input checks -------------------------------------------------------------------------------


def _check_row(row: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(row, pd.DataFrame):
        raise ValueError(f"row must be a pandas DataFrame, got {type(row).__name__}")
    if len(row) != 1:
        raise ValueError(f"row must hold exactly one row, got {len(row)}")
    if row.shape[1] == 0:
        raise ValueError("row has no features")
    if not row.columns.is_unique:
        raise ValueError("row has duplicate feature names")
    return row.reset_index(drop=True)


def _check_background(background: pd.DataFrame, row: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(background, pd.DataFrame):
        raise ValueError(f"background must be a pandas DataFrame, got {type(background).__name__}")
    if len(background) == 0:
        raise ValueError("background is empty")
    missing = [c for c in row.columns if c not in background.columns]
    if missing:
        raise ValueError(f"background lacks features {missing}")
    return background.loc[:, list(row.columns)].reset_index(drop=True)


# --- linear models: exact decomposition in the linear space --------------------------------------


def _dense(values: Any) -> np.ndarray:
    if hasattr(values, "toarray"):  # scipy sparse
        values = values.toarray()
    return np.asarray(values, dtype=float)


def _split_pipeline(model: Any) -> tuple[Any, Any | None]:
    """(final estimator, preprocessing or None) for a Pipeline; (model, None) otherwise."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps and hasattr(model, "named_steps"):
        final = steps[-1][1]
        return final, (model[:-1] if len(steps) > 1 else None)
    return model, None


def _explain_linear(
    model: Any, row: pd.DataFrame, model_type: str, classes: list | None, background: pd.DataFrame | None
) -> Explanation | None:
    """The exact linear explanation, or None when the model is not (verifiably) linear."""
    final, pre = _split_pipeline(model)
    coef, intercept = getattr(final, "coef_", None), getattr(final, "intercept_", None)
    if coef is None or intercept is None:
        return None
    if model_type == "classification" and not hasattr(final, "decision_function"):
        return None
    try:
        coef = np.atleast_2d(np.asarray(coef, dtype=float))
        intercept = np.atleast_1d(np.asarray(intercept, dtype=float)).ravel()
    except (TypeError, ValueError):
        return None
    if coef.ndim != 2 or intercept.size not in (1, coef.shape[0]):
        return None

    xt_raw = pre.transform(row) if pre is not None else row
    x = _dense(xt_raw).reshape(-1)
    names = _transformed_names(pre, row, xt_raw, x.size)
    if names is None or coef.shape[1] != x.size:
        return None  # cannot say which features the coefficients belong to: fall back to Shapley
    linear = intercept + coef @ x  # one value per row of coef_

    if model_type == "regression":
        if coef.shape[0] != 1:
            return None  # multi-output
        reference = np.asarray(final.predict(xt_raw), dtype=float).ravel()
        if reference.size != 1 or not _close(linear[0], reference[0]):
            return None  # a link function (Poisson/Gamma GLM, TransformedTargetRegressor, ...)
        k, target, space = 0, "value", "prediction"
    else:
        decision = np.asarray(final.decision_function(xt_raw), dtype=float).ravel()
        if decision.size != linear.size or not all(_close(a, b) for a, b in zip(linear, decision, strict=True)):
            return None
        model_classes = list(getattr(final, "classes_", []))
        n_classes = len(model_classes)
        if coef.shape[0] == 1 and n_classes == 2:
            k, class_index = 0, 1  # log-odds of the positive class classes_[1]
        elif coef.shape[0] == n_classes and n_classes > 2:
            k = class_index = int(np.argmax(decision))
        else:
            return None  # e.g. one-vs-one coefficient rows: no single linear score per class
        labels = _labels(classes, model_classes, n_classes)
        target = str(labels[class_index])
        space = _decision_space(final, xt_raw, decision)

    if background is not None:
        bt = _dense(pre.transform(background) if pre is not None else background)
        mean = bt.mean(axis=0)
        method = "linear_exact" if model_type == "regression" else "linear_exact_logit"
    else:
        mean = np.zeros_like(x)
        method = "linear_exact_zero_baseline" if model_type == "regression" else "linear_exact_logit_zero_baseline"
    w = coef[k]
    b0 = intercept[k] if intercept.size > 1 else intercept[0]
    contributions = w * (x - mean)
    return Explanation(
        method=method,
        base_value=float(b0 + w @ mean),
        contributions={name: float(c) for name, c in zip(names, contributions, strict=True)},
        output=float(linear[k]),
        target=target,
        output_space=space,
    )


def _transformed_names(pre: Any, row: pd.DataFrame, xt_raw: Any, width: int) -> list[str] | None:
    if pre is None:
        return [str(c) for c in row.columns]
    if isinstance(xt_raw, pd.DataFrame):
        names = [str(c) for c in xt_raw.columns]
    else:
        try:
            names = [str(c) for c in pre.get_feature_names_out()]
        except Exception:
            return None
    return names if len(names) == width else None


def _close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-6, atol=1e-8))


def _decision_space(final: Any, xt_raw: Any, decision: np.ndarray) -> str:
    """"log_odds"/"logit" when the model's probabilities are the sigmoid/softmax of its decision
    function (logistic models), "decision_function" otherwise (hinge loss, OvR, no probabilities)."""
    try:
        proba = np.asarray(final.predict_proba(xt_raw), dtype=float).ravel()
    except Exception:
        return "decision_function"
    if decision.size == 1:
        if proba.size == 2 and np.isclose(proba[1], 1.0 / (1.0 + np.exp(-decision[0])), rtol=1e-6, atol=1e-9):
            return "log_odds"
        return "decision_function"
    shifted = np.exp(decision - decision.max())
    if proba.size == decision.size and np.allclose(proba, shifted / shifted.sum(), rtol=1e-6, atol=1e-9):
        return "logit"
    return "decision_function"


def _labels(classes: list | None, model_classes: list, n_columns: int) -> list:
    if classes is not None and len(classes) > 0:
        if len(classes) != n_columns:
            raise ValueError(f"classes names {len(classes)} classes but the model has {n_columns}")
        return list(classes)
    if len(model_classes) == n_columns:
        return list(model_classes)
    return list(range(n_columns))


# --- Shapley values for any model ---------------------------------------------------------------


def _compose(row: pd.DataFrame, background: pd.DataFrame, take_x: np.ndarray, bg_index: np.ndarray) -> pd.DataFrame:
    """Rows r = where(take_x[r], x, background[bg_index[r]]), keeping the column dtypes."""
    columns = {}
    for j, name in enumerate(row.columns):
        bg_col = background[name]
        values = np.where(take_x[:, j], row[name].to_numpy()[0], bg_col.to_numpy()[bg_index])
        dtype = bg_col.dtype
        if not isinstance(dtype, np.dtype) and dtype == row[name].dtype:
            try:  # extension dtypes (category, string, nullable ints) come back as object arrays
                values = pd.array(values, dtype=dtype)
            except (TypeError, ValueError):
                pass
        columns[name] = values
    return pd.DataFrame(columns, columns=row.columns)


def _output_function(model: Any, model_type: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """All of the model's outputs for a batch: (n, n_classes) probabilities or (n, 1) values."""
    if model_type == "classification":
        if not hasattr(model, "predict_proba"):
            raise ValueError(
                f"{type(model).__name__} has no predict_proba: a non-linear classifier is explained "
                "through the probability of its predicted class"
            )

        def proba(frame: pd.DataFrame) -> np.ndarray:
            return np.asarray(model.predict_proba(frame), dtype=float)

        return proba

    def values(frame: pd.DataFrame) -> np.ndarray:
        out = np.asarray(model.predict(frame), dtype=float)
        if out.ndim == 2 and out.shape[1] != 1:
            raise ValueError("multi-output regressors are not explained")
        return out.reshape(-1, 1)

    return values


def _target(model: Any, model_type: str, classes: list | None, outputs_x: np.ndarray) -> tuple[int, str, str]:
    """(output column, target label, output space) from the explained row's outputs."""
    if model_type == "regression":
        return 0, "value", "prediction"
    column = int(np.argmax(outputs_x))  # as the serving predictor picks the predicted class
    labels = _labels(classes, list(getattr(model, "classes_", [])), outputs_x.size)
    return column, str(labels[column]), "probability"


def _shapley_exact(
    model: Any, row: pd.DataFrame, background: pd.DataFrame, model_type: str, classes: list | None
) -> Explanation:
    n, m = row.shape[1], len(background)
    n_coalitions = 1 << n
    interior = np.arange(1, n_coalitions - 1)
    bits = ((interior[:, None] >> np.arange(n)) & 1).astype(bool)  # (C, n)
    # One batch: the background itself (empty coalition), every interior coalition over every
    # background row, and x (the full coalition).
    take_x = np.concatenate(
        [np.zeros((m, n), dtype=bool), np.repeat(bits, m, axis=0), np.ones((1, n), dtype=bool)]
    )
    bg_index = np.concatenate([np.arange(m), np.tile(np.arange(m), len(interior)), [0]])
    outputs = _output_function(model, model_type)(_compose(row, background, take_x, bg_index))
    column, target, space = _target(model, model_type, classes, outputs[-1])
    f = outputs[:, column]

    value = np.empty(n_coalitions)
    value[0] = f[:m].mean()
    value[1:-1] = f[m:-1].reshape(len(interior), m).mean(axis=1)
    value[-1] = f[-1]

    masks = np.arange(n_coalitions)
    sizes = np.array([bin(s).count("1") for s in range(n_coalitions)])
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    phi = np.empty(n)
    for j in range(n):
        bit = 1 << j
        without = masks[(masks & bit) == 0]
        phi[j] = np.sum(weight[sizes[without]] * (value[without | bit] - value[without]))
    return Explanation(
        method="shapley_exact",
        base_value=float(value[0]),
        contributions={str(name): float(p) for name, p in zip(row.columns, phi, strict=True)},
        output=float(value[-1]),
        target=target,
        output_space=space,
    )


def _shapley_sampling(
    model: Any,
    row: pd.DataFrame,
    background: pd.DataFrame,
    model_type: str,
    classes: list | None,
    n_samples: int,
    seed: int,
) -> Explanation:
    n, m = row.shape[1], len(background)
    rng = np.random.default_rng(seed)
    half = np.array([rng.permutation(n) for _ in range((n_samples + 1) // 2)])
    perms = np.concatenate([half, half[:, ::-1]])  # antithetic pairs
    n_perms = len(perms)
    rank = np.argsort(perms, axis=1)  # rank[p, j]: the step at which feature j switches to x

    predict = _output_function(model, model_type)
    ends = predict(_compose(row, background, np.concatenate([np.zeros((m, n), bool), np.ones((1, n), bool)]),
                            np.concatenate([np.arange(m), [0]])))
    column, target, space = _target(model, model_type, classes, ends[-1])
    f_background, f_x = ends[:m, column], ends[-1, column]

    steps = np.arange(1, n)  # interior points of each walk: the first k features of the permutation are x's
    rows_per_perm = max(1, (n - 1) * m)
    chunk = max(1, MAX_BATCH_ROWS // rows_per_perm)
    phi = np.zeros(n)
    for start in range(0, n_perms, chunk):
        p_rank = rank[start:start + chunk]
        pc = len(p_rank)
        if n > 1:
            walk = p_rank[:, None, :] < steps[None, :, None]  # (pc, n-1, n)
            take_x = np.repeat(walk.reshape(-1, n), m, axis=0)  # (pc * (n-1) * m, n)
            bg_index = np.tile(np.arange(m), pc * (n - 1))
            inner = predict(_compose(row, background, take_x, bg_index))[:, column].reshape(pc, n - 1, m)
        else:
            inner = np.empty((pc, 0, m))
        points = np.concatenate(
            [np.broadcast_to(f_background, (pc, 1, m)), inner, np.full((pc, 1, m), f_x)], axis=1
        )  # (pc, n+1, m): f along each walk from b to x
        increments = np.diff(points, axis=1).mean(axis=2)  # (pc, n): step k credits perms[p, k]
        phi += np.bincount(perms[start:start + pc].ravel(), weights=increments.ravel(), minlength=n)
    phi /= n_perms
    return Explanation(
        method="shapley_sampling",
        base_value=float(f_background.mean()),
        contributions={str(name): float(p) for name, p in zip(row.columns, phi, strict=True)},
        output=float(f_x),
        target=target,
        output_space=space,
    )
