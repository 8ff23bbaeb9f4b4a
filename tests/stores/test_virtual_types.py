"""Virtual result types: narrowing casts checked per value, and sources that changed type.

DuckDB's ``SUM`` of integers is HUGEINT (Polars ``Decimal(38,0)``); a BIGINT feature defined
as ``SUM(clicks)`` is accepted and each value is checked to fit when read. A source whose
column changed type since the definition fails the read with SourceSchemaDriftError naming
the source column, its old and its new type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tauro_workbench import FeatureGroupSchema, FeatureSchema
from tauro_workbench.dtypes import TypeSpec
from tauro_workbench.exceptions import FeatureStoreException, SourceSchemaDriftError, VirtualizationQueryError
from tauro_workbench.stores.virtual_types import result_fit
from tauro_workbench.stores.virtualized import VirtualizedFeatureStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _store(
    tmp_path: Path, frame: pl.DataFrame, *features: FeatureSchema, kind: str = "duckdb", **ctx: Any
) -> Any:
    frame.write_parquet(tmp_path / "tx.parquet")
    store = VirtualizedFeatureStore(
        {"sources": {"silver.tx": str(tmp_path / "tx.parquet")}, **ctx},
        config={"storage_path": str(tmp_path / "repo"), "virtualized": {"executor_type": kind}},
    )
    store.register_features(FeatureGroupSchema("g", entity_keys=["user_id"], features=list(features)))
    return store


def test_bigint_feature_from_duckdb_sum_is_accepted_and_typed(tmp_path: Path) -> None:
    clicks = pl.DataFrame(
        {"user_id": [1, 1, 2], "clicks": [3, 4, 5]}, schema={"user_id": pl.Int64, "clicks": pl.Int32}
    )
    store = _store(tmp_path, clicks, FeatureSchema("total", "BIGINT"), FeatureSchema("n", "INT"))
    store.define_virtual_features(
        "g", "SELECT user_id, SUM(clicks) AS total, COUNT(*) AS n FROM silver.tx GROUP BY user_id"
    )
    assert store.executor.schema("SELECT SUM(clicks) AS s FROM silver.tx")["s"] == pl.Decimal(38, 0)
    out = store.get_features(["g.total", "g.n"], entity_ids={"user_id": [2, 1]}).collect()
    assert out.schema["total"] == pl.Int64 and out.schema["n"] == pl.Int32
    assert out.rows() == [(2, 5, 1), (1, 7, 2)]


def test_a_sum_that_overflows_bigint_fails_the_read_naming_the_column(tmp_path: Path) -> None:
    big = 2**62
    clicks = pl.DataFrame({"user_id": [1, 1, 1, 2], "clicks": [big, big, big, 1]})
    store = _store(tmp_path, clicks, FeatureSchema("total", "BIGINT"))
    store.define_virtual_features("g", "SELECT user_id, SUM(clicks) AS total FROM silver.tx GROUP BY user_id")
    with pytest.raises(VirtualizationQueryError) as info:
        store.get_features(["g.total"]).collect()
    message = str(info.value)
    assert (
        "'total'" in message and "1 value(s)" in message and str(3 * big) in message and "BIGINT" in message
    )
    # the entity whose sum fits still reads
    assert store.get_features(["g.total"], entity_ids={"user_id": [2]}).collect()["total"].to_list() == [1]


def test_double_from_decimal_sums_is_checked_per_value(tmp_path: Path) -> None:
    prices = pl.DataFrame(
        {"user_id": [1, 1, 2], "price": [Decimal("0.10"), Decimal("0.20"), Decimal("123456789012345678.91")]},
        schema={"user_id": pl.Int64, "price": pl.Decimal(38, 2)},
    )
    store = _store(tmp_path, prices, FeatureSchema("spent", "DOUBLE"), FeatureSchema("mean", "DOUBLE"))
    store.define_virtual_features(
        "g", "SELECT user_id, SUM(price) AS spent, AVG(price) AS mean FROM silver.tx GROUP BY user_id"
    )
    out = store.get_features(["g.spent", "g.mean"], entity_ids={"user_id": [1]}).collect()
    assert out.schema["spent"] == pl.Float64 and out.rows() == [(1, 0.3, 0.15)]
    with pytest.raises(
        VirtualizationQueryError, match=r"'spent' \(Decimal\(precision=38, scale=2\)\) has 1 value"
    ):
        store.get_features(["g.spent"], entity_ids={"user_id": [2]}).collect()


def test_types_with_no_lossless_or_checked_cast_are_still_refused(tmp_path: Path) -> None:
    frame = pl.DataFrame({"user_id": [1], "amount": [1.5], "label": ["x"]})
    store = _store(tmp_path, frame, FeatureSchema("amount", "BIGINT"), FeatureSchema("label", "DOUBLE"))
    for feature, sql in [
        ("amount", "SELECT user_id, amount FROM silver.tx"),  # a float to an integer: round it in SQL
        ("amount", "SELECT user_id, SUM(CAST(amount AS DECIMAL(10,2))) AS amount FROM silver.tx GROUP BY 1"),
        ("label", "SELECT user_id, label FROM silver.tx"),
    ]:
        with pytest.raises(VirtualizationQueryError, match="no lossless cast"):
            store.define_virtual_features("g", {feature: sql})


@pytest.mark.parametrize(
    ("actual", "declared", "fit"),
    [
        (pl.Int64(), "BIGINT", "exact"),
        (pl.Int32(), "BIGINT", "lossless"),
        (pl.Decimal(38, 0), "BIGINT", "checked"),
        (pl.Decimal(38, 0), "INT", "checked"),
        (pl.Int64(), "INT", "checked"),
        (pl.Decimal(38, 2), "BIGINT", None),
        (pl.Float64(), "BIGINT", None),
        (pl.Decimal(38, 2), "DOUBLE", "checked"),
        (pl.Decimal(14, 6), "FLOAT", "checked"),
        (pl.Int64(), "DOUBLE", "checked"),
        (pl.Int32(), "DOUBLE", "lossless"),
        (pl.Float64(), "FLOAT", "checked"),
        (pl.Float64(), "DECIMAL(12,2)", "checked"),
        (pl.Decimal(38, 4), "DECIMAL(12,2)", "checked"),
        (pl.Datetime("us"), "DATE", "checked"),
        (pl.Datetime("ns", "Europe/Oslo"), "TIMESTAMP", "lossless"),
        (pl.String(), "DOUBLE", None),
        (pl.Float64(), "STRING", None),
        (pl.Boolean(), "INT", None),
    ],
)
def test_result_fit_rules(actual: pl.DataType, declared: str, fit: str | None) -> None:
    assert result_fit(actual, TypeSpec.of(declared)) == fit


def _drifting_store(tmp_path: Path, query: str) -> Any:
    frame = pl.DataFrame({"user_id": [1, 2], "ts": [T0, T0], "amount": [1.5, 2.5]})
    frame.write_parquet(tmp_path / "tx.parquet")
    store = VirtualizedFeatureStore(
        {"sources": {"silver.tx": str(tmp_path / "tx.parquet")}},
        config={"storage_path": str(tmp_path / "repo")},
    )
    store.register_features(
        FeatureGroupSchema(
            "g", entity_keys=["user_id"], timestamp_key="ts", features=[FeatureSchema("amount", "DOUBLE")]
        )
    )
    store.define_virtual_features("g", query)
    assert store.get_features(["g.amount"]).collect()["amount"].to_list() == [1.5, 2.5]
    # the source is rewritten with amount as text
    frame.with_columns(pl.col("amount").cast(pl.String) + " EUR").write_parquet(tmp_path / "tx.parquet")
    return store


FIXED = "CAST(split_part(amount, ' ', 1) AS DOUBLE)"


@pytest.mark.parametrize(
    ("query", "fixed"),
    [
        # the result column changes type
        (
            "SELECT user_id, ts, amount FROM silver.tx",
            f"SELECT user_id, ts, {FIXED} AS amount FROM silver.tx",
        ),
        # the SQL itself fails (no SUM of text)
        (
            "SELECT user_id, MAX(ts) AS ts, SUM(amount) AS amount FROM silver.tx GROUP BY user_id",
            f"SELECT user_id, MAX(ts) AS ts, SUM({FIXED}) AS amount FROM silver.tx GROUP BY user_id",
        ),
    ],
)
def test_a_source_column_that_changed_type_is_a_typed_drift_error(
    tmp_path: Path, query: str, fixed: str
) -> None:
    store = _drifting_store(tmp_path, query)
    with pytest.raises(SourceSchemaDriftError) as info:
        store.get_features(["g.amount"]).collect()
    err = info.value
    assert isinstance(err, FeatureStoreException) and isinstance(err, VirtualizationQueryError)
    assert err.group == "g" and err.changes == [("silver.tx.amount", "Float64", "String")]
    assert "silver.tx.amount was Float64, now String" in str(err)
    assert "Re-define the virtual group" in str(err) and "CAST" in str(err)
    # re-defined for the new type (a cast in its SQL), the group reads again
    store.define_virtual_features("g", fixed)
    assert store.get_features(["g.amount"]).collect()["amount"].to_list() == [1.5, 2.5]


def test_drift_on_spark_is_typed_too(spark: Any, tmp_path: Path) -> None:
    frame = pl.DataFrame({"user_id": [1], "ts": [T0], "amount": [1.5]})
    frame.write_parquet(tmp_path / "tx.parquet")
    store = VirtualizedFeatureStore(
        {"sources": {"silver.tx": str(tmp_path / "tx.parquet")}, "spark": spark},
        config={"storage_path": str(tmp_path / "repo"), "virtualized": {"executor_type": "spark"}},
    )
    store.register_features(
        FeatureGroupSchema(
            "g", entity_keys=["user_id"], timestamp_key="ts", features=[FeatureSchema("amount", "DOUBLE")]
        )
    )
    store.define_virtual_features("g", "SELECT user_id, ts, amount FROM silver.tx")
    frame.with_columns(pl.lit("x").alias("amount")).write_parquet(tmp_path / "tx.parquet")
    with pytest.raises(SourceSchemaDriftError, match=r"silver\.tx\.amount was Float64, now String"):
        store.get_features(["g.amount"]).collect()
    store.executor.close()
