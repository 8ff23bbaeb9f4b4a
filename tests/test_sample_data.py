"""The committed sample data: deterministic, small, and with the documented shift and quirks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
TABLES = ["users", "purchases", "transactions"]
UTC_US = pl.Datetime("us", "UTC")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_data_generate", SAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return dict(_generator().generate(tmp_path_factory.mktemp("silver")))


@pytest.mark.parametrize("table", TABLES)
def test_regenerating_gives_the_committed_data(regenerated: dict[str, Path], table: str) -> None:
    committed = pl.read_parquet(SAMPLE / "silver" / f"{table}.parquet")
    fresh = pl.read_parquet(regenerated[table])
    assert fresh.schema == committed.schema
    assert fresh.equals(committed)


def test_sizes_are_small() -> None:
    total = sum(f.stat().st_size for f in (SAMPLE / "silver").glob("*.parquet"))
    assert total < 5 * 1024 * 1024
    assert {f.stem for f in (SAMPLE / "silver").glob("*.parquet")} == set(TABLES)


def test_timestamps_are_utc_microseconds() -> None:
    for table in TABLES:
        frame = pl.read_parquet(SAMPLE / "silver" / f"{table}.parquet")
        for name, dtype in frame.schema.items():
            if isinstance(dtype, pl.Datetime):
                assert dtype == UTC_US, (table, name)


def _monthly(table: str, time_column: str) -> pl.DataFrame:
    frame = pl.read_parquet(SAMPLE / "silver" / f"{table}.parquet")
    return frame.with_columns(month=pl.col(time_column).dt.month())


@pytest.mark.parametrize(
    ("table", "time_column"), [("purchases", "purchased_at"), ("transactions", "transaction_ts")]
)
def test_last_month_is_shifted(table: str, time_column: str) -> None:
    frame = _monthly(table, time_column)
    assert frame.get_column("month").unique().sort().to_list() == [1, 2, 3, 4, 5, 6]
    before = frame.filter(pl.col("month") < 6).get_column("amount").mean()
    last = frame.filter(pl.col("month") == 6).get_column("amount").mean()
    assert isinstance(before, float) and isinstance(last, float)
    assert last > 1.4 * before
    monthly = (
        frame.filter(pl.col("month") < 6).group_by("month").agg(pl.col("amount").mean()).get_column("amount")
    )
    assert monthly.max() < 1.15 * monthly.min()  # the earlier months are stable


def test_category_mix_changes_in_the_last_month() -> None:
    frame = _monthly("purchases", "purchased_at")
    share = frame.group_by(pl.col("month") == 6).agg(
        (pl.col("category") == "electronics").mean().alias("share")
    )
    shares = dict(zip(share.get_column("month").to_list(), share.get_column("share").to_list(), strict=True))
    assert shares[False] < 0.15 and shares[True] > 0.3


@pytest.mark.parametrize(
    ("table", "event", "created", "key"),
    [
        ("purchases", "purchased_at", "ingested_at", "purchase_id"),
        ("transactions", "transaction_ts", "created_at", "transaction_id"),
    ],
)
def test_late_and_duplicate_events(table: str, event: str, created: str, key: str) -> None:
    frame = pl.read_parquet(SAMPLE / "silver" / f"{table}.parquet")
    assert (frame.get_column(created) >= frame.get_column(event)).all()
    late = frame.filter(pl.col(created) - pl.col(event) > pl.duration(days=1))
    assert 0.01 < late.height / frame.height < 0.06
    assert late.get_column("is_late").all()
    duplicates = frame.height - frame.unique().height
    assert duplicates > 0
    assert frame.get_column(key).n_unique() == frame.height - duplicates  # the copies are exact


def test_users_are_unique_and_referenced() -> None:
    users = pl.read_parquet(SAMPLE / "silver" / "users.parquet")
    assert users.get_column("user_id").is_unique().all()
    for table in ("purchases", "transactions"):
        ids = pl.read_parquet(SAMPLE / "silver" / f"{table}.parquet").get_column("user_id")
        assert ids.is_in(users.get_column("user_id").implode()).all()
    activity = (
        pl.read_parquet(SAMPLE / "silver" / "purchases.parquet").group_by("user_id").len().get_column("len")
    )
    assert activity.max() > 10 * activity.median()  # skewed: a few heavy users
