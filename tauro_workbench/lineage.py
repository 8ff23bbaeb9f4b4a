"""Lineage as a DAG, the part of the registry that records what is derived from what.

Nodes are free-form names (``silver.users``, ``user_features``, ``user_features.age``); an edge
``upstream -> downstream`` says the downstream node is computed from the upstream one. Adding an
edge checks, inside the same ``BEGIN IMMEDIATE`` transaction, that it closes no cycle, so the
graph stays acyclic even under concurrent writers in several processes.

Example:
    >>> from tauro_workbench.registry import FeatureStoreMetadata
    >>> metadata = FeatureStoreMetadata()
    >>> metadata.set_lineage("user_features.age", ["silver.users"])
    >>> metadata.get_upstream("user_features.age")
    ['silver.users']
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from tauro_workbench.exceptions import FeatureRegistryError, LineageCycleError
from tauro_workbench.sqlite_database import SQLiteDatabase

__all__ = ["LineageMixin"]

# Transitive lineage walks; the column names are fixed here, never taken from the caller.
_UPSTREAM_SQL = (
    "WITH RECURSIVE walk(node) AS (SELECT upstream FROM lineage WHERE downstream = ?"
    " UNION SELECT l.upstream FROM lineage l JOIN walk w ON l.downstream = w.node)"
    " SELECT node FROM walk ORDER BY node"
)
_DOWNSTREAM_SQL = (
    "WITH RECURSIVE walk(node) AS (SELECT downstream FROM lineage WHERE upstream = ?"
    " UNION SELECT l.downstream FROM lineage l JOIN walk w ON l.upstream = w.node)"
    " SELECT node FROM walk ORDER BY node"
)


def require_text(value: object, what: str) -> str:
    """Return ``value`` if it is a non-empty string; raise :class:`FeatureRegistryError` if not."""
    if not isinstance(value, str) or not value.strip():
        raise FeatureRegistryError(f"{what} must be a non-empty string, got {value!r}.")
    return value


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LineageMixin:
    """Lineage queries and updates of :class:`~tauro_workbench.registry.FeatureStoreMetadata`."""

    database: SQLiteDatabase

    def set_lineage(self, feature_name: str, dependencies: Sequence[str] | str) -> None:
        """Record that ``feature_name`` is derived from each of ``dependencies``.

        Nodes are free-form names such as ``silver.users`` or ``user_features.age``; edges
        accumulate (setting the same edge twice is a no-op). All edges of one call are added
        in one transaction: if one would close a cycle, none is added.

        Raises:
            LineageCycleError: If an edge would close a cycle (the cycle is named).
            FeatureRegistryError: If a name is empty.

        Example:
            >>> metadata.set_lineage("user_features.age", ["silver.users"])  # doctest: +SKIP
        """
        require_text(feature_name, "A lineage node")
        deps = [dependencies] if isinstance(dependencies, str) else list(dependencies)
        for dep in deps:
            require_text(dep, "A lineage dependency")

        def add(conn: sqlite3.Connection) -> None:
            for dep in deps:
                path = _lineage_path(conn, feature_name, dep)
                if path is not None:
                    raise LineageCycleError([dep, *path])
                conn.execute(
                    "INSERT OR IGNORE INTO lineage VALUES (?, ?, ?)", (dep, feature_name, _now_text())
                )

        self.database.run(add, what=f"registry: set lineage of {feature_name}")

    def delete_lineage(self, feature_name: str, dependencies: Sequence[str] | str | None = None) -> int:
        """Remove the edges into ``feature_name`` (from ``dependencies``, or all); return how many."""
        deps = (
            None
            if dependencies is None
            else [dependencies]
            if isinstance(dependencies, str)
            else list(dependencies)
        )

        def remove(conn: sqlite3.Connection) -> int:
            if deps is None:
                return conn.execute("DELETE FROM lineage WHERE downstream=?", (feature_name,)).rowcount
            return sum(
                conn.execute(
                    "DELETE FROM lineage WHERE upstream=? AND downstream=?", (d, feature_name)
                ).rowcount
                for d in deps
            )

        return int(self.database.run(remove, what=f"registry: delete lineage of {feature_name}"))

    def get_upstream(self, node: str, *, recursive: bool = True) -> list[str]:
        """Return what ``node`` is derived from (transitively when ``recursive``), sorted."""
        sql = (
            _UPSTREAM_SQL
            if recursive
            else "SELECT upstream FROM lineage WHERE downstream=? ORDER BY upstream"
        )
        rows = self.database.run(
            lambda c: c.execute(sql, (node,)).fetchall(), what=f"registry: lineage of {node}", write=False
        )
        return [r[0] for r in rows]

    def get_downstream(self, node: str, *, recursive: bool = True) -> list[str]:
        """Return what is derived from ``node`` (transitively when ``recursive``), sorted."""
        sql = (
            _DOWNSTREAM_SQL
            if recursive
            else "SELECT downstream FROM lineage WHERE upstream=? ORDER BY downstream"
        )
        rows = self.database.run(
            lambda c: c.execute(sql, (node,)).fetchall(), what=f"registry: lineage of {node}", write=False
        )
        return [r[0] for r in rows]

    def lineage_edges(self) -> list[tuple[str, str]]:
        """Return every lineage edge as ``(upstream, downstream)``, sorted."""
        rows = self.database.run(
            lambda c: c.execute(
                "SELECT upstream, downstream FROM lineage ORDER BY upstream, downstream"
            ).fetchall(),
            what="registry: list lineage",
            write=False,
        )
        return [(r["upstream"], r["downstream"]) for r in rows]


def _lineage_path(conn: sqlite3.Connection, start: str, goal: str) -> list[str] | None:
    """Return a downstream path ``start -> ... -> goal`` (``[start]`` when equal), or None."""
    if start == goal:
        return [start]
    reachable = conn.execute(
        "WITH RECURSIVE walk(node) AS (SELECT ? UNION SELECT l.downstream FROM lineage l"
        " JOIN walk w ON l.upstream = w.node) SELECT 1 FROM walk WHERE node = ? LIMIT 1",
        (start, goal),
    ).fetchone()
    if reachable is None:
        return None
    # Rare (a rejected edge): rebuild one path breadth-first for the error message.
    parents: dict[str, str] = {}
    frontier = [start]
    while goal not in parents:
        following: list[str] = []
        for node in frontier:
            for (child,) in conn.execute("SELECT downstream FROM lineage WHERE upstream=?", (node,)):
                if child != start and child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    path = [goal]
    while path[-1] != start:
        path.append(parents[path[-1]])
    return path[::-1]
