"""Feature-name resolution and entity inputs shared by every store.

Names are ``group.feature``, or a bare ``feature`` when exactly one candidate group has it. The
candidate groups are those named (``group.x``) in the same request; when a request names no
group, every registered group is a candidate. An unknown or ambiguous name raises
:class:`~tauro_workbench.exceptions.FeatureNotFoundError` listing the candidates. Output columns
are bare feature names, or ``group__feature`` with ``full_feature_names=True``.

Every store plans a read the same way, once, with :func:`plan_read`: resolve the names, build
the entity frame (ids, or the entity rows of a point-in-time read and their time column), the
output names per group, and each group's point-in-time spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from tauro_workbench.engines.pit import PointInTimeSpec
from tauro_workbench.exceptions import FeatureNotFoundError, PointInTimeError
from tauro_workbench.frames import FrameLike, to_dataframe
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.schema import FeatureGroupSchema

__all__ = [
    "FeatureRef",
    "GroupRequest",
    "ReadPlan",
    "entity_frame",
    "group_refs",
    "plan_read",
    "resolve_features",
    "resolve_timestamp_column",
]


@dataclass(frozen=True)
class FeatureRef:
    """A resolved feature: its group (at a registered version) and its name."""

    group: str
    feature: str
    version: int

    @property
    def qualified(self) -> str:
        """``group.feature``."""
        return f"{self.group}.{self.feature}"

    def output_name(self, *, full_feature_names: bool = False) -> str:
        """The output column: ``feature``, or ``group__feature`` when full names are asked."""
        return f"{self.group}__{self.feature}" if full_feature_names else self.feature


def resolve_features(
    metadata: FeatureStoreMetadata,
    feature_names: Sequence[str] | str,
    *,
    full_feature_names: bool = False,
) -> list[FeatureRef]:
    """Resolve requested names to features of registered groups, in request order.

    Raises:
        FeatureNotFoundError: For an unknown or ambiguous name, or two features that would
            produce the same output column (use ``full_feature_names=True``).
        FeatureGroupNotFoundError: For ``group.feature`` naming an unknown group.
    """
    names = [feature_names] if isinstance(feature_names, str) else list(feature_names)
    if not names:
        raise FeatureNotFoundError("", candidates=[], reason="No feature names were requested.")
    schemas: dict[str, FeatureGroupSchema] = {}
    for name in names:
        if "." in name:
            group = name.split(".", 1)[0]
            if group not in schemas:
                schemas[group] = metadata.get_feature_group(group)
    candidates = dict(schemas)
    if not candidates:
        candidates = {g: metadata.get_feature_group(g) for g in metadata.list_feature_groups()}

    refs: list[FeatureRef] = []
    for name in names:
        if "." in name:
            group, feature = name.split(".", 1)
            schema = schemas[group]
            schema.get_feature(feature)
            refs.append(FeatureRef(group, feature, schema.version))
            continue
        owners = [s for s in candidates.values() if name in s.feature_names]
        every = [f"{s.name}.{f}" for s in candidates.values() for f in s.feature_names]
        if not owners:
            raise FeatureNotFoundError(name, candidates=every)
        if len(owners) > 1:
            raise FeatureNotFoundError(
                name,
                candidates=[f"{s.name}.{name}" for s in owners],
                reason=f"Feature name {name!r} is ambiguous: several groups have it.",
            )
        refs.append(FeatureRef(owners[0].name, name, owners[0].version))

    seen: dict[str, FeatureRef] = {}
    unique: list[FeatureRef] = []
    for ref in refs:
        out = ref.output_name(full_feature_names=full_feature_names)
        if out in seen:
            if seen[out] == ref:
                continue  # the same feature asked twice
            raise FeatureNotFoundError(
                out,
                candidates=[seen[out].qualified, ref.qualified],
                reason=f"Two requested features would both be output as column {out!r}.",
            )
        seen[out] = ref
        unique.append(ref)
    return unique


def group_refs(refs: Iterable[FeatureRef]) -> dict[str, list[FeatureRef]]:
    """Group resolved features by feature group, keeping first-appearance order."""
    grouped: dict[str, list[FeatureRef]] = {}
    for ref in refs:
        grouped.setdefault(ref.group, []).append(ref)
    return grouped


def entity_frame(
    entity_ids: Mapping[str, Any] | FrameLike | None, keys: Sequence[str]
) -> pl.DataFrame | None:
    """Return requested entity ids as a frame of the ``keys`` columns (None: every entity).

    Accepts ``{"user_id": [1, 2]}`` (a scalar is one id), a frame holding the key columns, or
    None. Composite keys are matched as tuples: row i of every key column forms one entity.

    Raises:
        PointInTimeError: If a key column is missing or the key lists differ in length.
    """
    if entity_ids is None:
        return None
    if isinstance(entity_ids, Mapping):
        data = {
            k: (list(v) if isinstance(v, (list, tuple, pl.Series, range)) else [v])
            for k, v in entity_ids.items()
        }
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise PointInTimeError(
                f"entity id lists differ in length: {lengths}",
                hint="Composite keys are matched as tuples: give every key column the same length.",
            )
        frame = pl.DataFrame(data) if data else pl.DataFrame()
    else:
        frame = to_dataframe(entity_ids)
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise PointInTimeError(
            f"entity ids lack the entity key column(s) {missing}; got {frame.columns}",
            hint=f"Pass entity_ids with every key of the group: {list(keys)}.",
        )
    return frame.select(keys)


def resolve_timestamp_column(entity_df: pl.DataFrame | pl.LazyFrame, requested: str | None) -> str:
    """Return the event-time column of an entity frame.

    ``requested`` wins; otherwise the frame's only datetime column, else ``event_timestamp``.

    Raises:
        PointInTimeError: If no such column exists (the frame's columns are listed).
    """
    schema = entity_df.collect_schema() if isinstance(entity_df, pl.LazyFrame) else entity_df.schema
    if requested is not None:
        if requested not in schema:
            raise PointInTimeError(
                f"entity frame has no timestamp column {requested!r}; columns: {list(schema)}"
            )
        return requested
    datetimes = [c for c, t in schema.items() if isinstance(t, pl.Datetime) or t == pl.Date]
    if len(datetimes) == 1:
        return datetimes[0]
    if "event_timestamp" in schema:
        return "event_timestamp"
    raise PointInTimeError(
        f"cannot tell which column of the entity frame is its event time; columns: {list(schema)}",
        hint="Pass timestamp_column=... or name the column 'event_timestamp'.",
    )


@dataclass(frozen=True)
class GroupRequest:
    """What a read asks of one group: its schema, features and their output columns."""

    schema: FeatureGroupSchema
    features: tuple[str, ...]
    outputs: tuple[str, ...]

    def pit_spec(self, entity_time: str, *, seq_column: str | None = None) -> PointInTimeSpec | None:
        """Return the group's point-in-time spec (None for a group without event time).

        Ties are broken by the created time, then by ``seq_column`` (the write order) if given.
        """
        schema = self.schema
        if schema.timestamp_key is None:
            return None
        breakers = [*([schema.created_timestamp_key] if schema.created_timestamp_key else [])]
        if seq_column is not None:
            breakers.append(seq_column)
        return PointInTimeSpec(
            entity_keys=tuple(schema.entity_keys),
            entity_time=entity_time,
            event_time=schema.timestamp_key,
            feature_columns=self.features,
            output_names=self.outputs,
            ttl=schema.ttl,
            tie_breakers=tuple(breakers),
        )


@dataclass(frozen=True)
class ReadPlan:
    """A planned read: groups in first-appearance order, outputs in request order, entities.

    Attributes:
        groups: Group name -> what is asked of it.
        order: Output columns in request order.
        keys: Every entity key of the requested groups, in first-appearance order.
        ids: The requested entity ids (None: every entity), for latest-value reads.
        time_column: The entity frame's time column, for point-in-time reads.
    """

    groups: dict[str, GroupRequest]
    order: tuple[str, ...]
    keys: tuple[str, ...]
    ids: pl.DataFrame | None = None
    time_column: str | None = None

    @property
    def schemas(self) -> dict[str, FeatureGroupSchema]:
        """Group name -> schema read."""
        return {g: r.schema for g, r in self.groups.items()}

    @property
    def outputs(self) -> dict[str, list[str]]:
        """Group name -> output columns."""
        return {g: list(r.outputs) for g, r in self.groups.items()}


def plan_read(
    metadata: FeatureStoreMetadata,
    feature_names: Sequence[str] | str,
    *,
    entity_ids: Mapping[str, Any] | FrameLike | None = None,
    entity_df: pl.DataFrame | pl.LazyFrame | None = None,
    timestamp_column: str | None = None,
    full_feature_names: bool = False,
) -> ReadPlan:
    """Plan a read: names -> groups, entity frame, output names, point-in-time inputs.

    Args:
        metadata: The registry names resolve against.
        feature_names: Requested names (see :func:`resolve_features`).
        entity_ids: Ids of a latest-value read (see :func:`entity_frame`).
        entity_df: Entity rows of a point-in-time read (its time column is resolved and its
            key columns are checked).
        timestamp_column: The entity rows' time column (see :func:`resolve_timestamp_column`).
        full_feature_names: Output ``group__feature`` columns.

    Raises:
        FeatureNotFoundError: For unknown or ambiguous names.
        PointInTimeError: For malformed ids, or entity rows lacking a key or time column.

    Example:
        >>> plan = plan_read(metadata, ["users.age"], entity_ids={"user_id": [1]})  # doctest: +SKIP
        >>> plan.order
        ('age',)
    """
    refs = resolve_features(metadata, feature_names, full_feature_names=full_feature_names)
    groups: dict[str, GroupRequest] = {}
    for group, grefs in group_refs(refs).items():
        groups[group] = GroupRequest(
            metadata.get_feature_group(group, grefs[0].version),
            tuple(r.feature for r in grefs),
            tuple(r.output_name(full_feature_names=full_feature_names) for r in grefs),
        )
    keys = tuple(dict.fromkeys(k for r in groups.values() for k in r.schema.entity_keys))
    order = tuple(r.output_name(full_feature_names=full_feature_names) for r in refs)
    time_column = None
    if entity_df is not None:
        time_column = resolve_timestamp_column(entity_df, timestamp_column)
        columns = entity_df.collect_schema() if isinstance(entity_df, pl.LazyFrame) else entity_df.schema
        missing = sorted(k for k in keys if k not in columns)
        if missing:
            raise PointInTimeError(
                f"entity frame lacks the entity key column(s) {missing}; it has {list(columns)}",
                hint="Add the key columns of every requested group.",
            )
    return ReadPlan(groups, order, keys, entity_frame(entity_ids, keys), time_column)
