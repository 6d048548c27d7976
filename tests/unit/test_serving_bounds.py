"""Bounds of the online path, on the real classes with a fake registry: the micro-batcher retries a
failed batch request by request; the model cache keeps each tenant to its share, never evicts
another tenant's production version and remembers unknown ids; values a model cannot take are
refused by name; the explanation cost counts what the explainer predicts."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlservice.inference.bounds import FLOAT32_MAX, explanation_cost, input_limit
from mlservice.inference.contributions import explain
from mlservice.inference.errors import FeatureValidationError
from mlservice.inference.loaded_model import LoadedModel
from mlservice.inference.signature import FeatureSpec
from mlservice.inference.validation import model_inputs
from resources.errors import ModelNotFound, VersionNotFound
from resources.models.registry import ResolvedVersion
from serving_api.online.cache import ModelCache
from serving_api.online.micro_batcher import MicroBatcher
from tests.utils.mlflow_models import FEATURES, churn_like

FRAME, LABELS = churn_like(n=200, seed=4)
SPECS = [FeatureSpec(n, "long" if n != "avg_order_value" else "double") for n in FEATURES]


def _loaded(estimator, *, model_id="m", version="1.0.0", framework="sklearn", background=FRAME.head(20)) -> LoadedModel:
    return LoadedModel(
        tenant_id="t", model_id=model_id, name=model_id, version=version, mlflow_version=1, model_type="classification",
        framework=framework, features=SPECS, classes=[0, 1], predict_fn=lambda frame: (np.zeros(len(frame)), None),
        estimator=estimator, background=background, approx_bytes=1 << 20,
    )


# -- micro-batcher --------------------------------------------------------------------------------
def test_a_failing_batch_is_retried_request_by_request():
    calls = []

    def predict(matrix):
        calls.append(len(matrix))
        if (matrix[:, 0] < 0).any():  # the poisoned row
            raise ValueError("the model cannot take this row")
        return matrix[:, 0] * 2, None

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=64, max_wait_ms=0)
        rows = [np.array([[float(i), 0.0]]) for i in range(5)]
        rows[2] = np.array([[-1.0, 0.0]])
        results = await asyncio.gather(*(batcher.predict(r) for r in rows), return_exceptions=True)
        return batcher, results

    batcher, results = asyncio.run(scenario())
    assert calls[0] == 5 and batcher.retried == 1  # one batch of five failed, then each alone
    assert isinstance(results[2], ValueError)
    for i in (0, 1, 3, 4):
        assert list(results[i][0]) == [i * 2.0]


def test_a_closed_batcher_ends_its_worker_and_still_answers_a_late_caller():
    async def scenario():
        batcher = MicroBatcher(lambda m: (m[:, 0], None), max_wait_ms=0)
        await batcher.predict(np.ones((1, 1)))
        worker = batcher._worker
        batcher.close()
        await asyncio.sleep(0.01)
        late = await batcher.predict(np.full((1, 1), 3.0))
        return worker, late

    worker, late = asyncio.run(scenario())
    assert worker.done() and list(late[0]) == [3.0]


# -- model cache ----------------------------------------------------------------------------------
class FakeRegistry:
    """Models with versions and stages; counts every lookup."""

    tracking_uri = "fake://"

    def __init__(self):
        self.models: dict[tuple[str, str], dict[str, str]] = {}  # (tenant, model) -> {version: stage}
        self.calls = 0

    def resolve_version(self, tenant_id, model_id, spec):
        """The registry's rule (resources.models.registry.ModelRegistry.resolve_version), one lookup."""
        self.calls += 1
        if (tenant_id, model_id) not in self.models:
            raise ModelNotFound(model_id)
        versions = sorted(self.models[(tenant_id, model_id)].items(), reverse=True)  # newest first
        if spec is None:
            chosen = next((v for v in versions if v[1] == "production"), versions[0] if versions else None)
        else:
            chosen = next((v for v in versions if spec in v), None)
        if chosen is None:
            raise VersionNotFound(model_id, spec or "current")
        return ResolvedVersion(chosen[0], versions.index(chosen) + 1, model_id, f"{tenant_id}.{model_id}",
                               "classification", "sklearn", chosen[1])


def _cache(registry, **bounds) -> ModelCache:
    cache = ModelCache(registry, **bounds)
    cache._load = lambda tenant_id, model_id, resolved: _loaded(None, model_id=model_id, version=resolved.version)
    return cache


def test_one_tenants_loads_never_evict_another_tenants_production_model():
    registry = FakeRegistry()
    registry.models[("victim", "churn")] = {"1.0.0": "production"}
    for i in range(6):
        registry.models[("attacker", f"m{i}")] = {"1.0.0": "staging"}

    async def scenario():
        cache = _cache(registry, max_models=3, tenant_max_models=2)
        await cache.get("victim", "churn", None)
        for i in range(6):
            await cache.get("attacker", f"m{i}", None)
        return cache

    cache = asyncio.run(scenario())
    keys = cache.cached_keys()
    assert ("victim", "churn", "1.0.0") in keys
    assert len([k for k in keys if k[0] == "attacker"]) == 2  # the attacker's share
    assert len(keys) <= 3


def test_the_global_bound_evicts_only_versions_that_are_nobodys_production():
    registry = FakeRegistry()
    for tenant in ("a", "b", "c"):
        registry.models[(tenant, "prod")] = {"1.0.0": "production"}
        registry.models[(tenant, "dev")] = {"1.0.0": "development"}

    async def scenario():
        cache = _cache(registry, max_models=4, tenant_max_models=2)
        for tenant in ("a", "b", "c"):
            await cache.get(tenant, "prod", None)
        for tenant in ("a", "b", "c"):
            await cache.get(tenant, "dev", None)
        return cache

    keys = asyncio.run(scenario()).cached_keys()
    assert {("a", "prod", "1.0.0"), ("b", "prod", "1.0.0"), ("c", "prod", "1.0.0")} <= set(keys)
    assert len(keys) == 4  # the most recent development version kept, the others evicted


def test_evicted_models_batchers_are_closed():
    registry = FakeRegistry()
    for i in range(3):
        registry.models[("t", f"m{i}")] = {"1.0.0": "staging"}

    async def scenario():
        cache = _cache(registry, tenant_max_models=1)
        first = await cache.get("t", "m0", None)
        await first.batcher.predict(np.ones((1, 4)))
        await cache.get("t", "m1", None)
        await asyncio.sleep(0.01)
        return first, cache

    first, cache = asyncio.run(scenario())
    assert first.batcher.closed and first.batcher._worker.done() and cache.evictions == 1


def test_unknown_ids_and_versions_are_remembered_without_asking_the_registry_again():
    registry = FakeRegistry()
    registry.models[("t", "known")] = {"1.0.0": "production"}
    bogus = str(uuid.uuid4())

    async def scenario():
        cache = _cache(registry, negative_ttl_s=60)
        for _ in range(20):
            with pytest.raises(ModelNotFound):
                await cache.resolve("t", bogus, None)
            with pytest.raises(ModelNotFound):
                await cache.resolve("t", bogus, "2.0.0")
        calls_after_model = registry.calls
        for _ in range(20):
            with pytest.raises(VersionNotFound):
                await cache.resolve("t", "known", "9.9.9")
        calls_after_version = registry.calls - calls_after_model
        cache.invalidate("t", "known")  # a stage change or new version through this API forgets at once
        registry.models[("t", "known")]["9.9.9"] = "development"
        return calls_after_model, calls_after_version, await cache.resolve("t", "known", "9.9.9")

    model_calls, version_calls, resolved = asyncio.run(scenario())
    assert model_calls == 1 and version_calls == 1  # one resolution each, then remembered
    assert resolved.version == "9.9.9"


# -- values a model cannot take -------------------------------------------------------------------
def test_tree_models_and_non_sklearn_models_take_float32_and_others_float64():
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(FRAME, LABELS)
    wrapped = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3, random_state=0)).fit(FRAME, LABELS)
    logistic = LogisticRegression(max_iter=500).fit(FRAME, LABELS)
    assert input_limit(_loaded(forest)) == FLOAT32_MAX
    assert input_limit(_loaded(wrapped)) == FLOAT32_MAX
    assert input_limit(_loaded(None, framework="pytorch")) == FLOAT32_MAX
    assert input_limit(_loaded(logistic)) > 1e300


@pytest.mark.parametrize("feature,value,fragment", [
    ("avg_order_value", 1e300, "float32"),
    ("avg_order_value", 10 ** 400, "out of range"),
    ("total_orders", 2 ** 63, "64-bit integer"),
    ("total_orders", -(2 ** 70), "64-bit integer"),
    ("support_tickets", 1e19, "64-bit integer"),
])
def test_values_the_model_cannot_take_are_refused_by_name(feature, value, fragment):
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(FRAME, LABELS)
    model = _loaded(forest)
    model.matrix_fn = lambda m: (m[:, 0], None)
    row = {**FRAME.iloc[0].to_dict(), "total_orders": 3, "days_since_last_order": 4, "support_tickets": 1, feature: value}
    with pytest.raises(FeatureValidationError) as refused:
        model_inputs(model, [row])
    [problem] = refused.value.details["problems"]
    assert problem["feature"] == feature and fragment in problem["problem"]


# -- explanation cost -----------------------------------------------------------------------------
@pytest.mark.parametrize("n_features", [4, 12])
def test_the_explanation_cost_counts_the_rows_the_explainer_predicts(n_features):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, n_features)), columns=[f"f{i}" for i in range(n_features)])
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame, (frame["f0"] > 0).astype(int))
    predicted = []
    original = forest.predict_proba
    forest.predict_proba = lambda X: (predicted.append(len(X)), original(X))[1]
    model = _loaded(forest, background=frame.head(30))
    model.features = [FeatureSpec(c, "double") for c in frame.columns]
    cost = explanation_cost(model, 1, 32)
    explain(forest, frame.iloc[[0]], model_type="classification", classes=None, background=model.background, n_samples=32)
    assert cost.background_rows == 30
    assert abs(sum(predicted) - cost.total) <= cost.background_rows + 1  # the empty and full coalitions' rounding
    with pytest.raises(ValueError, match="above the bound"):
        explain(forest, frame.iloc[[0]], model_type="classification", classes=None, background=model.background,
                n_samples=32, max_cost=cost.total - 100)
