"""Progress bars: library code draws none unless a client (the CLI, a notebook user) turns them on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
from tauro_workbench.progress import enable_progress, progress_bar, progress_enabled
from tauro_workbench.stores.materialized import MaterializedFeatureStore


@pytest.fixture(autouse=True)
def off() -> Iterator[None]:
    yield
    enable_progress(False)


def backfill(tmp_path: Path) -> None:
    schema = FeatureGroupSchema(
        "g", entity_keys=["k"], timestamp_key="ts", features=[FeatureSchema("x", DataType.INT)]
    )
    store = MaterializedFeatureStore(storage_path=tmp_path)
    store.register_features(schema)
    rows = pl.DataFrame(
        {
            "k": [1, 2],
            "ts": [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)],
            "x": [1, 2],
        },
        schema_overrides={"x": pl.Int32},
    )
    store.backfill("g", rows, start=datetime(2026, 1, 1), end=datetime(2026, 4, 1))


def test_library_work_draws_no_bar_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not progress_enabled()
    backfill(tmp_path)
    assert capsys.readouterr().err == ""


def test_an_enabled_client_gets_a_bar_on_long_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enable_progress()
    backfill(tmp_path)
    assert "backfill g" in capsys.readouterr().err


def test_a_single_item_never_draws(capsys: pytest.CaptureFixture[str]) -> None:
    enable_progress()
    assert list(progress_bar([1], desc="one")) == [1]
    assert list(progress_bar(iter([1, 2]), desc="two")) == [1, 2]
    err = capsys.readouterr().err
    assert "one" not in err and "two" in err
