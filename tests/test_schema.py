"""FeatureType, FeatureSchema and FeatureGroupSchema: construction rules and round trips."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tauro_workbench.dtypes import DataType, TypeSpec
from tauro_workbench.exceptions import FeatureNotFoundError, SchemaValidationError
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema, FeatureType, validate_identifier


def group(**options: object) -> FeatureGroupSchema:
    base: dict[str, object] = {"name": "g", "entity_keys": ["user_id"]}
    base.update(options)
    return FeatureGroupSchema(**base)  # type: ignore[arg-type]


# -- FeatureType / FeatureSchema ----------------------------------------------------------


@pytest.mark.parametrize("text", ["numerical", "NUMERICAL", " Numerical "])
def test_feature_type_accepts_case_insensitive_strings(text: str) -> None:
    assert FeatureType(text) is FeatureType.NUMERICAL


def test_feature_type_members() -> None:
    assert [m.name for m in FeatureType] == [
        "NUMERICAL",
        "CATEGORICAL",
        "TEXT",
        "VECTOR",
        "TIMESERIES",
        "COMPLEX",
    ]


def test_positional_and_keyword_forms_are_equal() -> None:
    positional = FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL)
    keyword = FeatureSchema(name="amount", data_type=DataType.DOUBLE, feature_type=FeatureType.NUMERICAL)
    strings = FeatureSchema("amount", "double", "numerical")
    assert positional == keyword == strings
    assert positional.description == "" and positional.nullable is True and positional.metadata == {}
    assert positional.polars_dtype == pl.Float64()
    assert positional.arrow_type == pa.float64()


def test_parametrized_type_strings_keep_their_parameters() -> None:
    feature = FeatureSchema("price", "decimal(12,2)")
    assert feature.data_type is DataType.DECIMAL
    assert feature.spec == TypeSpec(DataType.DECIMAL, precision=12, scale=2)
    assert feature.polars_dtype == pl.Decimal(12, 2)
    assert FeatureSchema("price", TypeSpec.parse("DECIMAL(12,2)")) == feature
    assert feature != FeatureSchema("price", DataType.DECIMAL)  # DECIMAL(38,9)


def test_dataclasses_replace_keeps_type_parameters() -> None:
    feature = FeatureSchema("price", "DECIMAL(12,2)")
    assert dataclasses.replace(feature, nullable=False).spec == feature.spec
    assert dataclasses.replace(feature, data_type="DOUBLE").spec == TypeSpec(DataType.DOUBLE)


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        ("INT", FeatureType.NUMERICAL),
        ("DECIMAL(5,2)", FeatureType.NUMERICAL),
        ("STRING", FeatureType.CATEGORICAL),
        ("BOOLEAN", FeatureType.CATEGORICAL),
        ("ARRAY<FLOAT>", FeatureType.VECTOR),
        ("DATE", FeatureType.TIMESERIES),
        ("TIMESTAMP", FeatureType.TIMESERIES),
        ("MAP<STRING,INT>", FeatureType.COMPLEX),
        ("STRUCT<a:INT>", FeatureType.COMPLEX),
    ],
)
def test_feature_type_is_inferred_when_omitted(data_type: str, expected: FeatureType) -> None:
    assert FeatureSchema("f", data_type).feature_type is expected


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "a b", "data_type": "INT"}, "'a b' is not a valid name"),
        ({"name": "x", "data_type": 5}, "data type 5 is not a DataType"),
        ({"name": "x", "data_type": "NUMBER"}, "unknown type 'NUMBER'"),
        ({"name": "x", "data_type": "INT", "feature_type": "scalar"}, "'scalar' is not one of NUMERICAL"),
        ({"name": "x", "data_type": "INT", "metadata": {"min": 5, "max": 1}}, "min 5 > max 1"),
        ({"name": "x", "data_type": "INT", "metadata": {"min": "a", "max": 1}}, "cannot be compared"),
        ({"name": "x", "data_type": "STRING", "metadata": {"allowed_values": "abc"}}, "must be a list"),
        ({"name": "x", "data_type": "INT", "metadata": ["min"]}, "metadata must be a mapping"),
        ({"name": "x", "data_type": DataType.STRUCT}, "STRUCT needs its fields"),
    ],
)
def test_bad_features_are_rejected_with_the_reason(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(SchemaValidationError) as info:
        FeatureSchema(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_feature_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(SchemaValidationError, match=r"unknown keys \['dtype'\]; valid keys"):
        FeatureSchema.from_dict({"name": "a", "dtype": "INT"})
    with pytest.raises(SchemaValidationError, match="needs 'name' and 'data_type'"):
        FeatureSchema.from_dict({"name": "a"})


def test_features_and_groups_are_hashable() -> None:
    assert len({FeatureSchema("a", "INT"), FeatureSchema("a", "int")}) == 1
    assert hash(group()) == hash(group())


# -- identifiers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../x", "a b", "", "1a", "a-b", "a/b", "a.b", "é", "x" * 129, " a", None, 3]
)
def test_unsafe_names_are_rejected(name: object) -> None:
    with pytest.raises(SchemaValidationError, match="is not a valid name"):
        validate_identifier(name, "Feature group name")
    with pytest.raises(SchemaValidationError, match="is not a valid name"):
        group(name=name)


@pytest.mark.parametrize("name", ["a", "_a", "user_features", "A1", "x" * 128])
def test_safe_names_are_accepted(name: str) -> None:
    assert validate_identifier(name, "name") == name


def test_reserved_prefix_is_rejected() -> None:
    with pytest.raises(SchemaValidationError, match="reserved prefix '_tauro'"):
        group(name="_TAURO_internal")


# -- FeatureGroupSchema construction ----------------------------------------------------


def test_group_defaults_and_lookups() -> None:
    g = group(
        timestamp_key="ts",
        created_timestamp_key="created_at",
        features=[FeatureSchema("age", "INT"), {"name": "region", "data_type": "STRING"}],
    )
    assert g.version == 1 and g.ttl is None and g.owner is None and g.tags == {}
    assert g.feature_names == ["age", "region"]
    assert g.time_columns == ["ts", "created_at"]
    assert g.columns == ["user_id", "ts", "created_at", "age", "region"]
    assert g.get_feature("region").spec == TypeSpec(DataType.STRING)
    assert g.column_spec("ts") == TypeSpec(DataType.TIMESTAMP)
    assert g.column_spec("user_id") is None
    assert g.polars_schema() == {
        "ts": pl.Datetime("us", "UTC"),
        "created_at": pl.Datetime("us", "UTC"),
        "age": pl.Int32(),
        "region": pl.String(),
    }
    arrow = g.arrow_schema()
    assert arrow.names == ["ts", "created_at", "age", "region"]
    assert not arrow.field("ts").nullable and arrow.field("created_at").nullable


def test_get_feature_lists_candidates() -> None:
    g = group(features=[FeatureSchema("age", "INT")])
    with pytest.raises(FeatureNotFoundError) as info:
        g.get_feature("agee")
    assert info.value.candidates == ["g.age"]
    assert "'agee'" in str(info.value)


def test_entity_keys_as_string_and_declared_key_types() -> None:
    g = group(entity_keys="user_id", entity_key_types={"user_id": "string"})
    assert g.entity_keys == ["user_id"]
    assert g.entity_key_types == {"user_id": DataType.STRING}
    assert g.polars_schema() == {"user_id": pl.String()}
    assert not g.arrow_schema().field("user_id").nullable


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"entity_keys": []}, "entity_keys must name at least one column"),
        ({"entity_keys": ["id", "id"]}, "'id' is declared twice (as entity key and as entity key)"),
        ({"timestamp_key": "user_id"}, "'user_id' is declared twice (as entity key and as timestamp key)"),
        ({"timestamp_key": "ts", "created_timestamp_key": "ts"}, "'ts' is declared twice"),
        (
            {"features": [FeatureSchema("user_id", "INT")]},
            "'user_id' is declared twice (as entity key and as feature)",
        ),
        (
            {"features": [FeatureSchema("a", "INT"), FeatureSchema("a", "DOUBLE")]},
            "'a' is declared twice (as feature and as feature)",
        ),
        ({"timestamp_key": "event time"}, "Timestamp key 'event time' is not a valid name"),
        ({"entity_keys": ["../id"]}, "Entity key '../id' is not a valid name"),
        ({"created_timestamp_key": "c"}, "created_timestamp_key needs a timestamp_key"),
        ({"entity_key_types": {"other": "INT"}}, "names 'other', which is not an entity key"),
        ({"entity_key_types": {"user_id": "DOUBLE"}}, "must be INT, BIGINT, STRING or DATE, not DOUBLE"),
        ({"entity_key_types": {"user_id": "UUID"}}, "'UUID' is not one of"),
        ({"version": 0}, "version must be an integer >= 1, got 0"),
        ({"version": -3}, "version must be an integer >= 1"),
        ({"version": "1"}, "got '1'"),
        ({"version": True}, "got True"),
        ({"version": 1.0}, "got 1.0"),
        ({"tags": ["a"]}, "tags must be a mapping"),
        ({"features": "age"}, "features must be a list"),
        ({"features": [3]}, "3 is not a FeatureSchema"),
        ({"entity_key_types": ["x"]}, "entity_key_types must be a mapping"),
    ],
)
def test_bad_groups_are_rejected_with_the_reason(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(SchemaValidationError) as info:
        group(**options)
    assert fragment in str(info.value)


def test_all_name_problems_of_a_group_are_reported_together() -> None:
    with pytest.raises(SchemaValidationError) as info:
        group(entity_keys=["id", "id"], timestamp_key="a b", features=[FeatureSchema("id", "INT")])
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("12h", timedelta(hours=12)),
        ("1.5h", timedelta(minutes=90)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("45", timedelta(seconds=45)),
        (" 7D ", timedelta(days=7)),
        (3600, timedelta(hours=1)),
        (0.5, timedelta(milliseconds=500)),
        (timedelta(days=1), timedelta(days=1)),
        (None, None),
    ],
)
def test_ttl_forms(ttl: object, expected: timedelta | None) -> None:
    assert group(ttl=ttl).ttl == expected


@pytest.mark.parametrize(
    ("ttl", "fragment"),
    [
        ("abc", "is not a duration"),
        ("-1d", "is not a duration"),
        ("7 days", "is not a duration"),
        ("", "is not a duration"),
        ("1e3", "is not a duration"),
        ("0s", "must be positive"),
        (0, "must be positive"),
        (-5, "must be positive"),
        (timedelta(0), "must be positive"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (10**20, "too large"),
        (True, "must be a duration"),
        ([1], "must be a timedelta, seconds or a string"),
    ],
)
def test_bad_ttls_are_rejected(ttl: object, fragment: str) -> None:
    with pytest.raises(SchemaValidationError) as info:
        group(ttl=ttl)
    assert fragment in str(info.value)


# -- serialization ----------------------------------------------------------------------


def test_to_dict_is_json_ready_and_documented_shape() -> None:
    g = group(
        version=2,
        timestamp_key="ts",
        ttl="1d",
        tags={"team": "risk"},
        owner="ana",
        features=[FeatureSchema("price", "DECIMAL(12,2)", nullable=False, metadata={"min": 0})],
    )
    data = g.to_dict()
    assert data["ttl_seconds"] == 86400.0
    assert data["features"][0] == {
        "name": "price",
        "data_type": "DECIMAL(12,2)",
        "feature_type": "NUMERICAL",
        "description": "",
        "nullable": False,
        "metadata": {"min": 0},
    }
    assert json.loads(json.dumps(data)) == data
    assert FeatureGroupSchema.from_dict(data) == g


def test_from_dict_accepts_hand_written_yaml(tmp_path: Path) -> None:
    text = """
name: user_features
entity_keys: [user_id]
timestamp_key: event_timestamp
ttl: 7d
features:
  - {name: age, data_type: int, feature_type: numerical, nullable: false, metadata: {min: 0, max: 150}}
  - {name: region, data_type: STRING}
"""
    path = tmp_path / "user_features.yaml"
    path.write_text(text)
    for source in (text, path, str(path)):
        g = FeatureGroupSchema.from_yaml(source)
        assert g.ttl == timedelta(days=7)
        assert g.get_feature("age").metadata == {"min": 0, "max": 150}


def test_from_dict_errors() -> None:
    with pytest.raises(SchemaValidationError, match=r"unknown keys \['colour'\].*valid keys"):
        FeatureGroupSchema.from_dict({"name": "g", "entity_keys": ["id"], "colour": "red"})
    with pytest.raises(SchemaValidationError, match="needs a 'name'"):
        FeatureGroupSchema.from_dict({"entity_keys": ["id"]})
    with pytest.raises(SchemaValidationError, match="either 'ttl' or 'ttl_seconds'"):
        FeatureGroupSchema.from_dict({"name": "g", "entity_keys": ["id"], "ttl": "1d", "ttl_seconds": 5})
    with pytest.raises(SchemaValidationError, match="must be a mapping"):
        FeatureGroupSchema.from_yaml("- a\n- b\n")


def test_fingerprint_is_stable_and_sensitive() -> None:
    a = group(features=[FeatureSchema("age", "INT")])
    assert a.fingerprint() == group(features=[FeatureSchema("age", "int")]).fingerprint()
    assert a.fingerprint() != group(features=[FeatureSchema("age", "BIGINT")]).fingerprint()
    assert len(a.fingerprint()) == 16


_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_type_strings = st.sampled_from(
    [
        "INT",
        "BIGINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL(12,2)",
        "STRING",
        "BOOLEAN",
        "TIMESTAMP",
        "DATE",
        "ARRAY<DOUBLE>",
        "MAP<STRING,BIGINT>",
        "STRUCT<city:STRING,zip:INT>",
    ]
)
_json_scalars = st.one_of(st.integers(-1000, 1000), st.text(max_size=5), st.booleans(), st.none())


@st.composite
def group_schemas(draw: st.DrawFn) -> FeatureGroupSchema:
    names = draw(st.lists(_names, min_size=2, max_size=8, unique=True))
    n_keys = draw(st.integers(1, min(2, len(names) - 1)))
    keys, rest = names[:n_keys], names[n_keys:]
    timestamp = rest.pop(0) if rest and draw(st.booleans()) else None
    created = rest.pop(0) if rest and timestamp and draw(st.booleans()) else None
    features = [
        FeatureSchema(
            name,
            draw(_type_strings),
            draw(st.sampled_from(list(FeatureType))),
            description=draw(st.text(max_size=10)),
            nullable=draw(st.booleans()),
            metadata=draw(
                st.dictionaries(st.sampled_from(["unit", "source", "owner"]), _json_scalars, max_size=2)
            ),
        )
        for name in rest
    ]
    return FeatureGroupSchema(
        name=draw(_names),
        version=draw(st.integers(1, 50)),
        entity_keys=keys,
        timestamp_key=timestamp,
        description=draw(st.text(max_size=20)),
        features=features,
        tags=draw(st.dictionaries(_names, _names, max_size=3)),
        ttl=draw(st.one_of(st.none(), st.integers(1, 10**8).map(lambda s: timedelta(seconds=s)))),
        created_timestamp_key=created,
        owner=draw(st.one_of(st.none(), _names)),
        entity_key_types=draw(
            st.dictionaries(st.sampled_from(keys), st.sampled_from(["INT", "BIGINT", "STRING", "DATE"]))
        ),
    )


@settings(max_examples=80, deadline=None)
@given(group_schemas())
def test_dict_json_and_yaml_round_trips(schema: FeatureGroupSchema) -> None:
    assert FeatureGroupSchema.from_dict(schema.to_dict()) == schema
    assert FeatureGroupSchema.from_json(schema.to_json()) == schema
    assert FeatureGroupSchema.from_yaml(schema.to_yaml()) == schema
    assert FeatureGroupSchema.from_json(schema.to_json()).fingerprint() == schema.fingerprint()
    assert [f.spec for f in FeatureGroupSchema.from_yaml(schema.to_yaml()).features] == [
        f.spec for f in schema.features
    ]
