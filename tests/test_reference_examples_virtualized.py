"""The reference README's virtualized examples (QueryExecutor, section 6, Pattern 2), runnable."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from tauro_workbench import (
    DuckDBQueryExecutor,
    FeatureGroupSchema,
    FeatureSchema,
    SparkQueryExecutor,
    VirtualizedFeatureStore,
)


@pytest.fixture
def context(tmp_path: Path, spark: Any) -> SimpleNamespace:
    today = datetime.now(UTC)
    pl.DataFrame({"user_id": [123, 456], "birth_date": [date(1990, 1, 1), date(2000, 6, 1)]}).write_parquet(
        tmp_path / "users.parquet"
    )
    pl.DataFrame({"user_id": [123, 123, 456]}).write_parquet(tmp_path / "purchases.parquet")
    pl.DataFrame(
        {
            "customer_id": [7, 7, 8],
            "amount": [1.5, 2.5, 4.0],
            "transaction_date": [today, today, datetime(2020, 1, 1)],
        }
    ).write_parquet(tmp_path / "transactions.parquet")
    sources = {f"silver.{n}": str(tmp_path / f"{n}.parquet") for n in ("users", "purchases", "transactions")}
    return SimpleNamespace(sources=sources, spark=spark, feature_store_path=str(tmp_path / "repo"))


def test_query_executor_examples(context: SimpleNamespace) -> None:
    executor = DuckDBQueryExecutor(context)
    results = executor.execute("SELECT * FROM silver.users")
    assert results.collect().height == 2
    executor = SparkQueryExecutor(context)
    results = executor.execute("SELECT * FROM silver.users DISTRIBUTE BY user_id")
    assert sorted(results.collect()["user_id"].to_list()) == [123, 456]


def test_section_6_example(context: SimpleNamespace) -> None:
    app_context = context
    user_features_schema = FeatureGroupSchema(
        "user_features",
        entity_keys=["user_id"],
        features=[
            FeatureSchema("age", "INT", "NUMERICAL"),
            FeatureSchema("purchase_count", "BIGINT", "NUMERICAL"),
        ],
    )
    executor = SparkQueryExecutor(context)
    store = VirtualizedFeatureStore(context=app_context, query_executor=executor)
    store.register_features(user_features_schema)
    store.define_virtual_features(
        feature_group="user_features",
        queries={
            "age": "SELECT user_id, (YEAR(CURRENT_DATE) - YEAR(birth_date)) AS age FROM silver.users",
            "purchase_count": "SELECT user_id, COUNT(*) AS purchase_count FROM silver.purchases GROUP BY user_id",
        },
    )
    features = store.get_features(feature_names=["age", "purchase_count"], entity_ids={"user_id": [123, 456]})
    year = date.today().year
    assert features.collect().rows() == [(123, year - 1990, 2), (456, year - 2000, 1)]


@pytest.mark.parametrize("engine", ["spark", "duckdb"])
def test_pattern_2(context: SimpleNamespace, engine: str) -> None:
    schema = FeatureGroupSchema(
        "transaction_features",
        entity_keys=["customer_id"],
        features=[FeatureSchema("daily_spending", "DOUBLE", "NUMERICAL")],
    )
    executor: Any = SparkQueryExecutor(context) if engine == "spark" else DuckDBQueryExecutor(context)
    store = VirtualizedFeatureStore(context, query_executor=executor)
    store.register_features(schema)
    store.define_virtual_features(
        "transaction_features",
        queries={
            "daily_spending": """
                SELECT
                    customer_id,
                    SUM(amount) as daily_spending
                FROM silver.transactions
                WHERE DATE(transaction_date) = CURRENT_DATE()
                GROUP BY customer_id
            """
        },
        dialect="spark",  # the README's SQL is Spark SQL; DuckDB runs it transpiled
    )
    customer_ids = [7, 8]
    features = store.get_features(feature_names=["daily_spending"], entity_ids={"customer_id": customer_ids})
    assert features.collect().rows() == [(7, 4.0), (8, None)]
