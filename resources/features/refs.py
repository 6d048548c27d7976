"""Feature references and the shape of online answers: pure rules, no Feast import.

A reference is ``<feature_view>:<feature>``; an online answer holds one dict per entity row, in
the order asked: the join keys, every requested feature by its bare name (None where the store
has no value), ``status`` (``ok`` | ``partial`` | ``missing``) and ``missing`` (the names
whose value is None). Rows are never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resources.errors import FeatureRefInvalid, InvalidRequest

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
RESERVED = frozenset({"status", "missing"})
STATUS_OK, STATUS_PARTIAL, STATUS_MISSING = "ok", "partial", "missing"


@dataclass(frozen=True)
class FeatureRef:
    view: str
    feature: str

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"


def parse_ref(ref: object) -> FeatureRef:
    if not isinstance(ref, str):
        raise FeatureRefInvalid("a feature reference must be a string '<feature_view>:<feature>'", {"feature_ref": ref})
    view, sep, feature = ref.partition(":")
    if not sep or not NAME_RE.match(view) or not NAME_RE.match(feature):
        raise FeatureRefInvalid(
            f"malformed feature reference '{ref}': expected '<feature_view>:<feature>'", {"feature_ref": ref}
        )
    return FeatureRef(view, feature)


def parse_refs(refs: object) -> list[FeatureRef]:
    """Parsed, duplicates dropped (first one kept); two views' features with one bare name are
    refused because answers are keyed by bare name."""
    if not isinstance(refs, (list, tuple)) or not refs:
        raise FeatureRefInvalid("feature_refs must be a non-empty list of '<feature_view>:<feature>'")
    parsed: list[FeatureRef] = []
    owner: dict[str, str] = {}
    for ref in map(parse_ref, refs):
        if ref in parsed:
            continue
        if ref.feature in RESERVED:
            raise FeatureRefInvalid(f"feature name '{ref.feature}' is reserved in answers", {"feature_ref": str(ref)})
        if ref.feature in owner:
            raise FeatureRefInvalid(
                f"feature '{ref.feature}' is asked from both '{owner[ref.feature]}' and '{ref.view}'",
                {"feature_refs": [f"{owner[ref.feature]}:{ref.feature}", str(ref)]},
            )
        owner[ref.feature] = ref.view
        parsed.append(ref)
    return parsed


def check_entity_rows(rows: object, join_keys: Mapping[str, type]) -> list[dict[str, Any]]:
    """Each row names every join key, with a value of the key's type (str or int), and nothing else."""
    keys = list(join_keys)
    if not isinstance(rows, (list, tuple)) or not rows:
        raise InvalidRequest("entity_rows must be a non-empty list of objects", {"join_keys": keys})
    checked = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidRequest(f"entity_rows[{i}] must be an object", {"join_keys": keys})
        absent = [k for k in keys if k not in row]
        extra = [k for k in row if k not in join_keys]
        if absent or extra:
            raise InvalidRequest(
                f"entity_rows[{i}] must name exactly the join keys {keys}",
                {"row": i, "missing_keys": absent, "unknown_keys": extra},
            )
        bad = [k for k, kind in join_keys.items() if isinstance(row[k], bool) or not isinstance(row[k], kind)]
        if bad:
            raise InvalidRequest(
                f"entity_rows[{i}]: wrong type for join key(s) {bad}",
                {"row": i, "keys": bad, "expected": {k: join_keys[k].__name__ for k in bad}},
            )
        checked.append({k: row[k] for k in keys})
    return checked


def shape_rows(rows: list[dict[str, Any]], features: list[str], values: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """One answer per entity row from Feast's column-wise ``to_dict()``."""
    answers = []
    for i, row in enumerate(rows):
        answer = dict(row)
        missing = []
        for name in features:
            value = values[name][i]
            answer[name] = value
            if value is None:
                missing.append(name)
        answer["status"] = STATUS_OK if not missing else STATUS_MISSING if len(missing) == len(features) else STATUS_PARTIAL
        answer["missing"] = missing
        answers.append(answer)
    return answers
