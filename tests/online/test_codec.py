"""Encoding of entity keys and typed values: exact round trips, vectorized == scalar."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.online.codec import ORDER_WIDTH, ValueCodec, encode_entity, entity_key_expr
from tauro_workbench.online.memory import InMemoryOnlineStore
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tauro_workbench.validation import TIMESTAMP_MAX, TIMESTAMP_MIN

KEY_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=8),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(KEY_VALUES, min_size=1, max_size=3), min_size=2, max_size=2))
def test_key_encoding_is_injective(pair: list[list[Any]]) -> None:
    a, b = pair
    columns = [f"k{i}" for i in range(max(len(a), len(b)))]
    same = len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))
    assert (encode_entity(a, columns[: len(a)]) == encode_entity(b, columns[: len(b)])) == same


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-(2**63), 2**63 - 1), st.text(max_size=6), st.dates()), min_size=1, max_size=20
    )
)
def test_vectorized_keys_equal_scalar_keys(rows: list[tuple[int, str, date]]) -> None:
    frame = pl.DataFrame(rows, schema={"i": pl.Int64, "s": pl.String, "d": pl.Date}, orient="row")
    for columns in (["i"], ["s"], ["d"], ["i", "s", "d"], ["s", "s"]):
        got = frame.select(entity_key_expr(frame.schema, columns).alias("k")).get_column("k").to_list()
        assert got == [
            encode_entity([row[["i", "s", "d"].index(c)] for c in columns], columns) for row in rows
        ]


def test_one_and_the_string_one_are_different_keys() -> None:
    assert encode_entity([1], ["id"]) != encode_entity(["1"], ["id"])
    assert encode_entity(["a|sb"], ["k"]) != encode_entity(["a", "b"], ["k", "j"])


@pytest.mark.parametrize("bad", [True, 1.5, None, datetime(2024, 1, 1)])
def test_other_key_types_are_refused(bad: object) -> None:
    with pytest.raises(SchemaValidationError, match="entity keys are integers, strings or dates"):
        encode_entity([bad], ["id"])


TYPES: dict[str, st.SearchStrategy[Any]] = {
    "INT": st.integers(-(2**31), 2**31 - 1),
    "BIGINT": st.integers(-(2**63), 2**63 - 1),
    "DOUBLE": st.floats(allow_nan=True, allow_infinity=True),
    "FLOAT": st.floats(width=32, allow_nan=False, allow_infinity=True),
    "DECIMAL(12,3)": st.decimals(min_value=-(10**8), max_value=10**8, places=3, allow_nan=False),
    "STRING": st.text(max_size=10),
    "BOOLEAN": st.booleans(),
    "DATE": st.dates(),
    # the range validation accepts (tests/online/test_timestamp_range.py covers the rest)
    "TIMESTAMP": st.datetimes(
        min_value=TIMESTAMP_MIN.replace(tzinfo=None),
        max_value=TIMESTAMP_MAX.replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    "ARRAY<DOUBLE>": st.lists(st.floats(allow_nan=True) | st.none(), max_size=3),
    "ARRAY<DATE>": st.lists(st.dates(), max_size=3),
    "MAP<STRING,DECIMAL(5,2)>": st.lists(
        st.fixed_dictionaries(
            {
                "key": st.text(max_size=3),
                "value": st.decimals(-999, 999, places=2, allow_nan=False) | st.none(),
            }
        ),
        max_size=3,
    ),
    "STRUCT<t:TIMESTAMP,v:ARRAY<BIGINT>,s:STRING>": st.fixed_dictionaries(
        {
            "t": st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(UTC)) | st.none(),
            "v": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2) | st.none(),
            "s": st.text(max_size=3) | st.none(),
        }
    ),
}
SCHEMA = FeatureGroupSchema(
    name="typed",
    entity_keys=["id"],
    timestamp_key="ts",
    features=[FeatureSchema(f"f{i}", t) for i, t in enumerate(TYPES)],
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b and a.as_tuple().exponent == b.as_tuple().exponent
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(*(st.none() | s for s in TYPES.values())), min_size=1, max_size=5))
def test_values_round_trip_exactly(rows: list[tuple[Any, ...]]) -> None:
    """Oracle: the row as Polars itself gives it back (to_dicts) from the validated frame."""
    data: dict[str, Any] = {
        "id": list(range(len(rows))),
        "ts": [datetime(2024, 1, 1, tzinfo=UTC)] * len(rows),
    }
    for i in range(len(TYPES)):
        data[f"f{i}"] = [r[i] for r in rows]
    frame = SCHEMA.validate(pl.DataFrame(data, schema={"id": pl.Int64, **SCHEMA.polars_schema()}))
    codec = ValueCodec(SCHEMA)
    encoded = frame.select(codec.value_expr(frame).alias("v")).get_column("v").to_list()
    expected = frame.select(SCHEMA.feature_names).rows()
    for text, want in zip(encoded, expected, strict=True):
        json.loads(text[ORDER_WIDTH:])  # plain JSON, no pickle
        got = codec.decode(text.encode(), SCHEMA.feature_names)
        assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)
    raws: list[bytes | None] = [t.encode() for t in encoded]
    columns = codec.decode_columns([None, *raws], SCHEMA.feature_names)
    assert_frame_equal(pl.DataFrame(columns).slice(1), frame.select(SCHEMA.feature_names))
    assert pl.DataFrame(columns).row(0) == (None,) * len(TYPES)
    memory = InMemoryOnlineStore()
    memory.write(SCHEMA, frame)
    stored = memory.read(SCHEMA, [(0,)], SCHEMA.feature_names)[0]
    assert stored is not None and all(_same(g, w) for g, w in zip(stored, expected[0], strict=True))


def test_the_value_text_is_compact() -> None:
    frame = SCHEMA.validate(
        pl.DataFrame(
            {"id": [1], "ts": [datetime(2024, 1, 1)], "f0": [7], "f5": ["x"], "f7": [date(2024, 1, 1)]},
            schema_overrides={"f0": pl.Int32},
        ).with_columns(pl.lit(None).alias(f"f{i}") for i in (1, 2, 3, 4, 6, 8, 9, 10, 11, 12)),
    )
    text = frame.select(ValueCodec(SCHEMA).value_expr(frame)).item()
    assert text[ORDER_WIDTH:] == '[7,null,null,null,null,"x",null,19723,null,null,null,null,null]'
