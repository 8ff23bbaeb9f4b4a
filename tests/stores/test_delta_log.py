"""The lean Delta log reader agrees with deltalake on every version, and falls back when it must."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, TableFeatures, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tauro_workbench.retry import RetryPolicy
from tauro_workbench.stores.delta_log import LogSnapshot, UnsupportedLog, read_commits, read_snapshot
from tauro_workbench.stores.offline_table import DeltaOfflineTable

START = datetime(2025, 1, 1, tzinfo=UTC)


def _rows(first: int, count: int) -> pl.DataFrame:
    ids = list(range(first, first + count))
    return pl.DataFrame(
        {
            "id": ids,
            "ts": [START + timedelta(hours=i) for i in ids],
            "day": [date(2025, 1, 1 + i % 3) for i in ids],
            "name": [f"n {i}/%" for i in ids],  # characters that paths must encode
            "amount": pl.Series([i / 4 for i in ids]).cast(pl.Decimal(12, 2)),
            "tags": [[i, i + 1] for i in ids],
            "point": [{"x": i, "y": float(i)} for i in ids],
        }
    )


def _apply(uri: str, op: tuple[str, int, int]) -> None:
    kind, first, count = op
    table = DeltaTable(uri)
    rows = _rows(first, count)
    if kind == "add_column" or "score" in [field.name for field in table.schema().fields]:
        rows = rows.with_columns(score=pl.col("id") * 2)
    if kind in ("append", "add_column"):
        write_deltalake(table, rows.to_arrow(), mode="append", schema_mode="merge")
    elif kind == "overwrite":
        write_deltalake(table, rows.to_arrow(), mode="overwrite")
    elif kind == "delete":
        table.delete(f"id >= {first} AND id < {first + count}")
    elif kind == "merge":
        table.merge(
            rows.to_arrow(), predicate="t.id = s.id", source_alias="s", target_alias="t"
        ).when_matched_update_all().when_not_matched_insert_all().execute()
    elif kind == "compact":
        table.optimize.compact()
    elif kind == "checkpoint":
        table.create_checkpoint()


def _assert_same(uri: str, version: int) -> None:
    ours = read_snapshot(uri, version)
    theirs = DeltaTable(uri, version=version)
    assert ours is not None and ours.version == version
    assert sorted(ours.files) == sorted(theirs.file_uris())
    assert ours.table_id == theirs.metadata().id
    assert ours.partition_columns == tuple(theirs.metadata().partition_columns)
    expected = pl.scan_delta(theirs).collect()
    got = ours.scan().collect()
    assert got.schema == expected.schema
    assert ours.schema == expected.schema
    flat = [c for c, dtype in expected.schema.items() if not dtype.is_nested()]
    assert got.sort(flat, nulls_last=True).equals(expected.sort(flat, nulls_last=True))
    assert ours.num_records == expected.height


operations = st.lists(
    st.tuples(
        st.sampled_from(["append", "overwrite", "delete", "merge", "compact", "checkpoint", "add_column"]),
        st.integers(0, 30),
        st.integers(1, 12),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, partitioned=st.booleans())
def test_every_version_matches_deltalake(ops: list[tuple[str, int, int]], partitioned: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        uri = os.path.join(folder, "table")
        write_deltalake(uri, _rows(0, 5).to_arrow(), partition_by=["day"] if partitioned else None)
        for op in ops:
            _apply(uri, op)
        newest = DeltaTable(uri).version()
        for version in range(newest + 1):
            _assert_same(uri, version)
        latest = read_snapshot(uri, None)
        assert latest is not None and latest.version == newest
        assert [c["version"] for c in read_commits(uri, 0, newest)] == list(range(1, newest + 1))
        assert [c["operation"] for c in read_commits(uri, 0, newest)] == [
            c["operation"] for c in sorted(DeltaTable(uri).history(), key=lambda c: c["version"])[1:]
        ]


def test_a_folder_without_a_log_is_no_table(tmp_path: Path) -> None:
    assert read_snapshot(str(tmp_path), None) is None


def test_a_version_beyond_the_newest_or_with_its_log_entries_gone_is_left_to_deltalake(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "table")
    write_deltalake(uri, _rows(0, 3).to_arrow())
    for first in (3, 6):
        write_deltalake(uri, _rows(first, 3).to_arrow(), mode="append")
    DeltaTable(uri).create_checkpoint()
    with pytest.raises(UnsupportedLog, match="no version 5"):
        read_snapshot(uri, 5)
    os.remove(tmp_path / "table" / "_delta_log" / f"{1:020d}.json")  # as log cleanup does
    latest = read_snapshot(uri, None)  # from the checkpoint: still readable
    assert latest is not None and latest.num_records == 9
    with pytest.raises(UnsupportedLog, match="missing"):
        read_snapshot(uri, 1)
    assert [c["version"] for c in read_commits(uri, 0, 2)] == [2]


def test_a_checkpoint_in_several_parts_is_read_in_full(tmp_path: Path) -> None:
    uri = str(tmp_path / "table")
    write_deltalake(uri, _rows(0, 3).to_arrow())
    for first in (3, 6, 9):
        write_deltalake(uri, _rows(first, 3).to_arrow(), mode="append")
    DeltaTable(uri).create_checkpoint()
    log = tmp_path / "table" / "_delta_log"
    single = log / f"{3:020d}.checkpoint.parquet"
    actions = pl.read_parquet(single)
    # Split as a multi-part writer (Spark's checkpoint.partSize) does: parts 1 and 2 of 2.
    half = actions.height // 2
    for part, rows in ((1, actions[:half]), (2, actions[half:])):
        rows.write_parquet(log / f"{3:020d}.checkpoint.{part:010d}.{2:010d}.parquet")
    single.unlink()
    (log / "_last_checkpoint").unlink()
    os.remove(log / f"{2:020d}.json")  # only the checkpoint can give version 3 now
    snapshot = read_snapshot(uri, 3)
    assert snapshot is not None and snapshot.num_records == 12
    assert snapshot.scan().collect()["id"].sort().to_list() == list(range(12))
    (log / f"{3:020d}.checkpoint.{2:010d}.{2:010d}.parquet").unlink()  # an incomplete checkpoint
    with pytest.raises(UnsupportedLog, match="missing"):
        read_snapshot(uri, 3)


def test_an_empty_table_scans_as_its_typed_schema(tmp_path: Path) -> None:
    uri = str(tmp_path / "table")
    write_deltalake(uri, _rows(0, 1).clear().to_arrow())
    snapshot = read_snapshot(uri, None)
    assert isinstance(snapshot, LogSnapshot) and snapshot.files == () and snapshot.num_records == 0
    assert snapshot.scan().collect().schema == _rows(0, 1).schema


def test_a_table_needing_a_reader_feature_it_lacks_is_read_with_deltalake(tmp_path: Path) -> None:
    uri = str(tmp_path / "table")
    write_deltalake(uri, _rows(0, 3).to_arrow())
    DeltaTable(uri).alter.add_feature(TableFeatures.VariantType, allow_protocol_versions_increase=True)
    write_deltalake(uri, _rows(3, 2).to_arrow(), mode="append")
    with pytest.raises(UnsupportedLog, match="variantType"):
        read_snapshot(uri, None)
    table = DeltaOfflineTable(tmp_path / "table", retry=RetryPolicy(max_retries=0))
    assert type(table._snapshot(None)).__name__ == "_DeltaRsSnapshot"
    assert table.row_count(None) == 5
    scan = table.scan(None)
    assert scan is not None and scan.collect()["id"].sort().to_list() == list(range(5))
    assert table.table_id() == DeltaTable(uri).metadata().id


def test_deletion_vectors_allowed_but_unused_are_read_here(tmp_path: Path) -> None:
    uri = str(tmp_path / "table")
    write_deltalake(uri, _rows(0, 3).to_arrow())
    DeltaTable(uri).alter.add_feature(TableFeatures.DeletionVectors, allow_protocol_versions_increase=True)
    DeltaTable(uri).delete("id = 1")  # delta-rs rewrites the file: no vector
    snapshot = read_snapshot(uri, None)
    assert snapshot is not None and snapshot.scan().collect()["id"].sort().to_list() == [0, 2]
