"""Python steps of sample_data/repo/pipeline.yaml (a node names one as ``transforms.py:function``)."""

from __future__ import annotations

import polars as pl


def daily_transactions(transactions: pl.DataFrame) -> pl.DataFrame:
    """Aggregate card transactions per user and day; the event time is the end of the day."""
    return (
        transactions.lazy()
        .unique("transaction_id", keep="first", maintain_order=True)
        .group_by("user_id", pl.col("transaction_ts").dt.truncate("1d").alias("day"))
        .agg(
            pl.len().cast(pl.Int32).alias("txn_count"),
            pl.col("amount").sum().alias("txn_amount_sum"),
            pl.col("amount").mean().alias("txn_amount_mean"),
            pl.col("amount").max().alias("txn_amount_max"),
            (pl.col("status") == "declined").sum().cast(pl.Int32).alias("declined_count"),
        )
        .select(
            "user_id", (pl.col("day") + pl.duration(days=1)).alias("day_end"), pl.exclude("user_id", "day")
        )
        .sort("day_end", "user_id")
        .collect()
    )
