"""The SQL of virtual groups: definitions, and the filtered query a read runs.

A definition maps each feature (or ``"*"`` for the whole group) to a query. A read runs one
query per definition part, each with the read's filters (the requested entities as a
registered relation, time bounds as bound parameters) pushed toward its sources where that is
provably equivalent (:mod:`tauro_workbench.engines.sql_pushdown`); a part where it is not gets
the filters on its output. Filtering each part on the join columns before the full outer join
equals filtering after it, so no filter is needed on the joined result.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tauro_workbench.engines.sql_dialect import quote, transpile
from tauro_workbench.engines.sql_pushdown import (
    RowFilter,
    entity_filter,
    output_condition,
    push_filters,
    time_filter,
)
from tauro_workbench.exceptions import FeatureNotFoundError
from tauro_workbench.schema import FeatureGroupSchema
from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND

__all__ = [
    "DOCUMENT_KIND",
    "IDS_TOKEN",
    "LOWER_PARAM",
    "UPPER_PARAM",
    "WHOLE_GROUP",
    "Bounds",
    "GroupPlan",
    "VirtualDefinition",
    "build_group_plan",
]

DOCUMENT_KIND = VIRTUAL_DEFINITION_KIND
WHOLE_GROUP = "*"
#: Stands for the per-call entity-id relation in cached plans (replaced by its real name).
IDS_TOKEN = f"tauro_ids_{uuid.uuid4().hex}"
LOWER_PARAM = "tauro_lower"
UPPER_PARAM = "tauro_upper"


@dataclass(frozen=True)
class Bounds:
    """Which filters a read needs: entity ids, a lower and an upper event-time bound."""

    ids: bool
    lower: bool
    upper: bool


@dataclass(frozen=True)
class GroupPlan:
    """A group query with its filters, and per part whether they were pushed all the way in."""

    sql: str
    pushed: tuple[bool, ...]


@dataclass(frozen=True)
class VirtualDefinition:
    """A group's SQL: ``queries`` maps a feature (or ``"*"`` for the whole group) to a query.

    ``result_types`` (column -> Polars type name) and ``source_types`` (source -> column ->
    Polars type name) are what the queries returned and read when the group was defined, so
    a read can tell which source column changed since (empty for older definitions).
    """

    group: str
    version: int
    dialect: str
    queries: dict[str, str]
    sources: tuple[str, ...]
    result_types: dict[str, str] = field(default_factory=dict)
    source_types: dict[str, dict[str, str]] = field(default_factory=dict)

    def defines(self, feature: str) -> bool:
        """Return True when ``feature`` has a query (its own, or the whole group's)."""
        return WHOLE_GROUP in self.queries or feature in self.queries

    def to_document(self) -> dict[str, Any]:
        """Return the registry document."""
        return {
            "group": self.group,
            "version": self.version,
            "dialect": self.dialect,
            "queries": dict(self.queries),
            "sources": list(self.sources),
            "result_types": dict(self.result_types),
            "source_types": {k: dict(v) for k, v in self.source_types.items()},
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> VirtualDefinition:
        """Rebuild a definition from its registry document."""
        return cls(
            doc["group"],
            int(doc["version"]),
            doc["dialect"],
            dict(doc["queries"]),
            tuple(doc["sources"]),
            dict(doc.get("result_types") or {}),
            {k: dict(v) for k, v in (doc.get("source_types") or {}).items()},
        )


def build_group_plan(
    schema: FeatureGroupSchema,
    definition: VirtualDefinition,
    features: Sequence[str] | None,
    bounds: Bounds,
    *,
    dialect: str,
) -> GroupPlan:
    """Return the query of ``features`` (every defined one when None) in ``dialect``.

    Its columns are the entity keys, the group's time columns, then the features. The filters
    of ``bounds`` reference :data:`IDS_TOKEN` and the parameters ``tauro_lower`` /
    ``tauro_upper``.

    Raises:
        FeatureNotFoundError: If a feature has no virtual definition (the defined ones listed).
    """
    defined = [f for f in schema.feature_names if definition.defines(f)]
    wanted = list(features) if features is not None else defined
    for feature in wanted:
        if not definition.defines(feature):
            raise FeatureNotFoundError(
                f"{schema.name}.{feature}",
                candidates=[f"{schema.name}.{f}" for f in defined],
                reason=f"Feature {schema.name}.{feature} has no virtual definition.",
            )
    join_cols = [*schema.entity_keys, *schema.time_columns]

    def q(column: str) -> str:
        return quote(column, dialect)

    if WHOLE_GROUP in definition.queries:
        parts = [(definition.queries[WHOLE_GROUP], wanted)]
    else:
        parts = [(definition.queries[f], [f]) for f in wanted]
    filters = _row_filters(schema, bounds)
    subqueries, pushed = [], []
    for i, (sql, cols) in enumerate(parts):
        if filters:
            text, outer = push_filters(sql, filters, read=definition.dialect, write=dialect)
        else:
            text, outer = transpile(sql, read=definition.dialect, write=dialect), []
        pushed.append(not outer)
        where = f" WHERE {output_condition(outer, f'_s{i}', dialect)}" if outer else ""
        subqueries.append(
            f"(SELECT {', '.join(q(c) for c in [*join_cols, *cols])} FROM ({text}) AS _s{i}{where}) AS _q{i}"
        )
    body = subqueries[0]
    for sub in subqueries[1:]:
        body += f" FULL OUTER JOIN {sub} USING ({', '.join(q(c) for c in join_cols)})"
    return GroupPlan(f"SELECT {', '.join(q(c) for c in [*join_cols, *wanted])} FROM {body}", tuple(pushed))


def _row_filters(schema: FeatureGroupSchema, bounds: Bounds) -> list[RowFilter]:
    filters = []
    if bounds.ids:
        filters.append(entity_filter(schema.entity_keys, IDS_TOKEN))
    if schema.timestamp_key is not None and (bounds.lower or bounds.upper):
        filters.append(
            time_filter(
                schema.timestamp_key,
                lower=LOWER_PARAM if bounds.lower else None,
                upper=UPPER_PARAM if bounds.upper else None,
            )
        )
    return filters
