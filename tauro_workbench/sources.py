"""Data sources: named tables such as ``silver.users`` that virtual features are computed from.

A source is Parquet (one file, a folder or a glob), a Delta table, a CSV file, or an in-memory
Polars frame. Names are dotted (``silver.users``: a schema and a table, or just ``users``), each
part a safe identifier. File-backed sources are persisted in the registry as ``source``
documents, so a new session sees them; in-memory frames live only in the process.

Delta tables are always read through their transaction log (``DeltaTable(p).file_uris()`` or
``to_pyarrow_dataset()``), never by listing the folder, which also holds removed files.

Example:
    >>> sources = SourceRegistry()
    >>> sources.add_frame("silver.users", pl.DataFrame({"user_id": [1, 2]})).name
    'silver.users'
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import polars as pl

from tauro_workbench.exceptions import DataSourceError, SchemaValidationError
from tauro_workbench.schema import validate_identifier

if TYPE_CHECKING:
    import pyarrow.dataset as pads

    from tauro_workbench.registry import FeatureStoreMetadata

__all__ = ["DataSource", "SourceFormat", "SourceInfo", "SourceRegistry", "validate_source_name"]

SourceFormat = Literal["parquet", "delta", "csv", "frame"]
_FORMATS: tuple[str, ...] = ("parquet", "delta", "csv", "frame")
DOCUMENT_KIND = "source"


def validate_source_name(name: object) -> tuple[str, ...]:
    """Return the parts of a source name such as ``silver.users`` (one or two identifiers).

    Raises:
        DataSourceError: If the name is not one or two dot-separated safe identifiers.
    """
    if not isinstance(name, str) or not name:
        raise DataSourceError(f"Source name {name!r} is not a string such as 'silver.users'.")
    parts = tuple(name.split("."))
    if len(parts) > 2:
        raise DataSourceError(
            f"Source name {name!r} has {len(parts)} parts.", hint="Use 'schema.table' or 'table'."
        )
    for part in parts:
        try:
            validate_identifier(part, "Source name part")
        except SchemaValidationError as err:
            raise DataSourceError(
                f"Source name {name!r} is invalid: {err.problems[0]}.", hint=err.hint
            ) from err
    return parts


@dataclass(frozen=True)
class SourceInfo:
    """What :meth:`SourceRegistry.list` reports about one source.

    Attributes:
        name: ``silver.users``.
        format: parquet, delta, csv or frame.
        location: Path or glob (None for frames).
        schema: Column name -> Polars type.
        row_estimate: Rows according to file metadata (None when unknown without a scan: CSV).
        freshness: When the data last changed (file mtime, Delta commit time, registration).
        version: The Delta table version (None for other formats).
    """

    name: str
    format: str
    location: str | None
    schema: dict[str, pl.DataType]
    row_estimate: int | None
    freshness: datetime | None
    version: int | None = None


@dataclass(frozen=True, eq=False)
class DataSource:
    """One named source; build them with :class:`SourceRegistry` (``add`` / ``add_frame``).

    Attributes:
        name: Dotted name, e.g. ``silver.users``.
        format: parquet, delta, csv or frame.
        location: File, folder or glob (None for frames).
        options: Reader options (CSV: ``separator``, ``has_header``).
        frame: The data of an in-memory source.
    """

    name: str
    format: SourceFormat
    location: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    frame: pl.DataFrame | None = field(default=None, repr=False)
    registered_at: datetime = field(default_factory=lambda: datetime.now(UTC), repr=False)

    @property
    def parts(self) -> tuple[str, ...]:
        """The name's identifiers, e.g. ``("silver", "users")``."""
        return tuple(self.name.split("."))

    @property
    def relation_name(self) -> str:
        """A single-identifier name for engines that cannot register dotted names."""
        return "_tauro_src__" + "__".join(self.parts)

    def files(self) -> list[str]:
        """Return the data files the source currently consists of (sorted).

        Raises:
            DataSourceError: If no file matches the location.
        """
        if self.format == "frame" or self.location is None:
            return []
        if self.format == "delta":
            return list(self._delta().file_uris())
        path = Path(self.location)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob(f"*.{self.format}"))
        else:
            found = sorted(glob.glob(self.location, recursive=True))
        if not found:
            raise DataSourceError(
                f"Source {self.name!r}: no {self.format} file matches {self.location!r}.",
                hint="Check the path or glob pattern.",
            )
        return found

    def fingerprint(self, files: list[str] | None = None) -> str:
        """Return a cheap token that changes whenever the source's data changes.

        Files: their paths, sizes and mtimes (``files``: the result of :meth:`files`, when the
        caller has it already). Delta: the log folder's listing (a commit adds a file).
        Frames: the object's identity and registration time.
        """
        if self.format == "frame":
            return f"frame:{id(self.frame)}:{self.registered_at.timestamp()}"
        assert self.location is not None
        if self.format == "delta":
            log = Path(self.location) / "_delta_log"
            try:
                entries = sorted(e.name for e in os.scandir(log) if e.name.endswith(".json"))
            except OSError as err:
                raise DataSourceError(
                    f"Source {self.name!r}: {self.location!r} is not a Delta table."
                ) from err
            return f"delta:{len(entries)}:{entries[-1] if entries else ''}"
        stats = [(f, os.stat(f)) for f in (self.files() if files is None else files)]
        return "files:" + ";".join(f"{f}:{s.st_size}:{s.st_mtime_ns}" for f, s in stats)

    def _delta(self) -> Any:
        from deltalake import DeltaTable

        try:
            return DeltaTable(cast(str, self.location))
        except Exception as err:  # deltalake raises several unrelated types
            raise DataSourceError(
                f"Source {self.name!r}: cannot open Delta table {self.location!r}: {err}"
            ) from err

    def to_arrow_dataset(self) -> pads.Dataset:
        """Return the source as a PyArrow dataset (lazy; what DuckDB scans)."""
        import pyarrow.dataset as pads

        if self.format == "frame":
            assert self.frame is not None
            return pads.dataset(self.frame.to_arrow())
        if self.format == "delta":
            return self._delta().to_pyarrow_dataset()
        if self.format == "csv":
            import pyarrow.csv as pacsv

            delimiter = str(self.options.get("separator", ","))
            return pads.dataset(
                self.files(), format=pads.CsvFileFormat(parse_options=pacsv.ParseOptions(delimiter=delimiter))
            )
        return pads.dataset(self.files(), format="parquet")

    def scan(self) -> pl.LazyFrame:
        """Return the source as a Polars LazyFrame."""
        if self.format == "frame":
            assert self.frame is not None
            return self.frame.lazy()
        if self.format == "csv":
            return pl.scan_csv(
                self.files(), separator=str(self.options.get("separator", ",")), try_parse_dates=True
            )
        if self.format == "delta":
            return pl.scan_pyarrow_dataset(self.to_arrow_dataset())
        return pl.scan_parquet(self.files())

    def describe(self) -> SourceInfo:
        """Return the schema, a row-count estimate and the freshness of the source."""
        version = None
        if self.format == "frame":
            assert self.frame is not None
            schema, rows, fresh = dict(self.frame.schema), self.frame.height, self.registered_at
        elif self.format == "delta":
            table = self._delta()
            import pyarrow as pa

            version = table.version()
            actions = pa.table(table.get_add_actions(flatten=True))
            rows = int(pa.compute.sum(actions.column("num_records")).as_py() or 0) if actions.num_rows else 0
            fresh = datetime.fromtimestamp(table.history(1)[0]["timestamp"] / 1000, tz=UTC)
            schema = dict(pl.from_arrow(table.to_pyarrow_dataset().schema.empty_table()).schema)  # type: ignore[union-attr]
        else:
            files = self.files()
            fresh = datetime.fromtimestamp(max(os.stat(f).st_mtime for f in files), tz=UTC)
            schema = dict(self.scan().collect_schema())
            rows = None
            if self.format == "parquet":
                import pyarrow.parquet as pq

                rows = sum(pq.read_metadata(f).num_rows for f in files)
        return SourceInfo(self.name, self.format, self.location, schema, rows, fresh, version)

    def to_document(self) -> dict[str, Any]:
        """Return the registry document of a file-backed source."""
        return {"format": self.format, "location": self.location, "options": dict(self.options)}


def _infer_format(location: str) -> SourceFormat:
    path = Path(location)
    if path.is_dir() and (path / "_delta_log").is_dir():
        return "delta"
    lowered = location.lower()
    if lowered.endswith(".csv") or lowered.endswith(".csv.gz"):
        return "csv"
    return "parquet"


class SourceRegistry:
    """The named sources an executor can query; file-backed ones are kept in the registry.

    Thread-safe. Changes bump :attr:`generation`, so executors re-register lazily.

    Args:
        metadata: Registry where file-backed sources are persisted (and loaded from).
    """

    def __init__(self, metadata: FeatureStoreMetadata | None = None) -> None:
        self._lock = threading.RLock()
        self._sources: dict[str, DataSource] = {}
        self.metadata: FeatureStoreMetadata | None = None
        self.generation = 0
        if metadata is not None:
            self.attach(metadata)

    @classmethod
    def of(cls, value: Any) -> SourceRegistry:
        """Return ``value`` as a registry: a SourceRegistry, None, or a mapping name -> location/frame.

        Raises:
            DataSourceError: For an unsupported value.
        """
        if isinstance(value, SourceRegistry):
            return value
        registry = cls()
        if value is None:
            return registry
        if not isinstance(value, Mapping):
            raise DataSourceError(
                f"sources must be a SourceRegistry or a mapping name -> path or frame, got {type(value).__name__}."
            )
        for name, item in value.items():
            registry.add_any(name, item)
        return registry

    def attach(self, metadata: FeatureStoreMetadata) -> None:
        """Persist file-backed sources in ``metadata`` and load the ones it already holds."""
        with self._lock:
            self.metadata = metadata
            for name, source in self._sources.items():
                if source.format != "frame":
                    metadata.put_document(DOCUMENT_KIND, name, source.to_document())
            for name, doc in metadata.list_documents(DOCUMENT_KIND).items():
                if name not in self._sources:
                    self._sources[name] = DataSource(
                        name, doc["format"], doc.get("location"), dict(doc.get("options") or {})
                    )
            self.generation += 1

    def add_any(self, name: str, item: Any) -> DataSource:
        """Register ``item`` (a DataSource, a path, or a frame) under ``name``."""
        if isinstance(item, DataSource):
            return self._put(
                item
                if item.name == name
                else DataSource(name, item.format, item.location, item.options, item.frame)
            )
        if isinstance(item, (str, os.PathLike)):
            return self.add(name, item)
        return self.add_frame(name, item)

    def add(
        self,
        name: str,
        location: str | os.PathLike[str],
        *,
        format: SourceFormat | None = None,
        **options: Any,
    ) -> DataSource:
        """Register a Parquet, Delta or CSV source (format inferred from the path when omitted).

        Args:
            name: Dotted name such as ``silver.users``.
            location: A file, folder or glob; a Delta table folder.
            format: ``"parquet"``, ``"delta"`` or ``"csv"``.
            **options: Reader options (CSV: ``separator``).

        Returns:
            The registered source.

        Raises:
            DataSourceError: For a bad name, an unknown format, or a location with no data.

        Example:
            >>> registry.add("silver.users", "sample_data/silver/users.parquet")  # doctest: +SKIP
        """
        validate_source_name(name)
        text = os.fspath(location)
        fmt = format or _infer_format(text)
        if fmt not in _FORMATS or fmt == "frame":
            raise DataSourceError(
                f"Source {name!r}: unknown format {fmt!r}.", hint="Use parquet, delta or csv."
            )
        source = DataSource(name, fmt, text, dict(options))
        source.fingerprint()  # fails now, not at query time, on a missing path
        return self._put(source)

    def add_frame(self, name: str, frame: Any) -> DataSource:
        """Register an in-memory frame (Polars, PyArrow or pandas) as source ``name`` (not persisted)."""
        from tauro_workbench.frames import to_dataframe

        validate_source_name(name)
        try:
            data = to_dataframe(frame)
        except SchemaValidationError as err:
            raise DataSourceError(f"Source {name!r}: {err.problems[0]}.", hint=err.hint) from err
        return self._put(DataSource(name, "frame", None, {}, data))

    def _put(self, source: DataSource) -> DataSource:
        with self._lock:
            self._sources[source.name] = source
            if self.metadata is not None and source.format != "frame":
                self.metadata.put_document(DOCUMENT_KIND, source.name, source.to_document())
            self.generation += 1
        return source

    def remove(self, name: str) -> None:
        """Forget source ``name`` (and its registry document)."""
        with self._lock:
            self.get(name)
            del self._sources[name]
            if self.metadata is not None:
                self.metadata.delete_document(DOCUMENT_KIND, name)
            self.generation += 1

    def get(self, name: str) -> DataSource:
        """Return source ``name``.

        Raises:
            DataSourceError: If no such source is registered (the known names are listed).
        """
        with self._lock:
            source = self._sources.get(name)
        if source is None:
            raise DataSourceError(
                f"Unknown source {name!r}. Registered sources: {sorted(self._sources) or '(none)'}.",
                hint="Register it with add_source(name, path) or register_frame(name, frame).",
            )
        return source

    def find(self, name: str) -> DataSource | None:
        """Return source ``name`` or None."""
        with self._lock:
            return self._sources.get(name)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        with self._lock:
            return sorted(self._sources)

    def snapshot(self) -> list[DataSource]:
        """Return the registered sources (a copy, sorted by name)."""
        with self._lock:
            return [self._sources[n] for n in sorted(self._sources)]

    def list(self) -> list[SourceInfo]:
        """Return every source with its schema, row-count estimate and freshness."""
        return [s.describe() for s in self.snapshot()]

    def fingerprints(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Return name -> fingerprint of the given sources (default: all)."""
        chosen = self.names() if names is None else list(names)
        return {n: self.get(n).fingerprint() for n in chosen}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._sources

    def __repr__(self) -> str:
        return f"SourceRegistry({self.names()})"
