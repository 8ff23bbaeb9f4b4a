"""The exception tree of tauro_workbench.

Every error the library raises on purpose is a :class:`FeatureStoreException`. Where a builtin
fits, the error also subclasses it, so ``except KeyError`` or ``except ValueError`` keeps working::

    FeatureStoreException (Exception)
    ├── FeatureNotFoundError (KeyError)          unknown or ambiguous feature name
    ├── FeatureGroupNotFoundError (KeyError)     unknown feature group or version
    ├── SchemaValidationError (ValueError)       a schema or a frame breaks the schema rules
    ├── FeatureMaterializationError              a write to the offline store failed
    │   └── CommitConflictError                  other writers kept committing first (retries used up)
    ├── VirtualizationQueryError (ValueError)    a virtual-feature SQL query is invalid or failed
    │   ├── QueryTimeoutError (TimeoutError)     a query ran past query_timeout_seconds
    │   └── SourceSchemaDriftError               a source's column changed type since the definition
    ├── MetadataError                            the registry could not be read or written
    │   ├── WriteNotRecordedError                data IS committed; its registry record is pending
    │   ├── RegistryCorruptionError (ValueError) a registry row is not what the library wrote
    │   └── FeatureRegistryError                 a registration conflicts with the registry
    │       └── LineageCycleError (ValueError)   a lineage edge would close a cycle
    ├── OnlineStoreError                         the online store failed or is unreachable
    │   └── OnlineSyncError                      a sync failed or left entities out (has .report)
    ├── ConfigurationError (ValueError)          an option is unknown or has a bad value
    │   ├── SpecError                            a YAML definition file is unreadable or invalid
    │   └── StoragePathError                     storage_path is a file, or not writable
    ├── PointInTimeError (ValueError)            a point-in-time request is malformed
    │   └── TableVersionUnavailableError         an as_of table version's files were vacuumed
    ├── DataSourceError (ValueError)             a data source is unknown or unreadable
    ├── RepositoryNotFoundError (FileNotFoundError) a read-only open of a folder holding no repo
    ├── DriftDetectedError                       a write was blocked by the drift gate
    ├── PipelineError                            a pipeline node failed (the node is named)
    └── MissingExtraError (ImportError)          an optional dependency is not installed

Warnings (shown in notebooks, never raised): ``FeatureStoreWarning (UserWarning)`` and its
``DriftWarning``, ``OnlineNotSyncedWarning`` (a read of a group never synced online) and
``CorruptOnlineValueWarning`` (an online value could not be decoded and read as null).

Each error keeps the offending names or values in attributes (documented per class) and has a
message that says what was wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "CommitConflictError",
    "ConfigurationError",
    "CorruptOnlineValueWarning",
    "DataSourceError",
    "DriftDetectedError",
    "DriftWarning",
    "FeatureGroupNotFoundError",
    "FeatureMaterializationError",
    "FeatureNotFoundError",
    "FeatureRegistryError",
    "FeatureStoreException",
    "FeatureStoreWarning",
    "LineageCycleError",
    "MetadataError",
    "MissingExtraError",
    "OnlineNotSyncedWarning",
    "OnlineStoreError",
    "OnlineSyncError",
    "PipelineError",
    "PointInTimeError",
    "QueryTimeoutError",
    "RegistryCorruptionError",
    "RepositoryNotFoundError",
    "SchemaValidationError",
    "SourceSchemaDriftError",
    "SpecError",
    "StoragePathError",
    "TableVersionUnavailableError",
    "VirtualizationQueryError",
    "WriteNotRecordedError",
]


def _listing(values: Iterable[object], limit: int = 20) -> str:
    items = sorted({str(v) for v in values})
    shown = ", ".join(items[:limit])
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}{more}]" if items else "[] (none)"


class FeatureStoreException(Exception):
    """Root of every error raised by tauro_workbench.

    Attributes:
        hint: What to do about it, when known.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} Hint: {hint}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message if self.hint is None else f"{self.message} Hint: {self.hint}"


class FeatureNotFoundError(FeatureStoreException, KeyError):
    """A feature name is unknown, or a bare name matches several groups.

    Attributes:
        feature: The name as requested.
        candidates: The names that would have been valid (or the ambiguous matches).
    """

    def __init__(self, feature: str, *, candidates: Iterable[str] = (), reason: str | None = None) -> None:
        self.feature = feature
        self.candidates = sorted(set(candidates))
        what = reason or f"Feature {feature!r} was not found."
        super().__init__(
            f"{what} Candidates: {_listing(self.candidates)}.",
            hint="Use 'group.feature' to name a feature unambiguously.",
        )


class FeatureGroupNotFoundError(FeatureStoreException, KeyError):
    """A feature group (or one version of it) is not registered.

    Attributes:
        group: The requested group name.
        version: The requested version, if any.
        available: Registered group names (or versions of the group).
    """

    def __init__(self, group: str, *, version: int | None = None, available: Iterable[object] = ()) -> None:
        self.group = group
        self.version = version
        self.available = sorted({str(a) for a in available})
        if version is None:
            msg = f"Feature group {group!r} is not registered. Registered groups: {_listing(self.available)}."
        else:
            msg = (
                f"Feature group {group!r} has no version {version}. "
                f"Registered versions: {_listing(self.available)}."
            )
        super().__init__(msg, hint="Register it with register_features(schema) first.")


class SchemaValidationError(FeatureStoreException, ValueError):
    """A schema definition or a frame breaks the schema rules.

    Attributes:
        problems: Every problem found, one human-readable line each.
        group: The feature group concerned, if any.
    """

    def __init__(
        self,
        problems: Sequence[str] | str,
        *,
        group: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.group = group
        where = f" for feature group {group!r}" if group else ""
        if len(self.problems) == 1:
            msg = f"Schema validation failed{where}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            msg = f"Schema validation failed{where} with {len(self.problems)} problems:\n{lines}"
        super().__init__(msg, hint=hint)


class FeatureMaterializationError(FeatureStoreException):
    """Writing features to the offline store failed; nothing was committed."""


class CommitConflictError(FeatureMaterializationError):
    """Other writers committed to the table first on every attempt; nothing was committed.

    Attributes:
        uri: The table.
        attempts: Commit attempts made (``max_retries + 1``).
    """

    def __init__(self, message: str, *, uri: str, attempts: int) -> None:
        self.uri = uri
        self.attempts = attempts
        super().__init__(
            message,
            hint="Retry the write, or raise max_retries / retry_backoff_ms in the config to wait longer "
            "for the other writers.",
        )


class VirtualizationQueryError(FeatureStoreException, ValueError):
    """A virtual-feature query is invalid or failed to run.

    Attributes:
        query: The SQL text concerned, if any.
    """

    def __init__(self, message: str, *, query: str | None = None, hint: str | None = None) -> None:
        self.query = query
        if query is not None:
            message = f"{message}\nQuery:\n{query.strip()}"
        super().__init__(message, hint=hint)


class QueryTimeoutError(VirtualizationQueryError, TimeoutError):
    """A query ran longer than ``query_timeout_seconds`` and was cancelled."""


class SourceSchemaDriftError(VirtualizationQueryError):
    """A virtual group's source changed since the group was defined, so its query no longer fits.

    Attributes:
        group: The virtual group.
        changes: ``(where, old type, new type)`` per changed column; ``where`` is
            ``source.column`` when the source's change is known, else the group's column.
    """

    def __init__(
        self,
        group: str,
        changes: Sequence[tuple[str, str, str]],
        *,
        query: str | None = None,
        cause: str | None = None,
    ) -> None:
        self.group = group
        self.changes = list(changes)
        listed = "; ".join(f"{where} was {old}, now {new}" for where, old, new in self.changes)
        because = f" ({cause})" if cause else ""
        super().__init__(
            f"Virtual group {group!r} no longer fits its sources, which changed since it was defined: "
            f"{listed}{because}.",
            query=query,
            hint="Re-define the virtual group (define_virtual_features) for the new types, "
            "or cast the changed column back to its old type in the group's SQL (CAST(col AS type)).",
        )


class MetadataError(FeatureStoreException):
    """The metadata registry could not be read or written."""


class RegistryCorruptionError(MetadataError, ValueError):
    """A registry row cannot be decoded (edited by hand, truncated or written by another tool).

    Attributes:
        location: The registry file.
        row: Which row (table and key) is damaged.
    """

    def __init__(self, location: str, row: str, problem: str) -> None:
        self.location = location
        self.row = row
        super().__init__(
            f"The registry {location!r} holds a damaged row ({row}): {problem}.",
            hint="Restore registry.db from a backup, or delete that row and register or write it again.",
        )


class WriteNotRecordedError(MetadataError):
    """The data of a write IS committed to the table, but the registry could not record it.

    The commit is durable and is recorded from the table's log the next time the store opens
    the group or reads its history. Retrying the write with the same ``write_id`` is a no-op
    that returns the record.

    Attributes:
        group: The feature group written.
        version: Its schema version.
        table_version: The table version the commit created.
        write_id: The id to retry with.
    """

    def __init__(self, message: str, *, group: str, version: int, table_version: int, write_id: str) -> None:
        self.group = group
        self.version = version
        self.table_version = table_version
        self.write_id = write_id
        super().__init__(
            message,
            hint=f"Do not write the data again under a new id: retry with write_id={write_id!r} (a no-op "
            "that records the commit), or call store.reconcile() once the registry is reachable.",
        )


class FeatureRegistryError(MetadataError):
    """A registration conflicts with what the registry holds (e.g. a changed schema, same version)."""


class LineageCycleError(FeatureRegistryError, ValueError):
    """Adding a lineage edge would create a cycle.

    Attributes:
        cycle: The nodes of the cycle, first node repeated at the end.
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(
            "Lineage must be a DAG, but this edge closes the cycle " + " -> ".join(self.cycle) + ".",
            hint="Remove one of the dependencies in the cycle.",
        )


class OnlineStoreError(FeatureStoreException):
    """The online store failed or could not be reached (after retries)."""


class OnlineSyncError(OnlineStoreError):
    """An online sync failed, or finished with entities missing (e.g. Redis restarted midway).

    The offline data is intact and the sync watermark did not move, so running
    ``materialize_online(group)`` again completes it.

    Attributes:
        report: The :class:`~tauro_workbench.stores.online_serving.SyncReport` of the attempt
            (``status`` ``"partial"`` or ``"failed"``, with its counts).
    """

    def __init__(self, message: str, *, report: Any = None, hint: str | None = None) -> None:
        self.report = report
        super().__init__(message, hint=hint)


class ConfigurationError(FeatureStoreException, ValueError):
    """A configuration option is unknown or has an invalid value."""


class SpecError(ConfigurationError):
    """A YAML definition file (schema, sources, views, pipeline) is unreadable or invalid.

    Attributes:
        file: The file concerned.
        line: 1-based line of the offending key, when known.
        key: Dotted path of the offending key (``features[2].data_type``), when known.
        problem: What is wrong, without the location.
    """

    def __init__(
        self,
        file: str,
        problem: str,
        *,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key + ': ' if key else ''}{problem}", hint=hint)


class StoragePathError(ConfigurationError):
    """The storage path (or a folder under it) is a file, or cannot be written.

    Attributes:
        path: The path concerned.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        super().__init__(
            f"Cannot use {self.path!r} as feature store storage: {reason}.",
            hint="Pass a storage_path that is a folder (or does not exist yet) which this process can "
            "write, or fix the folder's permissions.",
        )


class PointInTimeError(FeatureStoreException, ValueError):
    """A point-in-time request is malformed (e.g. missing entity keys or timestamp column)."""


class TableVersionUnavailableError(PointInTimeError):
    """An ``as_of`` table version is in the log but its data files were removed (by vacuum).

    Attributes:
        uri: The table.
        table_version: The version asked for.
        missing: How many of its data files are gone.
    """

    def __init__(self, uri: str, table_version: int, missing: int) -> None:
        self.uri = uri
        self.table_version = table_version
        self.missing = missing
        super().__init__(
            f"Table version {table_version} of {uri!r} can no longer be read: {missing} of its data files "
            "were deleted (by vacuum).",
            hint="Read a newer version (store.list_table_versions(group) lists them), or vacuum with a "
            "longer retention_hours to keep time travel further back.",
        )


class DataSourceError(FeatureStoreException, ValueError):
    """A data source is unknown, unreadable or wrongly named."""


class RepositoryNotFoundError(FeatureStoreException, FileNotFoundError):
    """A folder opened read-only holds no feature repository (no ``registry.db``); nothing was created.

    Attributes:
        path: The folder that was opened.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"No feature repository at {path!r} (it holds no registry.db).",
            hint="Pass the folder of an existing repo, or create one with Workbench(path) "
            "(the default repo is ./feature_repo).",
        )


class DriftDetectedError(FeatureStoreException):
    """A write was rejected by the drift gate (``on_drift="block"``); nothing was written.

    Attributes:
        report: The :class:`~tauro_workbench.monitoring.DriftReport` that blocked the write.
    """

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message, hint='Inspect the report, or write with on_drift="warn".')


class PipelineError(FeatureStoreException):
    """A pipeline node failed; the nodes after it did not run.

    Attributes:
        pipeline: The pipeline's name.
        node: The failed node's name.
        completed: Names of the nodes that finished before it.
    """

    def __init__(self, pipeline: str, node: str, cause: str, *, completed: Sequence[str] = ()) -> None:
        self.pipeline = pipeline
        self.node = node
        self.completed = list(completed)
        super().__init__(
            f"Pipeline {pipeline!r} stopped at node {node!r}: {cause}",
            hint="Fix the node and run the pipeline again; finished writes are not repeated.",
        )


class FeatureStoreWarning(UserWarning):
    """Something a user should see in a notebook, though nothing failed (e.g. a read of nulls only)."""


class OnlineNotSyncedWarning(FeatureStoreWarning):
    """An online read of a group that was never synced online (so it reads as nulls)."""


class CorruptOnlineValueWarning(FeatureStoreWarning):
    """An online value could not be decoded; its entity read as null (the others did not fail)."""


class DriftWarning(FeatureStoreWarning):
    """A write was committed although its drift verdict is ``drift`` (``on_drift="warn"``)."""


class MissingExtraError(FeatureStoreException, ImportError):
    """An optional dependency is not installed.

    Attributes:
        package: The missing import.
        extra: The pip extra that provides it.
    """

    def __init__(self, package: str, *, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"This feature needs the optional package {package!r}, which is not installed.",
            hint=f"pip install 'tauro-workbench[{extra}]'",
        )
