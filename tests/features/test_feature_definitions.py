"""Feature definition documents (resources/features/definitions.py): the demo's churn document is
sound against its generated data and builds the same Feast objects as the Feast CLI example repo
(mlservice/demo/feature_repo/definitions.py); a document's problems are all listed at once; plans name what an
apply adds, changes and removes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from resources.features.definitions import CHURN_DOCUMENT as CHURN
from resources.features.definitions import (
    FeatureDocument,
    SourceDef,
    churn_document,
    feast_objects,
    plan,
    problems,
    type_fits,
)
from tests.features.conftest import seed_tenant


@pytest.fixture(scope="module")
def tenant_area(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("definitions")
    seed_tenant(data_dir, "acme-corp", n=50)
    return data_dir / "tenants" / "acme-corp"


def columns_in(area: Path):
    def read(source: SourceDef) -> dict[str, str] | str:
        path = area / source.path
        if not path.exists():
            return f"{source.path} does not exist"
        return {f.name: str(f.type) for f in pq.read_schema(path)}
    return read


def test_the_churn_document_is_sound_against_the_demo_data(tenant_area):
    assert problems(churn_document(), columns_in(tenant_area)) == []


def test_the_churn_document_builds_the_objects_of_the_feast_cli_example(tenant_area):
    from mlservice.demo.feature_repo.definitions import build_definitions

    built = {o.name: o for o in feast_objects(churn_document(), lambda s: str(tenant_area / s.path))}
    example = build_definitions(tenant_area / "features")
    assert set(built) == set(example)
    for name in ("customer_features", "order_features"):
        assert [(f.name, f.dtype) for f in built[name].schema] == [(f.name, f.dtype) for f in example[name].schema]
        assert built[name].ttl == example[name].ttl and built[name].entities == example[name].entities
        assert built[name].batch_source.path == example[name].batch_source.path
    for name in ("churn_v1", "churn_v2"):
        def selected(service):
            return [(p.name, [f.name for f in p.features]) for p in service.feature_view_projections]
        assert selected(built[name]) == selected(example[name])
    assert built["customer"].join_key == example["customer"].join_key == "customer_id"


def test_every_problem_is_listed_at_once(tenant_area):
    document = json.loads(CHURN.read_text())
    document["entities"].append({"name": "customer", "join_keys": [{"name": "customer_id"}]})  # duplicate
    view = document["feature_views"][0]
    view["fields"].append({"name": "lifetime_value", "type": "float64"})  # not in the source
    view["fields"][0]["type"] = "string"  # total_orders is an integer column
    view["fields"].append({"name": "customer_id", "type": "string"})  # a join key listed as a feature
    document["feature_views"][1]["entities"] = ["shopper"]  # unknown entity
    document["feature_views"].append({**document["feature_views"][1], "name": "orphan", "source": "nowhere", "entities": ["customer"]})
    document["sources"].append({"name": "missing_file", "path": "features/absent.parquet"})
    document["sources"][0] = {**document["sources"][0], "timestamp_field": "observed_at"}
    document["feature_services"][0]["features"].append("customer_features:no_such_feature")
    document["feature_services"][1]["features"].append("no_such_view")
    document["feature_services"][1]["features"].append("customer_features:total_orders")  # selected twice
    found = problems(FeatureDocument.model_validate(document), columns_in(tenant_area))
    text = [f"{p['object']}: {p['problem']}" for p in found]
    expected = [
        "entity:customer: entity 'customer' is defined 2 times",
        "source:customer_source: timestamp_field 'observed_at' is not a column of features/customer_features.parquet",
        "source:missing_file: features/absent.parquet does not exist",
        "feature_view:customer_features: field 'customer_id' is a join key of its entities: list features only",
        "feature_view:customer_features: 'total_orders' is string here but int64 in source 'customer_source'",
        "feature_view:customer_features: 'lifetime_value' is not a column of source 'customer_source'",
        "feature_view:order_features: entity 'shopper' is not defined",
        "feature_view:orphan: source 'nowhere' is not defined",
        "feature_service:churn_v1: 'customer_features:no_such_feature': feature view 'customer_features' has no feature",
        "feature_service:churn_v2: 'no_such_view': feature view 'no_such_view' is not defined",
        "feature_service:churn_v2: 'customer_features:total_orders' is selected 2 times",
    ]
    for line in expected:
        assert any(t.startswith(line) for t in text), (line, text)
    assert len(found) == len(expected), text


def test_the_schema_refuses_unknown_types_names_and_fields():
    base = json.loads(CHURN.read_text())
    for mutate in (
        lambda d: d["feature_views"][0]["fields"][0].update(type="decimal"),
        lambda d: d["entities"][0]["join_keys"][0].update(type="float64"),  # not a join key type
        lambda d: d["entities"][0]["join_keys"].append({"name": "region"}),  # Feast: one key per entity
        lambda d: d["feature_views"][0].update(name="../escape"),
        lambda d: d["sources"][0].update(code="import os"),  # no field the schema does not know
        lambda d: d["feature_views"][0].update(ttl_seconds=-1),
    ):
        document = json.loads(json.dumps(base))
        mutate(document)
        with pytest.raises(ValidationError):
            FeatureDocument.model_validate(document)


def test_a_plan_names_what_is_added_changed_and_removed():
    current = churn_document()
    document = json.loads(CHURN.read_text())
    document["feature_views"][1]["ttl_seconds"] = 3600  # order_features changed
    document["feature_services"] = document["feature_services"][:1]  # churn_v2 removed
    document["feature_services"].append({"name": "churn_small", "features": ["customer_features:total_orders"]})
    planned = plan(current, FeatureDocument.model_validate(document))
    assert planned["added"] == ["feature_service:churn_small"]
    assert planned["changed"] == ["feature_view:order_features"]
    assert planned["removed"] == ["feature_service:churn_v2"]
    assert "feature_view:customer_features" in planned["unchanged"]
    assert plan(None, current)["added"] == sorted(current.objects())


@pytest.mark.parametrize(("declared", "arrow", "fits"), [
    ("int64", "int32", True), ("int32", "int64", False), ("float64", "float", True), ("float32", "double", False),
    ("string", "large_string", True), ("unix_timestamp", "timestamp[us, tz=UTC]", True), ("int64", "double", False),
])
def test_declared_types_against_arrow_columns(declared, arrow, fits):
    assert type_fits(declared, arrow) is fits
