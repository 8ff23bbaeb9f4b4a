"""OnlineServingMixin: online sync (on write, explicit, incremental) and online reads.

MaterializedFeatureStore inherits it. It relies on ``self.config``, ``self.metadata``,
``self.events`` and on the store's ``scan_group(...)`` for explicit syncs.

Bookkeeping, so a failed sync can always be completed by running it again:

- each write synced on write records ``{"online": {"status", "entities", "applied"}}`` (or the
  error) in its write record;
- :meth:`~OnlineServingMixin.materialize_online` keeps a watermark per group in the registry
  (document ``online_sync/<group>``: the highest ``_tauro_seq`` synced, the version, a token,
  the status and last error) and only advances it after a complete sync;
- the token is also written to the online store. When the two differ (Redis was flushed, or
  restarted without persistence, or the process holding an in-memory store restarted), the
  online copy is incomplete and the next incremental sync is a full one. A sync (explicit or
  on write) that sees its token vanish midway raises
  :class:`~tauro_workbench.exceptions.OnlineSyncError` with a ``"partial"`` report counting
  the entities missing online; a store failure gives a ``"failed"`` one.

Online equals the offline latest row per entity (event time, created time, ``_tauro_seq``):
an incremental sync is exact because an older row never replaces a newer one; a full resync
(first sync, ``full=True``, a lost copy, or an overwrite/backfill/created-time merge since the
last sync, which may have removed rows online still holds) *replaces* the group's online state
through the store's generation switch, so readers never see it empty.

Re-running is safe: rows are keyed by entity and an older row never replaces a newer one, so
a re-sent row is neither duplicated nor a regression.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from loguru import logger

from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureNotFoundError,
    OnlineNotSyncedWarning,
    OnlineStoreError,
    OnlineSyncError,
    PointInTimeError,
)
from tauro_workbench.monitoring.events import SyncFailed
from tauro_workbench.online import OnlineStore, WriteResult, create_online_store
from tauro_workbench.online.memory import InMemoryOnlineStore
from tauro_workbench.registry import WriteRecord
from tauro_workbench.retrieval import plan_read
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.stores.latest_values import latest_rows
from tauro_workbench.stores.offline_table import SEQ_COLUMN

if TYPE_CHECKING:
    from tauro_workbench.config import FeatureStoreConfig
    from tauro_workbench.monitoring.events import EventBus
    from tauro_workbench.registry import FeatureStoreMetadata

__all__ = ["OnlineServingMixin", "SyncReport"]

SYNC_DOCUMENT = "online_sync"
_ROW_BITS = 32  # _tauro_seq = (table version << 32) | row index (see stores/offline_table.py)
_CREATE_LOCK = threading.Lock()


@dataclass(frozen=True)
class SyncReport:
    """The outcome of an online sync.

    Attributes:
        group: Feature group synced.
        version: Its version.
        rows: Offline rows read.
        entities: Distinct entities sent (the latest row of each).
        applied: Entities updated online (the others already held a newer row).
        full: True when the group's online state was replaced by the whole table (first
            sync, ``full=True``, the online copy was lost, or an overwrite/backfill since).
        watermark: Highest ``_tauro_seq`` synced (None for a ranged sync).
        seconds: Wall time.
        status: ``"ok"``; ``"partial"`` when entities sent are missing online afterwards (the
            online store was reset midway); ``"failed"`` when the store failed. A partial or
            failed sync is raised as :class:`~tauro_workbench.exceptions.OnlineSyncError`
            carrying this report; running the sync again completes it.
        missing: Entities sent but not found online afterwards (None when unknown).
        error: What went wrong, for a partial or failed sync.
    """

    group: str
    version: int
    rows: int
    entities: int
    applied: int
    full: bool
    watermark: int | None
    seconds: float
    status: Literal["ok", "partial", "failed"] = "ok"
    missing: int | None = 0
    error: str | None = None

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


@dataclass(frozen=True)
class _ReadPlan:
    """Resolved online read: per group its schema, features and output names; output order."""

    groups: tuple[tuple[FeatureGroupSchema, list[str], list[str]], ...]
    order: tuple[str, ...]


def _is_many(value: Any) -> bool:
    return isinstance(value, list | tuple | range | pl.Series)


def _rewrites(schema: FeatureGroupSchema, mode: str) -> bool:
    """True when a write of ``mode`` can remove the row online holds for an entity.

    An overwrite or a backfill deletes rows; a merge replaces the row of an (entity, event
    time), which online may hold with a greater created time than its replacement.
    """
    return mode in ("overwrite", "backfill") or (mode == "merge" and schema.created_timestamp_key is not None)


def _write_status(report: SyncReport, error: str | None) -> dict[str, Any]:
    """The ``online`` entry of a write record synced on write."""
    status: dict[str, Any] = {"status": report.status, "entities": report.entities, "applied": report.applied}
    if report.status != "ok":
        status.update(missing=report.missing, error=error)
    return status


class OnlineServingMixin:
    """Adds online sync (on write and explicit) and online reads to a store."""

    config: FeatureStoreConfig
    metadata: FeatureStoreMetadata
    events: EventBus
    _online_store: OnlineStore | None = None

    # -- the store ---------------------------------------------------------------------------
    @property
    def online(self) -> OnlineStore:
        """The online store, created from ``config.online_store`` on first use.

        Raises:
            ConfigurationError: If neither ``enable_online_store`` nor ``sync_to_online`` is set
                (and no store was assigned).
        """
        if self._online_store is None:
            if not (self.config.enable_online_store or self.config.sync_to_online):
                raise ConfigurationError(
                    "The online store is not enabled.",
                    hint="Create the store with FeatureStoreConfig(enable_online_store=True, "
                    "online_store={'type': 'memory'}) or {'type': 'redis', 'url': ...}.",
                )
            with _CREATE_LOCK:
                if self._online_store is None:
                    self._online_store = create_online_store(self.config)
        return self._online_store

    @online.setter
    def online(self, store: OnlineStore) -> None:
        self._online_store = store

    # -- reads -------------------------------------------------------------------------------
    def get_online_features(
        self,
        feature_names: Sequence[str] | str,
        entity_keys: Mapping[str, Any],
        *,
        full_feature_names: bool = False,
    ) -> dict[str, Any] | pl.DataFrame:
        """Return the latest live values of features for one entity or many.

        One entity (every key a scalar) gives a dict ``feature -> value``; many (key lists)
        give a DataFrame with the key columns, then the features, in request order. Missing
        entities and values past the group ttl are null. One round trip per feature group.

        Raises:
            FeatureNotFoundError: For an unknown or ambiguous feature name.
            PointInTimeError: If a key of a requested group is missing, or key lists differ
                in length.
            OnlineStoreError: If the online store cannot be reached.

        Example:
            >>> store.get_online_features(["user.last_login"], {"user_id": "user_123"})  # doctest: +SKIP
            {'last_login': datetime.datetime(2024, 5, 1, 9, 30, tzinfo=...)}
        """
        store = self.online
        plan = self._online_plan(feature_names, full_feature_names)
        many = any(_is_many(v) for v in entity_keys.values())
        if not many:
            if len(plan.groups) == 1:
                schema, features, names = plan.groups[0]
                row = store.read(schema, [tuple(self._key_values(schema, entity_keys))], features)[0]
                if row is None:
                    self._warn_if_never_synced(schema)
                return dict(zip(names, row if row is not None else (None,) * len(names), strict=True))
            found: dict[str, Any] = {}
            for schema, features, names in plan.groups:
                row = store.read(schema, [tuple(self._key_values(schema, entity_keys))], features)[0]
                if row is None:
                    self._warn_if_never_synced(schema)
                found.update(zip(names, row if row is not None else (None,) * len(names), strict=True))
            return {name: found[name] for name in plan.order}

        lengths = {k: len(v) for k, v in entity_keys.items() if _is_many(v)}
        if len(set(lengths.values())) > 1:
            raise PointInTimeError(
                f"entity key lists differ in length: {lengths}",
                hint="Composite keys are matched as tuples: give every key the same number of values.",
            )
        count = next(iter(lengths.values()))
        keys = {k: (list(v) if _is_many(v) else [v] * count) for k, v in entity_keys.items()}
        columns: dict[str, pl.Series] = {k: pl.Series(k, v) for k, v in keys.items()}
        for schema, features, names in plan.groups:
            entities = list(zip(*self._key_values(schema, keys), strict=True))
            read = store.read_columns(schema, entities, features)
            if all(series.null_count() == series.len() for series in read):
                self._warn_if_never_synced(schema)
            for name, series in zip(names, read, strict=True):
                columns[name] = series.alias(name)
        return pl.DataFrame([columns[name] for name in [*keys, *plan.order]])

    def _warn_if_never_synced(self, schema: FeatureGroupSchema) -> None:
        """Warn (once per group version and process) when a read of nulls only hit a group
        that was never synced online; checked only on such reads, off the fast path."""
        seen: set[tuple[str, int]] = self.__dict__.setdefault("_online_synced", set())
        key = (schema.name, schema.version)
        if key in seen:
            return
        if self.online.get_sync_token(schema) is not None:
            seen.add(key)
            return
        seen.add(key)  # warn once
        name = schema.name
        synced_before = self.metadata.find_document(SYNC_DOCUMENT, name) is not None
        if synced_before and isinstance(self.online, InMemoryOnlineStore):
            what = (
                "was synced by another process, but the in-memory online store lives in one process "
                "(use online_store: {type: redis} to serve across processes)"
            )
        elif synced_before:
            what = "was synced, but its online copy is gone (a Redis flush or restart?)"
        else:
            what = "was never synced to the online store"
        warnings.warn(
            f"Feature group {name!r} v{schema.version} {what}, so its online features read as null. "
            f"Run promote({name!r}, to='online') or materialize_online({name!r}).",
            OnlineNotSyncedWarning,
            stacklevel=3,
        )

    def _check_online(self, checks: dict[str, bool], details: dict[str, str]) -> None:
        """Add the ``online`` check of :meth:`health_check` when an online store is in use."""
        if self._online_store is None and not (self.config.enable_online_store or self.config.sync_to_online):
            return
        try:
            store = self.online
            store.ping()
        except (OnlineStoreError, ConfigurationError) as err:
            checks["online"] = False
            details["online"] = f"online store ({self.config.online_store.type}): {err}"
            return
        checks["online"] = True

    def _online_plan(self, feature_names: Sequence[str] | str, full_feature_names: bool) -> _ReadPlan:
        """Resolve names once per registry state: reads sit on a request path."""
        names = (feature_names,) if isinstance(feature_names, str) else tuple(feature_names)
        cache = self.__dict__.setdefault("_online_plans", {})
        # The registry bumps its generation on every change made through it; other processes'
        # changes show up after metadata_cache_ttl_seconds, as for the registry's own cache.
        generation = getattr(self.metadata, "_generation", None)
        key = (names, full_feature_names)
        hit = cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] == generation and hit[1] > now:
            return hit[2]  # type: ignore[no-any-return]
        read = plan_read(self.metadata, list(names), full_feature_names=full_feature_names)
        plan = _ReadPlan(
            tuple((r.schema, list(r.features), list(r.outputs)) for r in read.groups.values()), read.order
        )
        if len(cache) >= 256:
            cache.clear()
        cache[key] = (generation, now + self.config.metadata_cache_ttl_seconds, plan)
        return plan

    @staticmethod
    def _key_values(schema: FeatureGroupSchema, entity_keys: Mapping[str, Any]) -> list[Any]:
        try:
            return [entity_keys[k] for k in schema.entity_keys]
        except KeyError:
            missing = [k for k in schema.entity_keys if k not in entity_keys]
            raise PointInTimeError(
                f"entity_keys lack {missing} needed by feature group {schema.name!r}; got {list(entity_keys)}",
                hint=f"Pass every entity key of the group: {schema.entity_keys}.",
            ) from None

    # -- sync --------------------------------------------------------------------------------
    def _sync_after_write(self, schema: FeatureGroupSchema, data: pl.DataFrame, record: WriteRecord) -> None:
        """Bring the online copy up to date with a write when ``sync_to_online`` is set.

        Appends (and merges of groups without a created time) push the latest row per entity
        of ``data``: that is exact under "an older row never replaces a newer one". Overwrites,
        backfills and other merges can remove the newest row of an entity, so they run a full
        resync (:meth:`materialize_online` with ``full=True``), which replaces the group.

        Raises:
            OnlineSyncError: If the online store failed or was reset during the sync; the
                offline write is kept and its record says ``"failed"`` or ``"partial"`` with
                counts (``materialize_online`` completes it).
        """
        if not self.config.sync_to_online:
            return
        if _rewrites(schema, record.mode):
            try:
                report = self.materialize_online(schema.name, version=schema.version, full=True)
            except OnlineSyncError as err:
                self.metadata.update_write(record.id, {"online": _write_status(err.report, str(err))})
                raise
            self.metadata.update_write(record.id, {"online": {**_write_status(report, None), "full": True}})
            return
        if record.mode == "merge" and schema.timestamp_key is not None:
            # the rows the merge kept: the last one per (entity, event time)
            keys = [*schema.entity_keys, schema.timestamp_key]
            data = data.unique(subset=keys, keep="last", maintain_order=True)
        store = self.online

        def token() -> str:
            current = store.get_sync_token(schema)
            if current is None:
                # Never synced, or the online copy was lost: mark it so that a reset during this
                # push shows; the registry's token no longer matches, so the next
                # materialize_online resyncs the whole group.
                current = uuid.uuid4().hex
                store.set_sync_token(schema, current)
            return current

        try:
            report = self._sync(
                schema,
                data,
                token=token,
                replace=False,
                rows=data.height,
                full=False,
                watermark=None,
                started=time.perf_counter(),
            )
        except OnlineSyncError as err:
            self.metadata.update_write(record.id, {"online": _write_status(err.report, str(err))})
            raise
        self.metadata.update_write(record.id, {"online": _write_status(report, None)})
        self._advance_watermark(schema, record)

    def _advance_watermark(self, schema: FeatureGroupSchema, record: WriteRecord) -> None:
        """Move the watermark over an appended write synced on write, if nothing lies between.

        ``_tauro_seq`` is ``(table version << 32) | row``, so a watermark covering table version
        ``v - 1`` may jump to the end of version ``v``. Other modes rewrite rows and leave the
        watermark for ``materialize_online`` to move (re-sending rows is harmless).
        """
        previous = self.metadata.find_document(SYNC_DOCUMENT, schema.name)
        if (
            previous is None
            or record.mode != "append"
            or record.table_version is None
            or previous.get("version") != schema.version
            or previous.get("status") != "ok"
            or previous.get("seq") is None
            or int(previous["seq"]) >> _ROW_BITS != record.table_version - 1
            or previous.get("token") != self.online.get_sync_token(schema)
        ):
            return
        seq = ((record.table_version + 1) << _ROW_BITS) - 1
        self.metadata.put_document(
            SYNC_DOCUMENT,
            schema.name,
            {**previous, "seq": seq, "updated_at": datetime.now(UTC).isoformat()},
        )

    def _push(self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, replace: bool = False) -> WriteResult:
        started = time.perf_counter()
        push = self.online.replace if replace else self.online.write
        result = push(schema, frame, progress=frame.height > 100_000)
        logger.info(
            "online {} of {} v{}: {} entities ({} updated) in {:.3f}s",
            "replace" if replace else "sync",
            schema.name,
            schema.version,
            result.entities,
            result.applied,
            time.perf_counter() - started,
        )
        return result

    def _sync(
        self,
        schema: FeatureGroupSchema,
        frame: pl.DataFrame,
        *,
        token: Callable[[], str],
        replace: bool,
        rows: int,
        full: bool,
        watermark: int | None,
        started: float,
    ) -> SyncReport:
        """Push ``frame`` and check the group's token survived; raise a partial/failed report.

        ``token`` runs first (it reads or sets the token the push must leave in place).

        Raises:
            OnlineSyncError: Status ``"failed"`` if the store failed, ``"partial"`` if the
                token vanished during the push (a reset), with the entities found missing.
        """
        name = schema.name

        def report(
            status: Any, entities: int, applied: int, missing: int | None, error: str | None
        ) -> SyncReport:
            return SyncReport(
                group=name,
                version=schema.version,
                rows=rows,
                entities=entities,
                applied=applied,
                full=full,
                watermark=watermark,
                seconds=time.perf_counter() - started,
                status=status,
                missing=missing,
                error=error,
            )

        store = self.online
        try:
            expected = token()
            result = self._push(schema, frame, replace=replace)
            reset = store.get_sync_token(schema) != expected
        except OnlineStoreError as err:
            entities = frame.select(schema.entity_keys).n_unique() if frame.height else 0
            failed = report("failed", entities, 0, None, str(err))
            self.events.publish(SyncFailed(group=name, error=str(err), rows_synced=0))
            raise OnlineSyncError(
                f"Online sync of {name!r} v{schema.version} failed: {err.message}",
                report=failed,
                hint=err.hint or f"Run materialize_online({name!r}) again to complete it.",
            ) from err
        if not reset:
            return report("ok", result.entities, result.applied, 0, None)
        missing = self._count_missing(schema, frame)
        shown = "an unknown number" if missing is None else str(missing)
        error = (
            f"The online copy of {name!r} was reset during the sync (a Redis flush or a restart "
            f"without persistence): {shown} of the {result.entities} entities sent are missing online."
        )
        partial = report("partial", result.entities, result.applied, missing, error)
        synced = result.entities - (missing if missing is not None else result.entities)
        self.events.publish(SyncFailed(group=name, error=error, rows_synced=synced))
        logger.warning(error)
        raise OnlineSyncError(
            error,
            report=partial,
            hint=f"Run materialize_online({name!r}) again: it resyncs the whole group.",
        )

    def _count_missing(self, schema: FeatureGroupSchema, frame: pl.DataFrame) -> int | None:
        """Count the entities of ``frame`` that read as missing online (None: cannot tell)."""
        entities = frame.select(schema.entity_keys).unique().rows()
        missing = 0
        try:
            for start in range(0, len(entities), 10_000):
                chunk = entities[start : start + 10_000]
                missing += sum(row is None for row in self.online.read(schema, chunk, []))
        except OnlineStoreError:
            return None
        return missing

    def _rewritten_since(self, schema: FeatureGroupSchema, previous: Mapping[str, Any]) -> bool:
        """True when a write after the last sync may have removed a value online still holds."""
        since = previous.get("write_id")
        if since is None:
            return False
        writes = self.metadata.list_writes(schema.name, schema.version, limit=1000)
        newer = [w for w in writes if w.id > since]
        if len(newer) == len(writes) == 1000:
            return True  # more writes than looked at: assume the worst
        return any(_rewrites(schema, w.mode) for w in newer)

    def materialize_online(
        self,
        feature_group: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        version: int | None = None,
        full: bool = False,
    ) -> SyncReport:
        """Sync a group from the offline store to the online store.

        Without ``start``/``end`` the sync is incremental: rows written since the last complete
        sync (by ``_tauro_seq``). It is a full resync - the group's online state is *replaced*
        by the latest row per entity of the whole table, so values no longer offline vanish -
        on the first run, with ``full=True``, when the online copy was lost, and after an
        overwrite, a backfill or a merge that may have replaced a newer row. Either way online
        equals the offline latest row per entity (greatest event time, then created time,
        then ``_tauro_seq``). With ``start``/``end`` only rows whose event time falls in the
        range are pushed and the watermark does not move.

        Raises:
            OnlineSyncError: If the online store fails (after retries) or is reset during the
                sync (``err.report`` says ``"failed"``/``"partial"`` with counts); the
                watermark is kept, so running the sync again completes it.

        Example:
            >>> store.materialize_online("user_features")  # doctest: +SKIP
            SyncReport(group='user_features', version=1, rows=1000, entities=100, ...)
        """
        started = time.perf_counter()
        schema = self.metadata.get_feature_group(feature_group, version)
        store = self.online
        if start is not None or end is not None:
            lazy = self.scan_group(feature_group, version=schema.version, start=start, end=end)  # type: ignore[attr-defined]
            frame = lazy.collect()
            result = self._push(schema, frame)
            return SyncReport(
                feature_group,
                schema.version,
                frame.height,
                result.entities,
                result.applied,
                False,
                None,
                time.perf_counter() - started,
            )

        previous = self.metadata.find_document(SYNC_DOCUMENT, feature_group) or {}
        try:
            online_token = store.get_sync_token(schema)
        except OnlineStoreError as err:
            failed = SyncReport(
                feature_group, schema.version, 0, 0, 0, False, None, 0.0, "failed", None, str(err)
            )
            self.events.publish(SyncFailed(group=feature_group, error=str(err), rows_synced=0))
            raise OnlineSyncError(
                f"Online sync of {feature_group!r} v{schema.version} failed: {err.message}",
                report=failed,
                hint=err.hint,
            ) from err
        same = previous.get("version") == schema.version and previous.get("seq") is not None
        lost = online_token is None or previous.get("token") != online_token
        rewritten = same and not full and not lost and self._rewritten_since(schema, previous)
        resume = not full and same and not lost and not rewritten
        if same and not full and not resume:
            logger.warning(
                "online copy of {} v{} {}: running a full resync",
                feature_group,
                schema.version,
                "may hold values an overwrite/backfill removed" if rewritten else "is missing or was reset",
            )
        last = self.metadata.list_writes(feature_group, schema.version, limit=1)
        write_id = last[-1].id if last else None  # writes after this one are checked next time
        try:
            lazy = self.scan_group(  # type: ignore[attr-defined]
                feature_group, version=schema.version, columns=[*schema.columns, SEQ_COLUMN]
            )
            has_seq = True
        except FeatureNotFoundError:  # files committed by other engines may lack _tauro_seq
            lazy = self.scan_group(feature_group, version=schema.version)  # type: ignore[attr-defined]
            has_seq = False
        if resume and has_seq:
            lazy = lazy.filter(pl.col(SEQ_COLUMN) > previous["seq"])
        frame = lazy.collect()
        high = (
            frame.get_column(SEQ_COLUMN).max()
            if has_seq and frame.height
            else previous.get("seq")
            if resume
            else None
        )
        token = online_token if resume and online_token is not None else uuid.uuid4().hex

        def record(status: str, **fields: Any) -> None:
            base = previous if status != "ok" else {}
            self.metadata.put_document(
                SYNC_DOCUMENT,
                feature_group,
                {
                    **base,
                    "group": feature_group,
                    "version": schema.version,
                    "status": status,
                    "updated_at": datetime.now(UTC).isoformat(),
                    **fields,
                },
            )

        def mark() -> str:
            if not resume:
                store.set_sync_token(schema, token)
            return token

        try:
            report = self._sync(
                schema,
                latest_rows(schema, frame),
                token=mark,
                replace=not resume,
                rows=frame.height,
                full=not resume,
                watermark=None if high is None else int(high),
                started=started,
            )
        except OnlineSyncError as err:
            failed = err.report
            record(failed.status, error=str(err), entities=failed.entities, missing=failed.missing)
            raise
        record(
            "ok",
            seq=high,
            token=token,
            write_id=write_id,
            rows=frame.height,
            entities=report.entities,
            error=None,
        )
        logger.info("materialize_online {}: {}", feature_group, report)
        return report

    def promote(self, feature_group: str, *, to: str = "online", **options: Any) -> SyncReport:
        """Promote a group to the online store: sync it (incrementally) and publish ``Promoted``.

        Raises:
            ConfigurationError: For a target other than ``"online"`` that the store cannot handle.
            OnlineStoreError: If the sync fails (re-run to complete it).

        Example:
            >>> store.promote("user_features", to="online")  # doctest: +SKIP
        """
        if to != "online":
            parent = getattr(super(), "promote", None)
            if parent is None:
                raise ConfigurationError(
                    f"Cannot promote {feature_group!r} to {to!r}; valid targets: ['online']."
                )
            return parent(feature_group, to=to, **options)  # type: ignore[no-any-return]
        from tauro_workbench.stores.promotion import sync_online

        return sync_online(self, feature_group, **options)  # type: ignore[arg-type]
