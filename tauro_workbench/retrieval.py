"""Feature-name resolution and entity inputs shared by every store.

Names are ``group.feature``, or a bare ``feature`` when exactly one candidate group has it. The
candidate groups are those named (``group.x``) in the same request; when a request names no
group, every registered group is a candidate. An unknown or ambiguous name raises
:class:`~tauro_workbench.exceptions.FeatureNotFoundError` listing the candidates. Output columns
are bare feature names, or ``group__feature`` with ``full_feature_names=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from tauro_workbench.exceptions import FeatureNotFoundError, PointInTimeError
from tauro_workbench.frames import FrameLike, to_dataframe
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.schema import FeatureGroupSchema

__all__ = [
    "FeatureRef",
    "entity_frame",
    "group_refs",
    "resolve_features",
    "resolve_groups",
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


def resolve_groups(
    metadata: FeatureStoreMetadata,
    feature_names: Sequence[str] | str,
    *,
    full_feature_names: bool = False,
) -> tuple[dict[str, FeatureGroupSchema], dict[str, list[FeatureRef]]]:
    """Resolve names (see :func:`resolve_features`) and return the schemas and features per group.

    Both dicts are keyed by group name in first-appearance order; each schema is the version
    the names resolved against.
    """
    grouped = group_refs(resolve_features(metadata, feature_names, full_feature_names=full_feature_names))
    schemas = {g: metadata.get_feature_group(g, refs[0].version) for g, refs in grouped.items()}
    return schemas, grouped


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
