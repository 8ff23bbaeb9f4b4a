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
  online copy is incomplete and the next incremental sync is a full one. A sync that sees its
  token vanish midway fails with :class:`~tauro_workbench.exceptions.OnlineStoreError`.

Re-running is safe: rows are keyed by entity and an older row never replaces a newer one, so
a re-sent row is neither duplicated nor a regression.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl
from loguru import logger

from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureNotFoundError,
    OnlineStoreError,
    PointInTimeError,
)
from tauro_workbench.monitoring.events import SyncFailed
from tauro_workbench.online import OnlineStore, WriteResult, create_online_store
from tauro_workbench.registry import WriteRecord
from tauro_workbench.retrieval import plan_read
from tauro_workbench.schema import FeatureGroupSchema
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
        full: True when the whole table was synced (first sync, or the online copy was lost).
        watermark: Highest ``_tauro_seq`` synced (None for a ranged sync).
        seconds: Wall time.
    """

    group: str
    version: int
    rows: int
    entities: int
    applied: int
    full: bool
    watermark: int | None
    seconds: float


@dataclass(frozen=True)
class _ReadPlan:
    """Resolved online read: per group its schema, features and output names; output order."""

    groups: tuple[tuple[FeatureGroupSchema, list[str], list[str]], ...]
    order: tuple[str, ...]


def _is_many(value: Any) -> bool:
    return isinstance(value, list | tuple | range | pl.Series)


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
                return dict(zip(names, row if row is not None else (None,) * len(names), strict=True))
            found: dict[str, Any] = {}
            for schema, features, names in plan.groups:
                row = store.read(schema, [tuple(self._key_values(schema, entity_keys))], features)[0]
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
            for name, series in zip(names, store.read_columns(schema, entities, features), strict=True):
                columns[name] = series.alias(name)
        return pl.DataFrame([columns[name] for name in [*keys, *plan.order]])

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
        """Push the latest row per entity of ``data`` online when ``sync_to_online`` is set.

        Raises:
            OnlineStoreError: After retries; the offline write is kept and recorded as not
                synced (``materialize_online`` completes it).
        """
        if not self.config.sync_to_online:
            return
        try:
            result = self._push(schema, data)
        except OnlineStoreError as err:
            self.metadata.update_write(record.id, {"online": {"status": "failed", "error": str(err)}})
            raise
        self.metadata.update_write(
            record.id, {"online": {"status": "ok", "entities": result.entities, "applied": result.applied}}
        )
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

    def _push(self, schema: FeatureGroupSchema, frame: pl.DataFrame) -> WriteResult:
        started = time.perf_counter()
        try:
            result = self.online.write(schema, frame, progress=frame.height > 100_000)
        except OnlineStoreError as err:
            self.events.publish(SyncFailed(group=schema.name, error=str(err), rows_synced=0))
            raise
        logger.info(
            "online sync of {} v{}: {} entities ({} updated) in {:.3f}s",
            schema.name,
            schema.version,
            result.entities,
            result.applied,
            time.perf_counter() - started,
        )
        return result

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
        sync (by ``_tauro_seq``), or the whole table on the first run, with ``full=True``, or
        when the online copy was lost. With ``start``/``end`` only rows whose event time falls
        in the range are pushed and the watermark does not move.

        Raises:
            OnlineStoreError: If the online store fails (after retries) or is reset during the
                sync; the watermark is kept, so running the sync again completes it.

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
        online_token = store.get_sync_token(schema)
        resume = (
            not full
            and previous.get("version") == schema.version
            and previous.get("seq") is not None
            and online_token is not None
            and previous.get("token") == online_token
        )
        if not resume and previous.get("version") == schema.version and previous.get("seq") is not None:
            logger.warning(
                "online copy of {} v{} is missing or was reset: running a full sync",
                feature_group,
                schema.version,
            )
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
            base = previous if status == "failed" else {}
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

        try:
            if not resume:
                store.set_sync_token(schema, token)
            result = self._push(schema, frame.drop(SEQ_COLUMN, strict=False))
            if store.get_sync_token(schema) != token:
                error = OnlineStoreError(
                    f"The online copy of {feature_group!r} was reset during the sync "
                    "(a Redis flush or a restart without persistence).",
                    hint=f"Run materialize_online({feature_group!r}) again: it will resync the whole group.",
                )
                self.events.publish(
                    SyncFailed(group=feature_group, error=str(error), rows_synced=result.entities)
                )
                raise error
        except OnlineStoreError as err:
            record("failed", error=str(err))
            raise
        record("ok", seq=high, token=token, rows=frame.height, entities=result.entities, error=None)
        report = SyncReport(
            feature_group,
            schema.version,
            frame.height,
            result.entities,
            result.applied,
            not resume,
            None if high is None else int(high),
            time.perf_counter() - started,
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
