"""The matrix fast paths answer exactly what the estimator's own predict_proba/predict answers,
and are refused (None) whenever they would not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlservice.inference.fast_paths import matrix_predictor
from mlservice.inference.predictors import sklearn_predictor as _sklearn_predictor
from tests.utils.mlflow_models import FEATURES, churn_like

FRAME, LABELS = churn_like(n=400, seed=3)


def _fit(kind: str):
    if kind == "forest":
        return RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(FRAME, LABELS), "classification"
    if kind == "extra_trees":
        return ExtraTreesClassifier(n_estimators=10, random_state=0).fit(FRAME, LABELS), "classification"
    if kind == "forest_regressor":
        return RandomForestRegressor(n_estimators=15, random_state=0).fit(FRAME, FRAME["avg_order_value"]), "regression"
    if kind == "pipeline":
        pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))])
        return pipe.fit(FRAME, LABELS), "classification"
    if kind == "logistic":
        return LogisticRegression(max_iter=2000).fit(FRAME, LABELS), "classification"
    if kind == "logistic_3_classes":
        return LogisticRegression(max_iter=2000).fit(FRAME, LABELS + (FRAME["support_tickets"] > 3)), "classification"
    if kind == "ridge":
        return Ridge(alpha=0.5).fit(FRAME, FRAME["avg_order_value"]), "regression"
    if kind == "boosting":
        return GradientBoostingClassifier(n_estimators=20, random_state=0).fit(FRAME, LABELS), "classification"
    return LinearRegression().fit(FRAME, LABELS * 2.0), "regression"


KINDS = ["forest", "extra_trees", "forest_regressor", "pipeline", "logistic", "logistic_3_classes", "ridge", "boosting", "linear"]
CLOSED_FORM = {"logistic", "logistic_3_classes", "ridge", "linear"}  # X @ coef_ + intercept_, no per-call validation


@pytest.mark.parametrize("kind", KINDS)
def test_fast_path_equals_the_estimators_answer(kind):
    estimator, model_type = _fit(kind)
    slow = _sklearn_predictor(estimator, model_type)
    fast = matrix_predictor(estimator, model_type, slow, FEATURES, FRAME.head(20))
    assert fast is not None
    unseen, _ = churn_like(n=200, seed=99)
    want_labels, want = slow(unseen)
    got_labels, got = fast(unseen.to_numpy(dtype=np.float64))
    if model_type == "classification":
        assert np.array_equal(want_labels, got_labels)
        assert np.allclose(want, got, rtol=0, atol=1e-12)
        assert np.array_equal(want, estimator.predict_proba(unseen))  # the slow path is the estimator itself
    else:
        assert got is None and np.allclose(want_labels, got_labels, rtol=0, atol=1e-9)
    assert ("_linear_predictor" in fast.__qualname__) == (kind in CLOSED_FORM)
    # the fast path did not strip the served estimator's feature names
    assert list(getattr(estimator, "feature_names_in_", FEATURES)) == FEATURES


def test_a_model_that_needs_column_names_keeps_the_dataframe_path():
    by_name = ColumnTransformer([("scaled", StandardScaler(), ["avg_order_value", "total_orders"])], remainder="drop")
    pipe = Pipeline([("cols", by_name), ("clf", LogisticRegression(max_iter=2000))]).fit(FRAME, LABELS)
    slow = _sklearn_predictor(pipe, "classification")
    assert matrix_predictor(pipe, "classification", slow, FEATURES, FRAME.head(20)) is None


def test_a_fast_path_that_disagrees_is_refused():
    estimator, model_type = _fit("logistic")

    def other_model(frame: pd.DataFrame):  # stands for "the served predictor answers differently"
        proba = estimator.predict_proba(frame)[:, ::-1]
        return estimator.classes_[proba.argmax(axis=1)], proba

    assert matrix_predictor(estimator, model_type, other_model, FEATURES, FRAME.head(20)) is None
