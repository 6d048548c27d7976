"""A training job's status says what the estimator does with per-epoch settings: a one-fit estimator
reports one epoch and lists the settings it was given that have no effect, instead of dropping them."""

from __future__ import annotations

from serving_api.jobs.views import _iterative, _total_epochs, ignored_settings


def test_a_one_fit_estimator_reports_one_epoch_and_what_it_ignored():
    request = {"framework": "sklearn", "estimator": "random_forest",
               "training_config": {"epochs": 50, "early_stopping": True, "patience": 5, "num_workers": 1}}
    assert (_iterative(request), _total_epochs(request, request["training_config"])) == (False, 1)
    assert ignored_settings(request) == {
        "training_config.epochs": "random_forest fits in one pass: epochs has no effect",
        "training_config.early_stopping": "random_forest fits in one pass: early_stopping has no effect",
    }  # patience at its default: not reported
    defaults = {**request, "training_config": {"epochs": 20, "early_stopping": False}}
    assert ignored_settings(defaults) == {}


def test_iterative_estimators_use_their_epochs():
    for request in ({"framework": "sklearn", "estimator": "mlp", "training_config": {"epochs": 50, "early_stopping": True}},
                    {"framework": "pytorch", "estimator": None, "training_config": {"epochs": 7}}):
        assert _iterative(request) and ignored_settings(request) == {}
        assert _total_epochs(request, request["training_config"]) == request["training_config"]["epochs"]
