"""DataType / TypeSpec: parsing, rendering and the exact Polars and Arrow mapping."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tauro_workbench.dtypes import DataType, TypeSpec, can_cast_losslessly
from tauro_workbench.exceptions import SchemaValidationError

SIMPLE = {
    "INT": (pl.Int32(), pa.int32()),
    "BIGINT": (pl.Int64(), pa.int64()),
    "FLOAT": (pl.Float32(), pa.float32()),
    "DOUBLE": (pl.Float64(), pa.float64()),
    "STRING": (pl.String(), pa.large_string()),
    "BOOLEAN": (pl.Boolean(), pa.bool_()),
    "TIMESTAMP": (pl.Datetime("us", "UTC"), pa.timestamp("us", tz="UTC")),
    "DATE": (pl.Date(), pa.date32()),
}


@pytest.mark.parametrize("text", ["double", "Double", " DOUBLE ", "dOuBlE"])
def test_data_type_accepts_case_insensitive_strings(text: str) -> None:
    assert DataType(text) is DataType.DOUBLE


def test_data_type_members_and_unknown_names() -> None:
    assert [m.name for m in DataType] == [
        "INT",
        "BIGINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
        "STRING",
        "BOOLEAN",
        "TIMESTAMP",
        "DATE",
        "ARRAY",
        "MAP",
        "STRUCT",
    ]
    with pytest.raises(ValueError):
        DataType("NUMBER")
    with pytest.raises(ValueError):
        DataType(3)


@pytest.mark.parametrize("name", sorted(SIMPLE))
def test_simple_types_map_exactly(name: str) -> None:
    polars_type, arrow_type = SIMPLE[name]
    spec = TypeSpec.parse(name)
    assert spec == TypeSpec.of(DataType(name)) == TypeSpec(DataType(name))
    assert spec.to_polars() == polars_type
    assert spec.to_arrow() == arrow_type
    assert str(spec) == name
    assert TypeSpec.from_polars(polars_type) == spec
    assert TypeSpec.from_arrow(arrow_type) == spec


@pytest.mark.parametrize(
    ("text", "polars_type", "arrow_type"),
    [
        ("DECIMAL(12,2)", pl.Decimal(12, 2), pa.decimal128(12, 2)),
        ("DECIMAL(38,0)", pl.Decimal(38, 0), pa.decimal128(38, 0)),
        ("ARRAY<DOUBLE>", pl.List(pl.Float64), pa.large_list(pa.float64())),
        ("ARRAY<DECIMAL(5,1)>", pl.List(pl.Decimal(5, 1)), pa.large_list(pa.decimal128(5, 1))),
        (
            "MAP<STRING,BIGINT>",
            pl.List(pl.Struct({"key": pl.String, "value": pl.Int64})),
            pa.map_(pa.large_string(), pa.int64()),
        ),
        (
            "STRUCT<city:STRING,zip:INT>",
            pl.Struct({"city": pl.String, "zip": pl.Int32}),
            pa.struct([pa.field("city", pa.large_string()), pa.field("zip", pa.int32())]),
        ),
        (
            "ARRAY<STRUCT<at:TIMESTAMP,tags:ARRAY<STRING>>>",
            pl.List(pl.Struct({"at": pl.Datetime("us", "UTC"), "tags": pl.List(pl.String)})),
            pa.large_list(
                pa.struct(
                    [
                        pa.field("at", pa.timestamp("us", tz="UTC")),
                        pa.field("tags", pa.large_list(pa.large_string())),
                    ]
                )
            ),
        ),
    ],
)
def test_parametrized_types_map_exactly(text: str, polars_type: pl.DataType, arrow_type: pa.DataType) -> None:
    spec = TypeSpec.parse(text)
    assert str(spec) == text
    assert spec.to_polars() == polars_type
    assert spec.to_arrow() == arrow_type
    assert TypeSpec.from_polars(polars_type) == spec
    assert TypeSpec.from_arrow(arrow_type) == spec


def test_parsing_is_case_and_space_insensitive() -> None:
    assert TypeSpec.parse(" decimal( 12 , 2 ) ") == TypeSpec(DataType.DECIMAL, precision=12, scale=2)
    assert str(TypeSpec.parse("map< string , array<int> >")) == "MAP<STRING,ARRAY<INT>>"
    assert TypeSpec.parse("DECIMAL(7)") == TypeSpec(DataType.DECIMAL, precision=7, scale=0)


def test_bare_parametrized_types_get_documented_defaults() -> None:
    assert str(TypeSpec.parse("DECIMAL")) == "DECIMAL(38,9)"
    assert str(TypeSpec.of(DataType.DECIMAL)) == "DECIMAL(38,9)"
    assert str(TypeSpec.parse("ARRAY")) == "ARRAY<DOUBLE>"
    assert str(TypeSpec.parse("MAP")) == "MAP<STRING,STRING>"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("STRUCT", "STRUCT needs its fields"),
        ("DECIMAL(39,2)", "precision"),
        ("DECIMAL(5,6)", "precision"),
        ("DECIMAL(0)", "precision"),
        ("DECIMAL(a)", "expected a number"),
        ("ARRAY<>", "unknown type '>'"),
        ("MAP<STRING>", "expected ','"),
        ("NUMBER", "unknown type 'NUMBER'; valid: INT, BIGINT"),
        ("INT INT", "unexpected 'INT'"),
        ("STRUCT<a:INT,a:INT>", "duplicate struct field 'a'"),
        ("STRUCT<1a:INT>", "invalid struct field name"),
        ("ARRAY<DOUBLE", "unexpected end"),
        ("DOUBLE$", "unexpected character '$'"),
        ("", "unexpected end"),
    ],
)
def test_bad_type_strings_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(SchemaValidationError) as info:
        TypeSpec.parse(text)
    assert fragment in str(info.value)
    assert repr(text) in str(info.value)
    assert "DECIMAL(12,2)" in str(info.value)  # the hint shows valid spellings


def test_of_rejects_non_types() -> None:
    with pytest.raises(SchemaValidationError, match="got 3"):
        TypeSpec.of(3)  # type: ignore[arg-type]


def test_from_polars_widens_small_types_and_rejects_unmappable_ones() -> None:
    assert TypeSpec.from_polars(pl.Int8()) == TypeSpec(DataType.INT)
    assert TypeSpec.from_polars(pl.UInt16()) == TypeSpec(DataType.INT)
    assert TypeSpec.from_polars(pl.UInt32()) == TypeSpec(DataType.BIGINT)
    assert TypeSpec.from_polars(pl.Datetime("ns")) == TypeSpec(DataType.TIMESTAMP)
    assert TypeSpec.from_polars(pl.Datetime("ms", "Europe/Madrid")) == TypeSpec(DataType.TIMESTAMP)
    assert TypeSpec.from_polars(pl.Categorical()) == TypeSpec(DataType.STRING)
    assert TypeSpec.from_polars(pl.Array(pl.Float32, 3)) == TypeSpec.parse("ARRAY<FLOAT>")
    assert TypeSpec.from_polars(pl.Map(pl.String, pl.Int64)) == TypeSpec.parse("MAP<STRING,BIGINT>")
    for dtype in (pl.Binary(), pl.Time(), pl.Duration("us"), pl.Object()):
        with pytest.raises(SchemaValidationError, match="has no feature data type"):
            TypeSpec.from_polars(dtype)
    with pytest.raises(SchemaValidationError, match="has no feature data type"):
        TypeSpec.from_arrow(pa.binary())


def test_is_numeric() -> None:
    numeric = {"INT", "BIGINT", "FLOAT", "DOUBLE", "DECIMAL"}
    for member in DataType:
        if member is DataType.STRUCT:
            continue
        assert TypeSpec.of(member).is_numeric is (member.name in numeric)


# -- property: any spec round-trips through str, Polars and Arrow -------------------------

_field_names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
_leaves = st.one_of(
    st.sampled_from([TypeSpec(DataType(n)) for n in SIMPLE]),
    st.integers(1, 38).flatmap(
        lambda p: st.integers(0, p).map(lambda s: TypeSpec(DataType.DECIMAL, precision=p, scale=s))
    ),
)


def _extend(children: st.SearchStrategy[TypeSpec]) -> st.SearchStrategy[TypeSpec]:
    return st.one_of(
        children.map(lambda e: TypeSpec(DataType.ARRAY, element=e)),
        st.tuples(_leaves, children).map(lambda kv: TypeSpec(DataType.MAP, key=kv[0], value=kv[1])),
        st.dictionaries(_field_names, children, min_size=1, max_size=3).map(
            lambda d: TypeSpec(DataType.STRUCT, fields=tuple(d.items()))
        ),
    )


type_specs = st.recursive(_leaves, _extend, max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(type_specs)
def test_every_spec_round_trips(spec: TypeSpec) -> None:
    assert TypeSpec.parse(str(spec)) == spec
    assert TypeSpec.parse(str(spec).lower()) == spec
    assert TypeSpec.from_polars(spec.to_polars()) == spec
    assert TypeSpec.from_arrow(spec.to_arrow()) == spec
    # Polars and Arrow agree with each other: an empty column converts to the mapped type
    empty = pl.Series("c", [], dtype=spec.to_polars())
    assert TypeSpec.from_arrow(empty.to_arrow().type) == spec
    assert can_cast_losslessly(spec.to_polars(), spec)


# -- lossless casts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (pl.Int8(), "INT", True),
        (pl.Int32(), "INT", True),
        (pl.Int64(), "INT", False),
        (pl.UInt32(), "INT", False),
        (pl.UInt32(), "BIGINT", True),
        (pl.UInt64(), "BIGINT", False),
        (pl.Int16(), "FLOAT", True),
        (pl.Int32(), "FLOAT", False),
        (pl.Int32(), "DOUBLE", True),
        (pl.Int64(), "DOUBLE", False),
        (pl.Float32(), "DOUBLE", True),
        (pl.Float64(), "FLOAT", False),
        (pl.Float64(), "INT", False),
        (pl.Int16(), "DECIMAL(5,0)", True),
        (pl.Int32(), "DECIMAL(12,2)", True),
        (pl.Int64(), "DECIMAL(12,2)", False),
        (pl.Decimal(10, 2), "DECIMAL(12,3)", True),
        (pl.Decimal(10, 2), "DECIMAL(12,1)", False),
        (pl.Decimal(10, 2), "DECIMAL(10,3)", False),
        (pl.Datetime("ns"), "TIMESTAMP", True),
        (pl.Datetime("ms", "Asia/Tokyo"), "TIMESTAMP", True),
        (pl.Date(), "TIMESTAMP", True),
        (pl.Datetime("us"), "DATE", False),
        (pl.String(), "TIMESTAMP", False),
        (pl.Categorical(), "STRING", True),
        (pl.Enum(["a", "b"]), "STRING", True),
        (pl.Int64(), "STRING", False),
        (pl.Boolean(), "BOOLEAN", True),
        (pl.Int8(), "BOOLEAN", False),
        (pl.Null(), "STRUCT<a:INT>", True),
        (pl.List(pl.Int16), "ARRAY<INT>", True),
        (pl.List(pl.Int64), "ARRAY<INT>", False),
        (pl.Array(pl.Float32, 2), "ARRAY<DOUBLE>", True),
        (pl.List(pl.Struct({"key": pl.String, "value": pl.Int32})), "MAP<STRING,BIGINT>", True),
        (pl.List(pl.Struct({"k": pl.String, "v": pl.Int32})), "MAP<STRING,BIGINT>", False),
        (pl.Map(pl.String, pl.Int32), "MAP<STRING,BIGINT>", True),
        (pl.Map(pl.String, pl.Int64), "MAP<STRING,INT>", False),
        (pl.Struct({"a": pl.Int8, "b": pl.String}), "STRUCT<a:INT,b:STRING>", True),
        (pl.Struct({"b": pl.String, "a": pl.Int8}), "STRUCT<a:INT,b:STRING>", False),
        (pl.Struct({"a": pl.Int64}), "STRUCT<a:INT>", False),
    ],
)
def test_lossless_cast_rules(source: pl.DataType, target: str, expected: bool) -> None:
    assert can_cast_losslessly(source, TypeSpec.parse(target)) is expected


_INT_TYPES = [pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_INT_TYPES),
    st.sampled_from(["INT", "BIGINT", "FLOAT", "DOUBLE", "DECIMAL(10,0)", "DECIMAL(20,2)"]),
)
def test_lossless_integer_casts_keep_the_extreme_values(source: type[pl.DataType], target: str) -> None:
    """Oracle: when a cast is declared lossless, the type's min and max survive a round trip."""
    spec = TypeSpec.parse(target)
    bounds = pl.select(low=pl.lit(0, dtype=source).lower_bound(), high=pl.lit(0, dtype=source).upper_bound())
    extremes = pl.Series([bounds.item(0, "low"), bounds.item(0, "high")], dtype=source)
    cast = extremes.cast(spec.to_polars(), strict=False)
    survives = cast.null_count() == 0 and (cast.cast(source, strict=False) == extremes).all()
    if can_cast_losslessly(source(), spec):
        assert survives
