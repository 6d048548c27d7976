"""Pure rules of references and answer rows (no Feast)."""

from __future__ import annotations

import pytest

from resources.errors import FeatureRefInvalid
from resources.features.refs import parse_refs, shape_rows


def test_parse_and_dedupe():
    refs = parse_refs(["v:a", "v:b", "v:a", "w:c"])
    assert [str(r) for r in refs] == ["v:a", "v:b", "w:c"]


def test_same_bare_name_from_two_views_is_refused():
    with pytest.raises(FeatureRefInvalid) as err:
        parse_refs(["v:a", "w:a"])
    assert err.value.details == {"feature_refs": ["v:a", "w:a"]}


def test_reserved_names_are_refused():
    with pytest.raises(FeatureRefInvalid):
        parse_refs(["v:status"])


def test_shape_marks_partial_and_missing():
    rows = [{"id": 1}, {"id": 2}, {"id": 3}]
    values = {"a": [1, None, None], "b": [2.5, 3.0, None]}
    shaped = shape_rows(rows, ["a", "b"], values)
    assert [r["status"] for r in shaped] == ["ok", "partial", "missing"]
    assert shaped[1] == {"id": 2, "a": None, "b": 3.0, "status": "partial", "missing": ["a"]}
