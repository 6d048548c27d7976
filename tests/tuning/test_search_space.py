"""Search-space validation and the Ray Tune domains it becomes (no Ray cluster needed)."""

from __future__ import annotations

import numpy as np
import pytest

from resources.errors import InvalidRequest
from resources.jobs.search_space import (
    MAX_GRID_POINTS,
    grid_size,
    to_tune_space,
    validate_search_space,
)

VALID = {
    "n_estimators": {"type": "choice", "values": [10, 30]},
    "max_depth": {"type": "randint", "min": 2, "max": 6},
    "alpha": {"type": "loguniform", "min": 1e-5, "max": 1e-1},
    "frac": {"type": "uniform", "min": 0.1, "max": 0.9},
    "sub": {"type": "quniform", "min": 0.5, "max": 1.0, "q": 0.1},
}


def problems_of(space, algorithm="bayesian"):
    with pytest.raises(InvalidRequest) as caught:
        validate_search_space(space, algorithm)
    assert caught.value.code == "INVALID_REQUEST"
    return caught.value.details["search_space"]


@pytest.mark.parametrize("algorithm", ["bayesian", "random"])
def test_valid_space_passes(algorithm):
    validate_search_space(VALID, algorithm)


def test_empty_space_is_refused():
    assert "at least one parameter" in problems_of({})


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ([1, 2], "must be an object"),
        ("choice", "must be an object"),
        ({"type": "normal", "min": 0, "max": 1}, "unknown type"),
        ({"min": 0, "max": 1}, "unknown type"),
        ({"type": "choice"}, "non-empty list"),
        ({"type": "choice", "values": []}, "non-empty list"),
        ({"type": "choice", "values": "abc"}, "non-empty list"),
        ({"type": "choice", "values": [1, [2]]}, "JSON scalars"),
        ({"type": "choice", "values": [1, {"a": 1}]}, "JSON scalars"),
        ({"type": "choice", "values": [1, float("nan")]}, "JSON scalars"),
        ({"type": "randint", "min": 1.5, "max": 3}, "integer"),
        ({"type": "randint", "min": 1, "max": "3"}, "integer"),
        ({"type": "randint", "min": True, "max": 3}, "integer"),
        ({"type": "randint", "min": 5, "max": 4}, "min <= max"),
        ({"type": "uniform", "min": 1, "max": 1}, "min < max"),
        ({"type": "uniform", "min": "a", "max": 1}, "numeric"),
        ({"type": "uniform", "min": 0}, "numeric"),
        ({"type": "loguniform", "min": 1, "max": 0.5}, "min < max"),
        ({"type": "loguniform", "min": 0, "max": 1}, "min > 0"),
        ({"type": "loguniform", "min": -1, "max": 1}, "min > 0"),
        ({"type": "quniform", "min": 0, "max": 1}, "q' > 0"),
        ({"type": "quniform", "min": 0, "max": 1, "q": 0}, "q' > 0"),
        ({"type": "quniform", "min": 1, "max": 0, "q": 0.1}, "min < max"),
        ({"type": "randint", "min": 1, "max": 3, "step": 1}, "unexpected keys ['step']"),
        ({"type": "choice", "values": [1], "min": 0}, "unexpected keys ['min']"),
    ],
)
def test_each_problem_names_the_parameter(spec, fragment):
    problems = problems_of({"ok": {"type": "choice", "values": [1]}, "bad": spec})
    assert set(problems) == {"bad"}
    assert fragment in problems["bad"]


def test_every_problem_is_listed_at_once():
    problems = problems_of(
        {
            "a": {"type": "randint", "min": 3, "max": 1},
            "b": {"type": "uniform", "min": 0, "max": 1, "extra": 1},
            "c": {"type": "quniform", "min": 2, "max": 1, "q": -1},
            "fine": {"type": "uniform", "min": 0, "max": 1},
        }
    )
    assert set(problems) == {"a", "b", "c"}
    # both problems of one parameter are reported
    assert "min < max" in problems["c"] and "q' > 0" in problems["c"]


def test_message_mentions_the_parameters():
    with pytest.raises(InvalidRequest) as caught:
        validate_search_space({"depth": {"type": "randint", "min": 3, "max": 1}}, "random")
    assert "depth" in caught.value.message


@pytest.mark.parametrize("kind", ["uniform", "loguniform", "quniform"])
def test_grid_refuses_continuous_types(kind):
    spec = {"type": kind, "min": 0.1, "max": 0.9}
    if kind == "quniform":
        spec["q"] = 0.1
    problems = problems_of({"x": spec, "n": {"type": "choice", "values": [1, 2]}}, "grid")
    assert problems == {"x": "grid search needs choice or randint"}


def test_grid_size_expands_randint_inclusively():
    space = {
        "a": {"type": "choice", "values": ["x", "y", "z"]},
        "b": {"type": "randint", "min": 2, "max": 6},  # 2, 3, 4, 5, 6
    }
    assert grid_size(space) == 15
    domains = to_tune_space(space, "grid")
    assert domains["a"] == {"grid_search": ["x", "y", "z"]}
    assert domains["b"] == {"grid_search": [2, 3, 4, 5, 6]}


def test_grid_too_large_is_refused():
    space = {
        "a": {"type": "randint", "min": 1, "max": 100},
        "b": {"type": "randint", "min": 1, "max": 11},
    }
    assert grid_size(space) == 1100 > MAX_GRID_POINTS
    problems = problems_of(space, "grid")
    assert isinstance(problems, str) and "1100" in problems
    # the same space is fine for sampling
    validate_search_space(space, "random")
    # a grid of exactly the limit passes
    validate_search_space({"a": {"type": "randint", "min": 1, "max": MAX_GRID_POINTS}}, "grid")


def test_unknown_algorithm_is_refused():
    assert "unknown algorithm" in problems_of(VALID, "hyperband")


def test_randint_max_is_inclusive():
    domain = to_tune_space({"d": {"type": "randint", "min": 2, "max": 4}}, "random")["d"]
    samples = domain.sample(size=600, random_state=np.random.default_rng(0))
    assert set(int(v) for v in samples) == {2, 3, 4}


def test_continuous_domains_stay_in_bounds():
    domains = to_tune_space(VALID, "bayesian")
    rng = np.random.default_rng(1)
    alpha = np.asarray(domains["alpha"].sample(size=300, random_state=rng))
    assert alpha.min() >= 1e-5 and alpha.max() <= 1e-1
    frac = np.asarray(domains["frac"].sample(size=300, random_state=rng))
    assert frac.min() >= 0.1 and frac.max() <= 0.9
    sub = np.asarray(domains["sub"].sample(size=300, random_state=rng))
    assert np.allclose(np.round(sub / 0.1) * 0.1, sub)
    choices = domains["n_estimators"].sample(size=100, random_state=rng)
    assert set(choices) == {10, 30}


def test_to_tune_space_validates():
    with pytest.raises(InvalidRequest):
        to_tune_space({"x": {"type": "uniform", "min": 0, "max": 1}}, "grid")
