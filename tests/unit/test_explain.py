"""Per-prediction explanations: exact linear decompositions, exact and sampled Shapley values.

Real scikit-learn models on bundled data (diabetes, breast cancer, iris) and the synthetic churn
customers. Every method must be additive: base_value + sum(contributions) == output.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, PoissonRegressor, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlservice.demo.churn_data import CHURN_FEATURES, churn_customers
from mlservice.inference.contributions import Explanation, explain, select_background
from tests.utils import datasets

DIABETES_5 = ["age", "bmi", "bp", "s1", "s5"]
CANCER_6 = ["mean radius", "mean texture", "mean smoothness", "mean concave points", "worst area", "worst symmetry"]


def total(e: Explanation) -> float:
    return e.base_value + sum(e.contributions.values())


@pytest.fixture(scope="module")
def diabetes():
    return datasets.features_and_target(datasets.diabetes())


@pytest.fixture(scope="module")
def cancer():
    return datasets.features_and_target(datasets.breast_cancer())


@pytest.fixture(scope="module")
def churn():
    frame = churn_customers(2000, seed=7)
    return frame[CHURN_FEATURES], frame["churned"]


@pytest.fixture(scope="module")
def churn_forest(churn):
    X, y = churn
    return RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1).fit(X, y)


# --- linear models ------------------------------------------------------------------------------


def test_linear_regression_is_exact_and_matches_hand_computation(diabetes):
    X, y = diabetes
    X = X[DIABETES_5]
    model = LinearRegression().fit(X, y)
    background, row = X.iloc[:100], X.iloc[[200]]

    e = explain(model, row, model_type="regression", classes=None, background=background)

    assert e.method == "linear_exact" and e.target == "value" and e.output_space == "prediction"
    assert e.output == pytest.approx(model.predict(row)[0], abs=1e-9)
    assert total(e) == pytest.approx(e.output, abs=1e-6)
    mean = background.to_numpy().mean(axis=0)
    expected = model.coef_ * (row.to_numpy()[0] - mean)
    assert list(e.contributions) == DIABETES_5
    np.testing.assert_allclose(list(e.contributions.values()), expected, rtol=1e-10, atol=1e-10)
    assert e.base_value == pytest.approx(model.intercept_ + model.coef_ @ mean, abs=1e-9)


def test_ridge_in_scaler_pipeline_decomposes_in_the_scaled_space(diabetes):
    X, y = diabetes
    X = X[DIABETES_5]
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y)
    background, row = X.iloc[50:150], X.iloc[[7]]

    e = explain(pipe, row, model_type="regression", classes=None, background=background)

    assert e.method == "linear_exact"
    assert e.output == pytest.approx(pipe.predict(row)[0], abs=1e-9)
    assert total(e) == pytest.approx(pipe.predict(row)[0], abs=1e-6)
    scaler, ridge = pipe[0], pipe[-1]
    x = scaler.transform(row)[0]
    mean = scaler.transform(background).mean(axis=0)
    np.testing.assert_allclose(list(e.contributions.values()), ridge.coef_ * (x - mean), rtol=1e-10, atol=1e-10)
    assert list(e.contributions) == DIABETES_5  # StandardScaler keeps one column per feature


def test_binary_logistic_pipeline_explains_log_odds_of_the_positive_class(cancer):
    X, y = cancer
    X = X[CANCER_6]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    background = X.iloc[:80]
    predicted = pipe.predict(X)
    rows = [X.iloc[[int(np.flatnonzero(predicted == c)[0])]] for c in (0, 1)]  # one row predicted as each class

    for row in rows:
        e = explain(pipe, row, model_type="classification", classes=None, background=background)
        assert e.method == "linear_exact_logit" and e.output_space == "log_odds"
        assert e.target == "1"  # always the positive class, whatever the prediction
        decision = pipe.decision_function(row)[0]
        assert e.output == pytest.approx(decision, abs=1e-9)
        assert total(e) == pytest.approx(decision, abs=1e-6)
        assert 1 / (1 + np.exp(-e.output)) == pytest.approx(pipe.predict_proba(row)[0, 1], abs=1e-9)
        x = pipe[0].transform(row)[0]
        mean = pipe[0].transform(background).mean(axis=0)
        np.testing.assert_allclose(list(e.contributions.values()), pipe[-1].coef_[0] * (x - mean), atol=1e-10)


def test_multiclass_logistic_explains_the_predicted_class_decision_value():
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    names = ["setosa", "versicolor", "virginica"]
    background = X.sample(40, random_state=0)
    for index in (0, 60, 120):  # one flower of each species
        row = X.iloc[[index]]
        k = int(model.predict(row)[0])
        e = explain(model, row, model_type="classification", classes=names, background=background)
        assert e.method == "linear_exact_logit" and e.output_space == "logit"
        assert e.target == names[k]
        assert e.output == pytest.approx(model.decision_function(row)[0, k], abs=1e-9)
        assert total(e) == pytest.approx(e.output, abs=1e-6)
        mean = background.to_numpy().mean(axis=0)
        np.testing.assert_allclose(
            list(e.contributions.values()), model.coef_[k] * (row.to_numpy()[0] - mean), atol=1e-10
        )
    assert {explain(model, X.iloc[[i]], model_type="classification", classes=names, background=background).target
            for i in (0, 60, 120)} == set(names)


def test_linear_without_background_uses_the_zero_baseline(diabetes, churn):
    X, y = diabetes
    model = LinearRegression().fit(X[DIABETES_5], y)
    row = X[DIABETES_5].iloc[[3]]
    e = explain(model, row, model_type="regression", classes=None, background=None)
    assert e.method == "linear_exact_zero_baseline"
    assert e.base_value == pytest.approx(model.intercept_)
    np.testing.assert_allclose(list(e.contributions.values()), model.coef_ * row.to_numpy()[0], atol=1e-12)
    assert total(e) == pytest.approx(model.predict(row)[0], abs=1e-6)

    Xc, yc = churn
    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(Xc, yc)
    e = explain(clf, Xc.iloc[[0]], model_type="classification", classes=None, background=None)
    assert e.method == "linear_exact_logit_zero_baseline" and e.output_space == "log_odds"
    assert e.base_value == pytest.approx(clf[-1].intercept_[0])
    assert total(e) == pytest.approx(clf.decision_function(Xc.iloc[[0]])[0], abs=1e-6)


def test_hinge_loss_classifier_reports_margin_units(churn):
    X, y = churn
    model = make_pipeline(StandardScaler(), SGDClassifier(loss="hinge", random_state=0)).fit(X, y)
    row = X.iloc[[5]]
    e = explain(model, row, model_type="classification", classes=None, background=X.iloc[:50])
    assert e.method == "linear_exact_logit" and e.output_space == "decision_function"
    assert total(e) == pytest.approx(model.decision_function(row)[0], abs=1e-6)


def test_one_hot_linear_pipeline_names_the_encoded_columns(churn):
    X, y = churn
    X = X.assign(plan=np.where(np.arange(len(X)) % 3 == 0, "basic", "premium"))
    pre = ColumnTransformer([("num", StandardScaler(), CHURN_FEATURES), ("cat", OneHotEncoder(), ["plan"])])
    model = make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(X, y)
    row = X.iloc[[9]]
    e = explain(model, row, model_type="classification", classes=None, background=X.iloc[:60])
    assert e.method == "linear_exact_logit"
    assert "cat__plan_basic" in e.contributions and "num__support_tickets" in e.contributions
    assert total(e) == pytest.approx(model.decision_function(row)[0], abs=1e-6)


def test_glm_with_a_link_function_is_not_taken_for_linear(diabetes):
    X, y = diabetes
    X = X[DIABETES_5]
    model = PoissonRegressor().fit(X, y)  # has coef_ and intercept_, but predicts exp(coef . x)
    row, background = X.iloc[[11]], X.iloc[:30]
    e = explain(model, row, model_type="regression", classes=None, background=background)
    assert e.method == "shapley_exact"
    assert e.output == pytest.approx(model.predict(row)[0], abs=1e-9)
    assert total(e) == pytest.approx(e.output, abs=1e-6)
    with pytest.raises(ValueError, match="background"):
        explain(model, row, model_type="regression", classes=None, background=None)


# --- exact Shapley ------------------------------------------------------------------------------


def test_random_forest_churn_exact_shapley_is_efficient(churn, churn_forest):
    X, _ = churn
    background, row = X.iloc[:50], X.iloc[[123]]
    e = explain(churn_forest, row, model_type="classification", classes=["stay", "churn"], background=background)

    assert e.method == "shapley_exact" and e.output_space == "probability"
    proba = churn_forest.predict_proba(row)[0]
    k = int(np.argmax(proba))
    assert e.target == ["stay", "churn"][k]
    assert e.output == pytest.approx(proba[k], abs=1e-12)
    assert e.base_value == pytest.approx(churn_forest.predict_proba(background)[:, k].mean(), abs=1e-12)
    assert total(e) == pytest.approx(proba[k] - churn_forest.predict_proba(background)[:, k].mean() + e.base_value,
                                     abs=1e-6)
    assert sum(e.contributions.values()) == pytest.approx(e.output - e.base_value, abs=1e-9)
    assert list(e.contributions) == CHURN_FEATURES


def test_unused_feature_gets_exactly_zero(churn):
    X, y = churn
    X = X.assign(unused=0.0)  # constant in training: no tree can split on it
    model = RandomForestClassifier(n_estimators=50, max_features=None, max_depth=8, random_state=0).fit(X, y)
    background = X.iloc[:40].assign(unused=np.arange(40, dtype=float))
    row = X.iloc[[77]].assign(unused=5.0)  # differs from every background value
    e = explain(model, row, model_type="classification", classes=None, background=background)
    assert e.contributions["unused"] == 0.0  # dummy property
    assert total(e) == pytest.approx(e.output, abs=1e-9)
    assert any(abs(v) > 1e-3 for k, v in e.contributions.items() if k != "unused")


class _Product:
    """f(x) = x0 * x1 + 2 * x2: an interaction and an additive term with known Shapley values."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        a = frame.to_numpy(dtype=float)
        return a[:, 0] * a[:, 1] + 2 * a[:, 2]


def test_exact_shapley_matches_the_analytic_values_and_is_symmetric():
    columns = ["a", "b", "c"]
    background = pd.DataFrame([[1.0, 1.0, 0.0]], columns=columns)
    e = explain(_Product(), pd.DataFrame([[2.0, 3.0, 1.0]], columns=columns),
                model_type="regression", classes=None, background=background)
    # One background point b: phi_a = (x_a - b_a)(x_b + b_b)/2, phi_b = (x_b - b_b)(x_a + b_a)/2, phi_c = 2(x_c - b_c)
    assert e.contributions == pytest.approx({"a": 2.0, "b": 3.0, "c": 2.0}, abs=1e-12)
    assert (e.base_value, e.output) == pytest.approx((1.0, 8.0))

    symmetric = explain(_Product(), pd.DataFrame([[2.0, 2.0, 0.0]], columns=columns),
                        model_type="regression", classes=None, background=background)
    assert symmetric.contributions["a"] == pytest.approx(symmetric.contributions["b"], abs=1e-12)
    assert symmetric.contributions["c"] == pytest.approx(0.0, abs=1e-12)


def test_exact_shapley_of_a_hidden_linear_model_equals_the_linear_formula(diabetes):
    X, y = diabetes
    X = X[DIABETES_5]
    model = TransformedTargetRegressor(regressor=LinearRegression()).fit(X, y)  # no coef_ on the wrapper
    background, row = X.iloc[:30], X.iloc[[99]]
    e = explain(model, row, model_type="regression", classes=None, background=background)
    assert e.method == "shapley_exact"
    coef = model.regressor_.coef_
    np.testing.assert_allclose(list(e.contributions.values()),
                               coef * (row.to_numpy()[0] - background.to_numpy().mean(axis=0)), atol=1e-8)


def test_gradient_boosting_on_all_ten_diabetes_features_is_exact(diabetes):
    X, y = diabetes
    model = GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0).fit(X, y)
    background, row = X.iloc[:50], X.iloc[[300]]
    e = explain(model, row, model_type="regression", classes=None, background=background)
    assert e.method == "shapley_exact" and len(e.contributions) == 10
    assert e.output == pytest.approx(model.predict(row)[0], abs=1e-9)
    assert e.base_value == pytest.approx(model.predict(background).mean(), abs=1e-9)
    assert total(e) == pytest.approx(e.output, abs=1e-6)


def test_string_features_through_a_one_hot_forest(churn):
    X, y = churn
    X = X.assign(plan=np.where(np.arange(len(X)) % 3 == 0, "basic", "premium"))
    pre = ColumnTransformer([("cat", OneHotEncoder(), ["plan"])], remainder="passthrough")
    model = make_pipeline(pre, RandomForestClassifier(n_estimators=30, random_state=0)).fit(X, y)
    row = X.iloc[[3]]  # plan "basic"
    e = explain(model, row, model_type="classification", classes=None, background=X.iloc[1:41])
    assert e.method == "shapley_exact" and list(e.contributions) == [*CHURN_FEATURES, "plan"]
    assert total(e) == pytest.approx(e.output, abs=1e-9)


# --- permutation sampling -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer_forest(cancer):
    X, y = cancer
    return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y)


def test_thirty_features_use_sampling_and_stay_exactly_efficient(cancer, cancer_forest):
    X, _ = cancer
    background = X.sample(50, random_state=1)
    proba = cancer_forest.predict_proba(X)
    confident = int(np.flatnonzero(proba.max(axis=1) == 1.0)[0])
    row = X.iloc[[confident]]
    e = explain(cancer_forest, row, model_type="classification", classes=None, background=background, n_samples=64)

    assert e.method == "shapley_sampling" and len(e.contributions) == 30
    k = int(np.argmax(proba[confident]))
    assert e.target == str(k) and e.output == pytest.approx(1.0)
    assert e.base_value == pytest.approx(cancer_forest.predict_proba(background)[:, k].mean(), abs=1e-12)
    assert total(e) == pytest.approx(e.output, abs=1e-6)  # exact, by telescoping, not in expectation
    top = max(e.contributions.values(), key=abs)
    assert np.sign(top) == np.sign(e.output - e.base_value) and e.output - e.base_value > 0.2


def test_sampling_converges_to_exact_shapley(cancer):
    X, y = cancer
    X = X[CANCER_6]
    model = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0, n_jobs=1).fit(X, y)
    background, row = X.sample(20, random_state=2), X.iloc[[40]]
    exact = explain(model, row, model_type="classification", classes=None, background=background)
    sampled = explain(model, row, model_type="classification", classes=None, background=background,
                      n_samples=2000, seed=3, max_exact_features=0)
    assert exact.method == "shapley_exact" and sampled.method == "shapley_sampling"
    assert (sampled.output, sampled.base_value, sampled.target) == pytest.approx(
        (exact.output, exact.base_value, exact.target))
    assert total(sampled) == pytest.approx(total(exact), abs=1e-9)
    error = np.abs(np.array(list(sampled.contributions.values())) - np.array(list(exact.contributions.values())))
    assert error.max() < 0.003  # measured ~3e-4 at 2000 permutations
    top = max(exact.contributions, key=lambda k: abs(exact.contributions[k]))
    assert max(sampled.contributions, key=lambda k: abs(sampled.contributions[k])) == top
    assert np.sign(sampled.contributions[top]) == np.sign(exact.contributions[top])


def test_sampling_on_the_analytic_model_is_close():
    columns = ["a", "b", "c"]
    background = pd.DataFrame([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]], columns=columns)
    row = pd.DataFrame([[2.0, 3.0, 1.0]], columns=columns)
    exact = explain(_Product(), row, model_type="regression", classes=None, background=background)
    sampled = explain(_Product(), row, model_type="regression", classes=None, background=background,
                      n_samples=400, max_exact_features=0)
    assert sampled.contributions == pytest.approx(exact.contributions, abs=0.1)
    assert total(sampled) == pytest.approx(exact.output, abs=1e-9)


# --- determinism, background, API ---------------------------------------------------------------


def test_fixed_seed_is_deterministic(cancer, cancer_forest):
    X, _ = cancer
    background, row = X.iloc[:30], X.iloc[[200]]
    kwargs = dict(model_type="classification", classes=None, background=background, n_samples=16)
    first = explain(cancer_forest, row, seed=5, **kwargs)
    again = explain(cancer_forest, row, seed=5, **kwargs)
    other = explain(cancer_forest, row, seed=6, **kwargs)
    assert first == again
    assert other.contributions != first.contributions
    assert total(other) == pytest.approx(total(first), abs=1e-9)


def test_large_background_is_capped_by_a_seeded_sample(churn, churn_forest):
    X, _ = churn
    row = X.iloc[[10]]
    big = X.iloc[:500]
    capped = select_background(big, 50, seed=4)
    assert len(capped) == 50 and capped.equals(select_background(big, 50, seed=4))
    assert not capped.equals(select_background(big, 50, seed=5))
    via_big = explain(churn_forest, row, model_type="classification", classes=None, background=big, seed=4)
    via_capped = explain(churn_forest, row, model_type="classification", classes=None, background=capped, seed=4)
    assert via_big == via_capped
    assert select_background(X.iloc[:20], 50).equals(X.iloc[:20].reset_index(drop=True))


def test_background_columns_are_aligned_to_the_row(churn, churn_forest):
    X, y = churn
    row = X.iloc[[1]]
    shuffled = X.iloc[:30][CHURN_FEATURES[::-1]].assign(churned=y.iloc[:30])
    a = explain(churn_forest, row, model_type="classification", classes=None, background=shuffled)
    b = explain(churn_forest, row, model_type="classification", classes=None, background=X.iloc[:30])
    assert a == b


def test_invalid_inputs_are_refused(churn, churn_forest):
    X, _ = churn
    kwargs = dict(model_type="classification", classes=None, background=X.iloc[:10])
    with pytest.raises(ValueError, match="exactly one row"):
        explain(churn_forest, X.iloc[:2], **kwargs)
    with pytest.raises(ValueError, match="model_type"):
        explain(churn_forest, X.iloc[[0]], model_type="ranking", classes=None, background=X.iloc[:10])
    with pytest.raises(ValueError, match="lacks features"):
        explain(churn_forest, X.iloc[[0]], model_type="classification", classes=None,
                background=X.iloc[:10].drop(columns=["support_tickets"]))
    with pytest.raises(ValueError, match="background"):
        explain(churn_forest, X.iloc[[0]], model_type="classification", classes=None, background=None)
    with pytest.raises(ValueError, match="classes"):
        explain(churn_forest, X.iloc[[0]], model_type="classification", classes=["a", "b", "c"],
                background=X.iloc[:10])


def test_to_dict_is_json_ready(churn, churn_forest):
    X, _ = churn
    e = explain(churn_forest, X.iloc[[0]], model_type="classification", classes=[0, 1], background=X.iloc[:20])
    payload = json.loads(json.dumps(e.to_dict()))
    assert payload["method"] == "shapley_exact" and payload["output_space"] == "probability"
    assert set(payload["contributions"]) == set(CHURN_FEATURES)
    assert payload["base_value"] + sum(payload["contributions"].values()) == pytest.approx(payload["output"], abs=1e-9)
