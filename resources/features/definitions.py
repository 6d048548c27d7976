"""A tenant's feature definitions as a declarative document (JSON, no code): entities, sources,
feature views and feature services, checked as a whole, diffed against the current document, and
turned into Feast objects.

- ``FeatureDocument``: the document's shape (names, types, bounds). Structure only.
- ``problems(document, source_columns)``: every rule across objects at once (duplicate names,
  references to unknown objects, columns the source's schema lacks or holds with another type,
  a service naming an unknown feature), as ``[{"object", "problem"}]``; empty when it is sound.
- ``plan(current, new)``: the objects added, changed and removed (``"feature_view:name"``).
- ``feast_objects(document, path_of)``: the Feast objects ``FeatureStore.apply`` takes.

Types are the platform's names for Feast's: int32, int64, float32, float64, string, bool,
bytes, unix_timestamp (a field); join keys take int32, int64 or string.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from resources.schema_rules import refuse_lax_scalars

NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
FieldType = Literal["int32", "int64", "float32", "float64", "string", "bool", "bytes", "unix_timestamp"]
JoinKeyType = Literal["int32", "int64", "string"]
MAX_OBJECTS = 200  # of each kind, per tenant
MAX_FIELDS = 500  # per feature view
DEFAULT_TTL_S = 90 * 24 * 3600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: Any) -> Any:
        return refuse_lax_scalars(cls, data)


class JoinKey(_Strict):
    name: str = Field(pattern=NAME)
    type: JoinKeyType = "string"


class EntityDef(_Strict):
    name: str = Field(pattern=NAME)
    # Feast keys an entity by one column; a view keyed by several columns lists several entities
    join_keys: list[JoinKey] = Field(min_length=1, max_length=1, description="one join key (Feast keys an entity by one "
                                     "column): a view keyed by several columns lists one entity per column")
    description: str = Field(default="", max_length=1000)


class SourceDef(_Strict):
    name: str = Field(pattern=NAME)
    path: str = Field(min_length=1, max_length=1024, description="parquet file or folder: relative to the tenant's data area, or s3://")
    timestamp_field: str = Field(default="event_timestamp", pattern=NAME)
    created_timestamp_column: str | None = Field(default=None, pattern=NAME)
    description: str = Field(default="", max_length=1000)


class FieldDef(_Strict):
    name: str = Field(pattern=NAME)
    type: FieldType
    description: str = Field(default="", max_length=1000)


class FeatureViewDef(_Strict):
    name: str = Field(pattern=NAME)
    entities: list[str] = Field(min_length=1, max_length=4)
    source: str
    fields: list[FieldDef] = Field(min_length=1, max_length=MAX_FIELDS)
    ttl_seconds: int = Field(default=DEFAULT_TTL_S, ge=0, le=10 * 365 * 24 * 3600, description="0: no limit")
    online: bool = True
    tags: dict[str, str] = Field(default_factory=dict, max_length=20)
    description: str = Field(default="", max_length=1000)


class FeatureServiceDef(_Strict):
    name: str = Field(pattern=NAME)
    features: list[str] = Field(min_length=1, max_length=MAX_FIELDS,
                                description="'<view>:<feature>' for one feature, '<view>' for all of a view's")
    tags: dict[str, str] = Field(default_factory=dict, max_length=20)
    description: str = Field(default="", max_length=1000)


class FeatureDocument(_Strict):
    entities: list[EntityDef] = Field(default_factory=list, max_length=MAX_OBJECTS)
    sources: list[SourceDef] = Field(default_factory=list, max_length=MAX_OBJECTS)
    feature_views: list[FeatureViewDef] = Field(default_factory=list, max_length=MAX_OBJECTS)
    feature_services: list[FeatureServiceDef] = Field(default_factory=list, max_length=MAX_OBJECTS)

    def objects(self) -> dict[str, BaseModel]:
        """``"<kind>:<name>"`` -> its definition, every object of the document."""
        kinds = (("entity", self.entities), ("source", self.sources), ("feature_view", self.feature_views),
                 ("feature_service", self.feature_services))
        return {f"{kind}:{item.name}": item for kind, items in kinds for item in items}

    def service_refs(self, service: FeatureServiceDef) -> list[tuple[str, str]]:
        """(view, feature) pairs a service selects, in its order (a bare view: all its fields)."""
        views = {v.name: v for v in self.feature_views}
        refs: list[tuple[str, str]] = []
        for item in service.features:
            view, _, feature = item.partition(":")
            if feature:
                refs.append((view, feature))
            elif view in views:
                refs.extend((view, f.name) for f in views[view].fields)
        return refs


# -- the rules across objects ---------------------------------------------------------------------
# what a source column's Arrow type may be declared as (a parquet int32 column is not an int64 field)
_ARROW_TYPES: dict[str, tuple[str, ...]] = {
    "int32": ("int8", "int16", "int32", "uint8", "uint16"),
    "int64": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"),
    "float32": ("float", "halffloat"),
    "float64": ("float", "double", "halffloat"),
    "string": ("string", "large_string"),
    "bool": ("bool",),
    "bytes": ("binary", "large_binary"),
    "unix_timestamp": ("timestamp",),
}


def type_fits(declared: str, arrow_type: str) -> bool:
    """Whether a column of Arrow type ``arrow_type`` (``str(pa.DataType)``) holds a ``declared`` value."""
    base = arrow_type.split("[", 1)[0]
    return base in _ARROW_TYPES[declared]


SourceColumns = Callable[[SourceDef], "dict[str, str] | str"]  # column -> Arrow type, or why it cannot be read


def problems(document: FeatureDocument, source_columns: SourceColumns) -> list[dict[str, str]]:
    """Every problem of the document as a whole; ``source_columns`` reads a source's schema."""
    found: list[dict[str, str]] = []

    def problem(obj: str, text: str) -> None:
        found.append({"object": obj, "problem": text})

    for kind, items in (("entity", document.entities), ("source", document.sources),
                        ("feature_view", document.feature_views), ("feature_service", document.feature_services)):
        for name, count in Counter(i.name for i in items).items():
            if count > 1:
                problem(f"{kind}:{name}", f"{kind.replace('_', ' ')} '{name}' is defined {count} times")
    entities = {e.name: e for e in document.entities}
    sources = {s.name: s for s in document.sources}
    views = {v.name: v for v in document.feature_views}

    columns_of: dict[str, dict[str, str] | str] = {}
    for source in document.sources:
        columns = columns_of[source.name] = source_columns(source)
        if isinstance(columns, str):
            problem(f"source:{source.name}", columns)
            continue
        for role, column, declared in (("timestamp_field", source.timestamp_field, "unix_timestamp"),
                                       ("created_timestamp_column", source.created_timestamp_column, "unix_timestamp")):
            if column is None:
                continue
            if column not in columns:
                problem(f"source:{source.name}", f"{role} '{column}' is not a column of {source.path}")
            elif not type_fits(declared, columns[column]):
                problem(f"source:{source.name}", f"{role} '{column}' is {columns[column]}, not a timestamp")

    for view in document.feature_views:
        obj = f"feature_view:{view.name}"
        for name, count in Counter(f.name for f in view.fields).items():
            if count > 1:
                problem(obj, f"field '{name}' is given {count} times")
        join_keys: dict[str, str] = {}
        for entity_name in view.entities:
            entity = entities.get(entity_name)
            if entity is None:
                problem(obj, f"entity '{entity_name}' is not defined")
                continue
            join_keys.update({k.name: k.type for k in entity.join_keys})
        for field in view.fields:
            if field.name in join_keys:
                problem(obj, f"field '{field.name}' is a join key of its entities: list features only")
        source = sources.get(view.source)
        if source is None:
            problem(obj, f"source '{view.source}' is not defined")
            continue
        columns = columns_of.get(view.source)
        if not isinstance(columns, dict):
            continue  # the source's own problem is reported once
        for name, declared in [*join_keys.items(), *((f.name, f.type) for f in view.fields)]:
            if name not in columns:
                problem(obj, f"'{name}' is not a column of source '{source.name}' ({source.path})")
            elif not type_fits(declared, columns[name]):
                problem(obj, f"'{name}' is {declared} here but {columns[name]} in source '{source.name}'")

    for service in document.feature_services:
        obj = f"feature_service:{service.name}"
        for item in service.features:
            view_name, _, feature = item.partition(":")
            view = views.get(view_name)
            if view is None:
                problem(obj, f"'{item}': feature view '{view_name}' is not defined")
            elif feature and feature not in {f.name for f in view.fields}:
                problem(obj, f"'{item}': feature view '{view_name}' has no feature '{feature}'")
        for (view_name, feature), count in Counter(document.service_refs(service)).items():
            if count > 1:
                problem(obj, f"'{view_name}:{feature}' is selected {count} times")
    return found


def plan(current: FeatureDocument | None, new: FeatureDocument) -> dict[str, list[str]]:
    """What applying ``new`` over ``current`` does: ``{"added", "changed", "removed", "unchanged"}``,
    each a sorted list of ``"<kind>:<name>"``."""
    before = current.objects() if current is not None else {}
    after = new.objects()
    return {
        "added": sorted(set(after) - set(before)),
        "changed": sorted(k for k in set(after) & set(before) if after[k] != before[k]),
        "removed": sorted(set(before) - set(after)),
        "unchanged": sorted(k for k in set(after) & set(before) if after[k] == before[k]),
    }


CHURN_DOCUMENT = Path(__file__).with_name("demo_churn_definitions.json")


def churn_document() -> FeatureDocument:
    """The demo's churn definitions (the same objects as the Feast CLI example in ``mlservice/demo/feature_repo/``)."""
    return FeatureDocument.model_validate_json(CHURN_DOCUMENT.read_text())


# -- Feast ------------------------------------------------------------------------------------------
def feast_objects(document: FeatureDocument, path_of: Callable[[SourceDef], str],
                  s3_endpoint_url: str | None = None) -> list[Any]:
    """The Feast objects of a sound document (``problems`` found none); ``path_of`` gives the path
    Feast reads a source from (an absolute local path or an s3:// URI)."""
    from datetime import timedelta

    from feast import Entity, FeatureService, FeatureView, FileSource
    from feast import Field as FeastField
    from feast.value_type import ValueType

    value_types = {"int32": ValueType.INT32, "int64": ValueType.INT64, "string": ValueType.STRING}
    entities, sources, views = {}, {}, {}
    for entity in document.entities:
        [key] = entity.join_keys
        entities[entity.name] = Entity(name=entity.name, join_keys=[key.name], description=entity.description,
                                       value_type=value_types[key.type])
    for source in document.sources:
        path = path_of(source)
        sources[source.name] = FileSource(
            name=source.name, path=path, timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column or "", description=source.description,
            s3_endpoint_override=s3_endpoint_url if path.startswith("s3://") and s3_endpoint_url else None,
        )
    definitions = {e.name: e for e in document.entities}
    for view in document.feature_views:
        keys = [key for name in view.entities for key in definitions[name].join_keys]
        schema = [FeastField(name=k.name, dtype=feast_type(k.type)) for k in keys]
        schema += [FeastField(name=f.name, dtype=feast_type(f.type), description=f.description) for f in view.fields]
        views[view.name] = FeatureView(
            name=view.name, entities=[entities[n] for n in view.entities], source=sources[view.source], schema=schema,
            ttl=timedelta(seconds=view.ttl_seconds), online=view.online, tags=dict(view.tags), description=view.description,
        )
    services = []
    for service in document.feature_services:
        by_view: dict[str, list[str]] = {}
        for view_name, feature in document.service_refs(service):
            by_view.setdefault(view_name, []).append(feature)
        services.append(FeatureService(
            name=service.name, features=[views[v][names] for v, names in by_view.items()],
            tags=dict(service.tags), description=service.description,
        ))
    return [*entities.values(), *sources.values(), *views.values(), *services]


def _feast_types() -> dict[str, Any]:
    from feast import types

    return {"int32": types.Int32, "int64": types.Int64, "float32": types.Float32, "float64": types.Float64,
            "string": types.String, "bool": types.Bool, "bytes": types.Bytes, "unix_timestamp": types.UnixTimestamp}


def feast_type(name: str) -> Any:
    return _feast_types()[name]


def type_name(dtype: Any) -> str:
    """The platform's name of a Feast type (its own ``str`` for one the documents do not use)."""
    return next((name for name, feast in _feast_types().items() if feast == dtype), str(dtype))
