"""A lean reader of Delta transaction logs, for the read path of local tables.

A read needs a table version's file list, schema, row count, table id and commits. Opening the
table with deltalake (delta-rs) answers all of them but costs 15-20 MB of resident memory (its
Rust runtime and Arrow state) and a few milliseconds: more than a small training set itself.
This module replays the log itself, as the Delta protocol describes: the newest classic
checkpoint at or before the version (Parquet, read by Polars), then the JSON commits after it.

It reads what this library and Spark write by default: reader version 1, 2 or 3 without column
mapping, deletion vectors in use, type widening or v2 checkpoints; single- or multi-part
checkpoints; partition columns. Anything else, and any gap in the log, raises
:class:`UnsupportedLog`: the caller then opens the table with deltalake, which either reads it
or raises its own error. Writes always go through deltalake.

Example:
    >>> snapshot = read_snapshot("/repo/offline/users/v1", None)  # doctest: +SKIP
    >>> snapshot.version, snapshot.num_records  # doctest: +SKIP
    (3, 1200)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import polars as pl

__all__ = ["LogSnapshot", "UnsupportedLog", "latest_version", "read_commits", "read_snapshot"]

_COMMIT = re.compile(r"(\d{20})\.json")
_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet")
_V2_CHECKPOINT = re.compile(r"\d{20}\.checkpoint\.[0-9a-fA-F-]{36}\.(?:json|parquet)")
# Reader features that change nothing for a plain scan (deletion vectors and column mapping are
# checked per table: allowed while no file has a vector and the mapping mode is "none").
_READER_FEATURES = {"timestampNtz", "vacuumProtocolCheck", "deletionVectors", "columnMapping"}
_PRIMITIVES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "long": pl.Int64(),
    "integer": pl.Int32(),
    "short": pl.Int16(),
    "byte": pl.Int8(),
    "float": pl.Float32(),
    "double": pl.Float64(),
    "boolean": pl.Boolean(),
    "binary": pl.Binary(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us", "UTC"),
    "timestamp_ntz": pl.Datetime("us"),
}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
# The casts Polars' own Delta scan allows (files written by other engines: INT96 and millisecond
# timestamps, narrower integers of an older schema).
_CAST = pl.ScanCastOptions(
    integer_cast="upcast",
    float_cast=["upcast", "downcast"],
    datetime_cast=["nanosecond-downcast", "convert-timezone"],
    missing_struct_fields="insert",
    extra_struct_fields="ignore",
    categorical_to_string="allow",
)


class UnsupportedLog(Exception):
    """The log uses something this reader does not replay; open the table with deltalake."""


@dataclass(frozen=True)
class LogSnapshot:
    """One version of a Delta table, as its log describes it.

    Attributes:
        version: The table version.
        table_id: The table's id (``metaData.id``; new for every created table).
        schema: Column names and Polars types, in table order.
        partition_columns: Partition columns (stored in the file paths, not the files).
        files: Absolute paths of the version's data files, in log order.
        num_records: Total rows, or None when a file was written without statistics.
    """

    version: int
    table_id: str
    schema: pl.Schema
    partition_columns: tuple[str, ...]
    files: tuple[str, ...]
    num_records: int | None

    def scan(self) -> pl.LazyFrame:
        """Return a lazy scan of the version's rows (an empty typed frame when it has no files)."""
        if not self.files:
            return pl.LazyFrame(schema=self.schema)
        partitions = set(self.partition_columns)
        stored = {name: dtype for name, dtype in self.schema.items() if name not in partitions}
        scan = pl.scan_parquet(
            list(self.files),
            schema=stored,
            hive_partitioning=bool(partitions),
            hive_schema={c: self.schema[c] for c in self.partition_columns} or None,
            missing_columns="insert",
            extra_columns="ignore",
            cast_options=_CAST,
        )
        return scan.select(self.schema.names()) if partitions else scan


def _log_dir(uri: str) -> str:
    return os.path.join(uri, "_delta_log")


def _listing(log: str) -> tuple[set[int], dict[int, list[tuple[int, int, str]]]]:
    """Return the commit versions and the classic checkpoints (version -> parts) in ``log``.

    A checkpoint part is (part number, number of parts, file name); a single-file checkpoint
    is part 1 of 1.

    Raises:
        UnsupportedLog: If the log holds a v2 checkpoint.
    """
    commits: set[int] = set()
    checkpoints: dict[int, list[tuple[int, int, str]]] = {}
    try:
        names = os.listdir(log)
    except OSError:
        return commits, checkpoints
    for name in names:
        if found := _COMMIT.fullmatch(name):
            commits.add(int(found[1]))
        elif found := _CHECKPOINT.fullmatch(name):
            part = (int(found[2]), int(found[3])) if found[2] else (1, 1)
            checkpoints.setdefault(int(found[1]), []).append((*part, name))
        elif _V2_CHECKPOINT.fullmatch(name):
            raise UnsupportedLog(f"v2 checkpoint {name}")
    return commits, checkpoints


def latest_version(uri: str) -> int | None:
    """Return the newest version in the table's log (None: not a Delta table).

    Raises:
        UnsupportedLog: If the log holds a v2 checkpoint.
    """
    commits, checkpoints = _listing(_log_dir(uri))
    return max(commits | set(checkpoints), default=None)


def _complete(parts: list[tuple[int, int, str]]) -> list[str] | None:
    """Return the file names of a checkpoint in part order, or None if a part is missing."""
    total = parts[0][1]
    ordered = sorted(parts)
    if [(number, count) for number, count, _ in ordered] != [(i, total) for i in range(1, total + 1)]:
        return None
    return [name for _, _, name in ordered]


def read_snapshot(uri: str, version: int | None) -> LogSnapshot | None:
    """Replay the log of the table at ``uri`` up to ``version`` (None: the newest).

    Returns:
        The snapshot, or None when ``uri`` holds no Delta log.

    Raises:
        UnsupportedLog: When the version cannot be replayed here (missing log entries, a
            version beyond the newest, or a feature this reader does not support).
    """
    log = _log_dir(uri)
    commits, checkpoints = _listing(log)
    newest = max(commits | set(checkpoints), default=None)
    if newest is None:
        return None
    target = newest if version is None else version
    if target > newest or target < 0:
        raise UnsupportedLog(f"no version {target}")
    usable = {v: names for v, parts in checkpoints.items() if v <= target and (names := _complete(parts))}
    start = max(usable, default=-1)
    if any(v not in commits for v in range(start + 1, target + 1)):
        raise UnsupportedLog(f"log entries missing between {start + 1} and {target}")
    replay = _Replay(uri)
    if start >= 0:
        replay.checkpoint([os.path.join(log, name) for name in usable[start]])
    for number in range(start + 1, target + 1):
        with open(os.path.join(log, f"{number:020d}.json"), encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    replay.action(json.loads(line))
    return replay.snapshot(target)


def read_commits(uri: str, after: int, through: int) -> list[dict[str, Any]]:
    """Return the commitInfo of versions ``after + 1 .. through``, oldest first, with ``version``.

    A version whose log entry is gone (cleaned up after a checkpoint) is skipped, as in
    deltalake's history.
    """
    log = _log_dir(uri)
    found: list[dict[str, Any]] = []
    for number in range(after + 1, through + 1):
        try:
            with open(os.path.join(log, f"{number:020d}.json"), encoding="utf-8") as handle:
                lines = [json.loads(line) for line in handle if line.strip()]
        except FileNotFoundError:
            continue
        info: dict[str, Any] = next((line["commitInfo"] for line in lines if "commitInfo" in line), {})
        found.append({**info, "version": number})
    return found


class _Replay:
    """Actions applied in log order: the live files, the metadata and the protocol."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.files: dict[str, int | None] = {}  # relative path -> numRecords
        self.metadata: dict[str, Any] | None = None
        self.protocol: dict[str, Any] | None = None

    def action(self, entry: dict[str, Any]) -> None:
        if "add" in entry:
            add = entry["add"]
            if add.get("deletionVector"):
                raise UnsupportedLog("deletion vectors")
            self.files[add["path"]] = _num_records(add.get("stats"))
        elif "remove" in entry:
            self.files.pop(entry["remove"]["path"], None)
        elif "metaData" in entry:
            self.metadata = entry["metaData"]
        elif "protocol" in entry:
            self.protocol = entry["protocol"]
        elif "checkpointMetadata" in entry or "sidecar" in entry:
            raise UnsupportedLog("v2 checkpoint actions")

    def checkpoint(self, parts: list[str]) -> None:
        """Load the live files, metadata and protocol of a classic checkpoint (its part files)."""
        for part in parts:
            frame = pl.read_parquet(part)
            # delta-rs writes an all-null sidecar column into classic checkpoints too
            if any(
                c in frame.columns and frame[c].null_count() < frame.height
                for c in ("sidecar", "checkpointMetadata")
            ):
                raise UnsupportedLog("v2 checkpoint")
            for column, attribute in (("metaData", "metadata"), ("protocol", "protocol")):
                rows = frame.get_column(column).drop_nulls() if column in frame.columns else None
                if rows is not None and len(rows):
                    setattr(self, attribute, rows[-1])
            if "add" not in frame.columns:
                continue
            adds = frame.get_column("add").drop_nulls().struct.unnest()
            vectors = adds.get_column("deletionVector") if "deletionVector" in adds.columns else None
            if vectors is not None and vectors.null_count() < len(vectors):
                raise UnsupportedLog("deletion vectors")
            paths = adds.get_column("path").to_list()
            stats = adds.get_column("stats").to_list() if "stats" in adds.columns else [None] * len(paths)
            for path, stat in zip(paths, stats, strict=True):
                self.files[path] = _num_records(stat)

    def snapshot(self, version: int) -> LogSnapshot:
        metadata, protocol = self.metadata, self.protocol or {}
        if metadata is None:
            raise UnsupportedLog("no metaData action")
        reader = int(protocol.get("minReaderVersion", 1))
        features = set(protocol.get("readerFeatures") or ())
        configuration = _mapping(metadata.get("configuration"))
        if reader > 3 or not features <= _READER_FEATURES:
            raise UnsupportedLog(f"reader version {reader} with features {sorted(features)}")
        if configuration.get("delta.columnMapping.mode", "none") != "none":
            raise UnsupportedLog("column mapping")
        counts = list(self.files.values())
        return LogSnapshot(
            version=version,
            table_id=str(metadata["id"]),
            schema=_schema(metadata["schemaString"]),
            partition_columns=tuple(metadata.get("partitionColumns") or ()),
            files=tuple(self._absolute(path) for path in self.files),
            num_records=None if None in counts else sum(c for c in counts if c is not None),
        )

    def _absolute(self, path: str) -> str:
        if "://" not in path:
            return os.path.join(self.uri, unquote(path))
        parsed = urlparse(path)
        if parsed.scheme != "file":
            raise UnsupportedLog(f"file outside the local file system: {path}")
        return unquote(parsed.path)


def _mapping(value: Any) -> dict[str, Any]:
    """Return a Delta map as a dict (a checkpoint read by Polars gives a list of key/value rows)."""
    if isinstance(value, list):
        return {item["key"]: item["value"] for item in value}
    return dict(value or {})


def _num_records(stats: str | None) -> int | None:
    if not stats:
        return None
    count = json.loads(stats).get("numRecords")
    return None if count is None else int(count)


def _schema(schema_string: str) -> pl.Schema:
    """Convert a Delta ``schemaString`` to a Polars schema."""
    fields = json.loads(schema_string)["fields"]
    return pl.Schema({field["name"]: _dtype(field["type"]) for field in fields})


def _dtype(kind: str | dict[str, Any]) -> pl.DataType:
    if isinstance(kind, str):
        if kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        if found := _DECIMAL.fullmatch(kind):
            return pl.Decimal(int(found[1]), int(found[2]))
        raise UnsupportedLog(f"type {kind}")
    if kind.get("type") == "struct":
        return pl.Struct({field["name"]: _dtype(field["type"]) for field in kind["fields"]})
    if kind.get("type") == "array":
        return pl.List(_dtype(kind["elementType"]))
    raise UnsupportedLog(f"type {kind.get('type')}")
