"""FeatureGroupSchema.validate: every problem at once, lossless casts, UTC timestamps.

The property tests generate frames (valid and broken in several ways at once) and compare the
reported problems with a brute-force oracle computed row by row in plain Python.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.frames import to_dataframe, to_lazyframe, to_utc
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema

SCHEMA = FeatureGroupSchema(
    name="user_features",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[
        FeatureSchema("age", "INT", nullable=False, metadata={"min": 0, "max": 150}),
        FeatureSchema("plan", "STRING", metadata={"allowed_values": ["free", "pro", "team"]}),
        FeatureSchema("amount", "DOUBLE", metadata={"min": 0}),
        FeatureSchema("score", "FLOAT"),
    ],
)
ROLE = {"user_id": "entity key", "ts": "timestamp key", "age": "non-nullable feature"}
INT32_MAX = 2**31 - 1
UTC = UTC

_naive_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1))
_rows = st.fixed_dictionaries(
    {
        "user_id": st.one_of(st.integers(1, 10**12), st.none()),
        "ts": st.one_of(_naive_times, st.none()),
        "age": st.one_of(
            st.integers(0, 150), st.integers(-20, -1), st.integers(151, 400), st.just(2**40), st.none()
        ),
        "plan": st.sampled_from(["free", "pro", "team", "gold", "", None]),
        "amount": st.one_of(st.floats(-100, 1e6, allow_nan=False), st.none()),
        "score": st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(1e300), st.none()),
    }
)


_clean_rows = st.fixed_dictionaries(
    {
        "user_id": st.integers(1, 10**12),
        "ts": _naive_times,
        "age": st.integers(0, 150),
        "plan": st.sampled_from(["free", "pro", "team", None]),
        "amount": st.one_of(st.floats(0, 1e6, allow_nan=False), st.none()),
        "score": st.one_of(st.floats(-1e30, 1e30, allow_nan=False), st.none()),
    }
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[pl.DataFrame, set[str], bool, str | None]:
    """A frame plus: columns dropped, whether 'amount' has the wrong type, the ts time zone.

    Half of the frames are drawn from valid values only, so both outcomes are well covered.
    """
    clean = draw(st.booleans())
    rows = draw(st.lists(_clean_rows if clean else _rows, max_size=30))
    tz = draw(st.sampled_from([None, "UTC", "America/New_York", "Asia/Kolkata"]))
    frame = pl.DataFrame(
        rows,
        schema={
            "user_id": pl.Int64,
            "ts": pl.Datetime("us"),
            "age": pl.Int64,
            "plan": pl.String,
            "amount": pl.Float64,
            "score": pl.Float64,
        },
    )
    if tz is not None:
        frame = frame.with_columns(pl.col("ts").dt.replace_time_zone(tz))
    dropped = (
        set() if clean else set(draw(st.lists(st.sampled_from(SCHEMA.columns), max_size=2, unique=True)))
    )
    wrong_type = not clean and "amount" not in dropped and draw(st.booleans())
    if wrong_type:
        frame = frame.with_columns(pl.col("amount").cast(pl.String))
    if draw(st.booleans()):
        frame = frame.with_columns(extra=pl.lit("ignored"))
    return frame.drop(sorted(dropped)), dropped, wrong_type, tz


def oracle(frame: pl.DataFrame, dropped: set[str], wrong_type: bool) -> list[str]:
    """Return the expected problem texts (prefixes), computed row by row."""
    rows = frame.rows(named=True)
    expected: list[str] = []

    def values(column: str) -> list[object]:
        return [r[column] for r in rows]

    def add(prefix: str, offending: list[object]) -> None:
        if offending:
            expected.append(prefix.format(n=len(offending), sample=offending[:5]))

    if dropped:
        expected.append(f"missing columns {[c for c in SCHEMA.columns if c in dropped]}")
    if wrong_type:
        expected.append("feature 'amount' has type String, expected DOUBLE")
    present = [c for c in SCHEMA.columns if c not in dropped and not (wrong_type and c == "amount")]
    if "age" in present:
        ages = values("age")
        add(
            "feature 'age' (Int64) has {n} value(s) that do not fit INT exactly, e.g. {sample}",
            [a for a in ages if a is not None and a > INT32_MAX],
        )
        add(
            "feature 'age' has {n} value(s) below min 0, e.g. {sample}",
            [a for a in ages if a is not None and a < 0],
        )
        add(
            "feature 'age' has {n} value(s) above max 150, e.g. {sample}",
            [a for a in ages if a is not None and a > 150],
        )
    if "score" in present:
        add(
            "feature 'score' (Float64) has {n} value(s) that overflow FLOAT (float32), e.g. {sample}",
            [s for s in values("score") if s is not None and abs(s) > 3.5e38],
        )
    if "plan" in present:
        add(
            "feature 'plan' has {n} value(s) outside allowed_values ['free', 'pro', 'team'], e.g. {sample}",
            [p for p in values("plan") if p is not None and p not in ("free", "pro", "team")],
        )
    if "amount" in present:
        add(
            "feature 'amount' has {n} value(s) below min 0, e.g. {sample}",
            [a for a in values("amount") if a is not None and a < 0],
        )
    for column in ("user_id", "ts", "age"):
        if column in present:
            nulls = [i for i, v in enumerate(values(column)) if v is None]
            add(f"{ROLE[column]} {column!r} has {{n}} null value(s), e.g. at rows {nulls[:5]}", nulls)
    return expected


@settings(max_examples=120, deadline=None)
@given(frames(), st.sampled_from(["eager", "lazy", "arrow"]))
def test_every_problem_is_reported_at_once(
    case: tuple[pl.DataFrame, set[str], bool, str | None], form: str
) -> None:
    frame, dropped, wrong_type, _tz = case
    expected = oracle(frame, dropped, wrong_type)
    data = {"eager": frame, "lazy": frame.lazy(), "arrow": frame.to_arrow()}[form]
    event("invalid frame" if expected else "valid frame")
    if expected:
        with pytest.raises(SchemaValidationError) as info:
            SCHEMA.validate(data)
        problems = info.value.problems
        assert info.value.group == "user_features"
        assert len(problems) == len(expected), (problems, expected)
        for prefix in expected:
            assert sum(p.startswith(prefix) for p in problems) == 1, (prefix, problems)
        return
    result = SCHEMA.validate(data)
    assert result.columns == SCHEMA.columns
    assert dict(result.schema) == {"user_id": pl.Int64(), **SCHEMA.polars_schema()}
    want_ts = [
        None if t is None else (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))
        for t in frame.get_column("ts").to_list()
    ]
    assert result.get_column("ts").to_list() == want_ts
    assert result.get_column("age").to_list() == frame.get_column("age").to_list()
    assert result.get_column("score").to_list() == frame.get_column("score").cast(pl.Float32).to_list()


def test_a_frame_with_every_kind_of_problem() -> None:
    frame = pl.DataFrame(
        {
            "user_id": [1, None, 3],
            "ts": ["2026-01-01", "2026-01-02", None],
            "age": [-1, 200, None],
            "plan": ["free", "gold", "vip"],
            "score": [1.0, 2.0, 3.0],
        }
    )
    with pytest.raises(SchemaValidationError) as info:
        SCHEMA.validate(frame)
    problems = info.value.problems
    assert problems[0] == "missing columns ['amount'] (present: ['user_id', 'ts', 'age', 'plan', 'score'])"
    assert any(p.startswith("timestamp key 'ts' has type String, expected TIMESTAMP") for p in problems)
    assert "entity key 'user_id' has 1 null value(s), e.g. at rows [1]" in problems
    assert "non-nullable feature 'age' has 1 null value(s), e.g. at rows [2]" in problems
    assert "feature 'age' has 1 value(s) below min 0, e.g. [-1]" in problems
    assert "feature 'age' has 1 value(s) above max 150, e.g. [200]" in problems
    assert any("outside allowed_values" in p and "['gold', 'vip']" in p for p in problems)
    assert len(problems) == 7
    message = str(info.value)
    assert "7 problems" in message and "user_features" in message


def test_samples_are_capped_at_five_values() -> None:
    frame = _valid(n=20).with_columns(pl.Series("age", list(range(-20, 0))))
    with pytest.raises(SchemaValidationError) as info:
        SCHEMA.validate(frame)
    assert info.value.problems == [
        "feature 'age' has 20 value(s) below min 0, e.g. [-20, -19, -18, -17, -16]"
    ]


def _valid(n: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": list(range(1, n + 1)),
            "ts": [datetime(2026, 1, 1) + timedelta(hours=i) for i in range(n)],
            "age": [30] * n,
            "plan": ["free"] * n,
            "amount": [1.5] * n,
            "score": [0.5] * n,
        }
    )


def test_valid_frames_come_back_cast_and_ordered() -> None:
    frame = (
        _valid()
        .select(["score", "amount", "plan", "age", "ts", "user_id"])
        .with_columns(
            pl.col("age").cast(pl.Int8),
            pl.col("plan").cast(pl.Categorical),
            pl.col("score").cast(pl.Float32),
            pl.col("user_id").cast(pl.UInt16),
            pl.col("ts").cast(pl.Datetime("ns")),
            extra=pl.lit(1),
        )
    )
    result = SCHEMA.validate(frame)
    assert result.schema == pl.Schema(
        {
            "user_id": pl.Int64,
            "ts": pl.Datetime("us", "UTC"),
            "age": pl.Int32,
            "plan": pl.String,
            "amount": pl.Float64,
            "score": pl.Float32,
        }
    )
    assert result.get_column("ts").to_list()[0] == datetime(2026, 1, 1, tzinfo=UTC)
    kept = SCHEMA.validate(frame, extra_columns="keep")
    assert kept.columns == [*SCHEMA.columns, "extra"]
    with pytest.raises(SchemaValidationError, match=r"unexpected columns \['extra'\]"):
        SCHEMA.validate(frame, extra_columns="error")


def test_aware_timestamps_are_converted_and_naive_ones_taken_as_utc() -> None:
    madrid = _valid(1).with_columns(pl.col("ts").dt.replace_time_zone("Europe/Madrid"))
    assert SCHEMA.validate(madrid).item(0, "ts") == datetime(2025, 12, 31, 23, tzinfo=UTC)
    assert SCHEMA.validate(_valid(1)).item(0, "ts") == datetime(2026, 1, 1, tzinfo=UTC)
    dates = _valid(1).with_columns(pl.col("ts").dt.date())
    assert SCHEMA.validate(dates).item(0, "ts") == datetime(2026, 1, 1, tzinfo=UTC)


def test_pandas_and_arrow_inputs() -> None:
    frame = _valid()
    expected = SCHEMA.validate(frame)
    assert SCHEMA.validate(frame.to_pandas()).equals(expected)
    assert SCHEMA.validate(frame.to_arrow()).equals(expected)
    assert SCHEMA.validate(frame.to_arrow().to_batches()[0]).equals(expected)
    aware = frame.to_pandas()
    aware["ts"] = aware["ts"].dt.tz_localize("Asia/Tokyo")
    assert SCHEMA.validate(aware).item(0, "ts") == datetime(2025, 12, 31, 15, tzinfo=UTC)
    broken = frame.to_pandas()
    broken["age"] = [-1, 1, 2]
    with pytest.raises(SchemaValidationError, match="below min 0"):
        SCHEMA.validate(broken)


def test_narrowing_only_when_values_fit() -> None:
    g = FeatureGroupSchema(
        name="g",
        entity_keys=["id"],
        features=[
            FeatureSchema("small", "INT"),
            FeatureSchema("price", "DECIMAL(10,2)"),
            FeatureSchema("ratio", "FLOAT"),
            FeatureSchema("big", "DOUBLE"),
            FeatureSchema("day", "DATE"),
        ],
    )
    ok = pl.DataFrame(
        {
            "id": [1, 2],
            "small": pl.Series([1, -(2**31)], dtype=pl.Int64),
            "price": [1.5, 0.1],
            "ratio": [0.1, 1e30],
            "big": pl.Series([2**53, 3], dtype=pl.Int64),
            "day": [datetime(2026, 1, 1), datetime(2026, 2, 1)],
        }
    )
    result = g.validate(ok)
    assert result.schema["small"] == pl.Int32 and result.get_column("small").to_list() == [1, -(2**31)]
    assert result.get_column("price").to_list() == [Decimal("1.50"), Decimal("0.10")]
    assert result.schema["ratio"] == pl.Float32
    assert result.get_column("big").to_list() == [2.0**53, 3.0]
    assert result.get_column("day").to_list() == [date(2026, 1, 1), date(2026, 2, 1)]

    bad = ok.with_columns(
        pl.Series("small", [1, 2**31], dtype=pl.Int64),
        pl.Series("price", [1.234, 1e12]),
        pl.Series("ratio", [1e39, 0.0]),
        pl.Series("big", [2**53 + 1, 3], dtype=pl.Int64),
        pl.Series("day", [datetime(2026, 1, 1, 12), datetime(2026, 2, 1)]),
    )
    with pytest.raises(SchemaValidationError) as info:
        g.validate(bad)
    assert info.value.problems == [
        f"feature 'small' (Int64) has 1 value(s) that do not fit INT exactly, e.g. [{2**31}]",
        "feature 'price' (Float64) has 2 value(s) that do not fit DECIMAL(10,2) exactly, e.g. [1.234, 1000000000000.0]",
        "feature 'ratio' (Float64) has 1 value(s) that overflow FLOAT (float32), e.g. [1e+39]",
        f"feature 'big' (Int64) has 1 value(s) that do not fit DOUBLE exactly, e.g. [{2**53 + 1}]",
        "feature 'day' (Datetime(time_unit='us', time_zone=None)) has 1 value(s) that are not at midnight, "
        "so they are not dates, e.g. [datetime.datetime(2026, 1, 1, 12, 0)]",
    ]


@pytest.mark.parametrize(
    ("column", "values", "fragment"),
    [
        ("n", ["1", "2"], "feature 'n' has type String, expected INT (Int32); cast it explicitly"),
        ("n", [1.0, 2.0], "feature 'n' has type Float64, expected INT"),
        ("flag", [1, 0], "feature 'flag' has type Int64, expected BOOLEAN"),
        ("tags", ["a", "b"], "feature 'tags' has type String, expected ARRAY<STRING>"),
        ("id", [1.5, 2.5], "entity key 'id' has type Float64, expected an integer"),
    ],
)
def test_wrong_types_are_named(column: str, values: list[object], fragment: str) -> None:
    g = FeatureGroupSchema(
        name="g",
        entity_keys=["id"],
        features=[
            FeatureSchema("n", "INT"),
            FeatureSchema("flag", "BOOLEAN"),
            FeatureSchema("tags", "ARRAY<STRING>"),
        ],
    )
    frame = pl.DataFrame({"id": [1, 2], "n": [1, 2], "flag": [True, False], "tags": [["a"], []]})
    with pytest.raises(SchemaValidationError) as info:
        g.validate(frame.with_columns(pl.Series(column, values)))
    assert any(p.startswith(fragment) for p in info.value.problems), info.value.problems


def test_entity_keys_declared_and_undeclared() -> None:
    g = FeatureGroupSchema(name="g", entity_keys=["a", "b", "c"], entity_key_types={"c": "INT"})
    frame = pl.DataFrame(
        {"a": pl.Series([1], dtype=pl.UInt8), "b": ["x"], "c": pl.Series([7], dtype=pl.Int64)}
    )
    assert g.validate(frame).schema == pl.Schema({"a": pl.Int64, "b": pl.String, "c": pl.Int32})
    nulls = pl.DataFrame({"a": [None, None], "b": ["x", "y"], "c": [1, 2]})
    with pytest.raises(SchemaValidationError, match=r"entity key 'a' has 2 null value\(s\)"):
        g.validate(nulls)
    with pytest.raises(SchemaValidationError, match="entity key 'a' has type UInt64"):
        g.validate(frame.with_columns(pl.col("a").cast(pl.UInt64)))


def test_group_without_event_time_and_empty_frames() -> None:
    g = FeatureGroupSchema(name="totals", entity_keys=["id"], features=[FeatureSchema("total", "DOUBLE")])
    assert g.validate(pl.DataFrame({"id": [1], "total": [2.0]})).rows() == [(1, 2.0)]
    empty = g.validate(pl.DataFrame(schema={"id": pl.Int64, "total": pl.Float64}))
    assert empty.height == 0 and empty.schema["total"] == pl.Float64


def test_constraints_on_decimal_date_and_timestamp_features() -> None:
    g = FeatureGroupSchema(
        name="g",
        entity_keys=["id"],
        features=[
            FeatureSchema("price", "DECIMAL(10,2)", metadata={"min": 0.5, "max": 100}),
            FeatureSchema("day", "DATE", metadata={"min": "2026-01-01"}),
            FeatureSchema("seen", "TIMESTAMP", metadata={"max": datetime(2026, 6, 1)}),
            FeatureSchema("level", "INT", metadata={"allowed_values": [1, 2, 3]}),
        ],
    )
    frame = pl.DataFrame(
        {
            "id": [1, 2],
            "price": pl.Series([Decimal("0.25"), Decimal("101.00")], dtype=pl.Decimal(10, 2)),
            "day": [date(2025, 12, 31), date(2026, 1, 1)],
            "seen": [
                datetime(2026, 7, 1, tzinfo=ZoneInfo("UTC")),
                datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")),
            ],
            "level": [1, 4],
        }
    )
    with pytest.raises(SchemaValidationError) as info:
        g.validate(frame)
    text = "\n".join(info.value.problems)
    assert "feature 'price' has 1 value(s) below min 0.5, e.g. [Decimal('0.25')]" in text
    assert "feature 'price' has 1 value(s) above max 100" in text
    assert "feature 'day' has 1 value(s) below min '2026-01-01'" in text
    assert "feature 'seen' has 1 value(s) above max" in text
    assert "feature 'level' has 1 value(s) outside allowed_values [1, 2, 3], e.g. [4]" in text
    assert len(info.value.problems) == 5


def test_a_constraint_that_cannot_be_evaluated_is_reported_not_raised() -> None:
    g = FeatureGroupSchema(
        name="g",
        entity_keys=["id"],
        features=[
            FeatureSchema("tags", "ARRAY<STRING>", metadata={"min": 1}),
            FeatureSchema("n", "INT", metadata={"max": 1}),
        ],
    )
    with pytest.raises(SchemaValidationError) as info:
        g.validate(pl.DataFrame({"id": [1], "tags": [["a"]], "n": [5]}))
    problems = info.value.problems
    assert any(p.startswith("feature 'tags': metadata min") and "cannot be checked" in p for p in problems)
    assert "feature 'n' has 1 value(s) above max 1, e.g. [5]" in problems


def test_unsupported_inputs() -> None:
    with pytest.raises(SchemaValidationError, match="unsupported data of type list"):
        SCHEMA.validate([{"user_id": 1}])  # type: ignore[arg-type]
    with pytest.raises(SchemaValidationError, match="unsupported data of type Series"):
        to_lazyframe(pl.Series([1]))


def test_frame_conversions_and_to_utc() -> None:
    frame = _valid()
    assert to_dataframe(frame) is frame
    assert to_dataframe(frame.lazy()).equals(frame)
    reader = frame.to_arrow().to_reader()
    assert to_dataframe(reader).equals(frame)
    assert to_utc(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert to_utc(datetime(2026, 1, 1, 2, tzinfo=ZoneInfo("Europe/Madrid"))) == datetime(
        2026, 1, 1, 1, tzinfo=UTC
    )
    assert to_utc(date(2026, 1, 2)) == datetime(2026, 1, 2, tzinfo=UTC)
    assert to_utc("2026-01-01T05:00:00+05:00") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(SchemaValidationError, match="not an ISO 8601 datetime"):
        to_utc("yesterday")
    with pytest.raises(SchemaValidationError, match="expected a datetime"):
        to_utc(5)  # type: ignore[arg-type]
