"""Catalog: the state and actions of the registry browser, headless (no notebook package needed).

The notebook widget (:func:`tauro_workbench.notebook.browse`) is a thin view of a
:class:`Catalog`: every click becomes a request dict handled by :meth:`Catalog.handle`, and the
widget draws :attr:`Catalog.state`, which is plain JSON data. So everything the browser does
(search, pick a group, see its schema, lineage, last writes and drift verdict, preview it,
promote it) can be driven and tested in Python.

Example:
    >>> catalog = Catalog(wb)                          # doctest: +SKIP
    >>> catalog.search("user")                         # doctest: +SKIP
    ['user_features', 'user_txn_daily']
    >>> catalog.select("user_features")["entity_keys"]  # doctest: +SKIP
    ['user_id']
    >>> catalog.handle({"action": "preview", "limit": 5})["result"]["ok"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from tauro_workbench import displays
from tauro_workbench import html as h
from tauro_workbench.exceptions import ConfigurationError, FeatureGroupNotFoundError, FeatureStoreException

__all__ = ["ACTIONS", "Catalog", "GroupCard"]

ACTIONS = ("refresh", "search", "select", "preview", "promote")
"""Requests :meth:`Catalog.handle` understands (``{"action": name, ...}``)."""

_WRITES_SHOWN = 5
_PREVIEW_ROWS = 10


@dataclass(frozen=True)
class GroupCard:
    """A feature group with what the registry knows about it (rows, last write, drift, online)."""

    schema: Any
    status: Mapping[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        return h.render(lambda card: displays.group_html(card.schema, card.status), self)

    def __repr__(self) -> str:
        try:
            return f"GroupCard({self.schema.name!r}, {dict(self.status)!r})"
        except Exception:  # a repr must never raise
            return object.__repr__(self)


class Catalog:
    """The registry browser's state and actions over a Workbench (or any store with a registry).

    Args:
        workbench: A :class:`~tauro_workbench.Workbench`; a store works too (it needs
            ``metadata``; ``preview`` and ``promote`` are used when it has them).
        lineage_depth: Hops of lineage drawn in the detail pane, each way.

    Attributes:
        state: JSON-ready dict the widget draws: ``query``, ``groups`` (the matching rows),
            ``total``, ``selected``, ``detail``, ``result`` (of the last action), ``revision``.
    """

    def __init__(self, workbench: Any, *, lineage_depth: int = 3) -> None:
        self.workbench = workbench
        self.metadata = workbench.metadata
        self.lineage_depth = lineage_depth
        self.state: dict[str, Any] = {
            "query": "",
            "groups": [],
            "total": 0,
            "selected": None,
            "detail": None,
            "result": None,
            "revision": 0,
        }
        self._entries: list[dict[str, Any]] = []
        self.refresh()

    # -- listing ---------------------------------------------------------------------------
    def refresh(self) -> list[dict[str, Any]]:
        """Re-read the registry (groups, rows, writes, drift); keep the query and selection."""
        self._entries = self._read_entries()
        self.state["total"] = len(self._entries)
        self._apply_query()
        selected = self.state["selected"]
        if selected is not None:
            known = {e["name"] for e in self._entries}
            self.state["detail"] = self._detail(selected) if selected in known else None
            if selected not in known:
                self.state["selected"] = None
        self._bump()
        return self.state["groups"]

    def search(self, query: str) -> list[str]:
        """Keep the groups whose name, description, tags or feature names contain ``query``.

        Matching is case-insensitive; every whitespace-separated word must match. An empty
        query lists every group.

        Returns:
            The matching group names.
        """
        self.state["query"] = str(query or "")
        self._apply_query()
        self._bump()
        return [e["name"] for e in self.state["groups"]]

    def _apply_query(self) -> None:
        words = self.state["query"].lower().split()
        self.state["groups"] = [e for e in self._entries if all(w in e["_text"] for w in words)]
        self.state["groups"] = [{k: v for k, v in e.items() if k != "_text"} for e in self.state["groups"]]

    def select(self, name: str) -> dict[str, Any]:
        """Select group ``name`` and return its detail (schema, lineage, last writes, drift).

        Raises:
            FeatureGroupNotFoundError: If no such group is registered (the groups are listed).
        """
        known = [e["name"] for e in self._entries]
        if name not in known:
            self._entries = self._read_entries()
            known = [e["name"] for e in self._entries]
            if name not in known:
                raise FeatureGroupNotFoundError(name, available=known)
            self._apply_query()
        self.state["selected"] = name
        self.state["detail"] = self._detail(name)
        self.state["result"] = None
        self._bump()
        return self.state["detail"]

    def card(self, name: str) -> GroupCard:
        """Return the rich display of group ``name`` with its registry status.

        Raises:
            FeatureGroupNotFoundError: If no such group is registered.
        """
        schema = self.metadata.get_feature_group(name)
        entry = self._entry(name) or {}
        status = {k: entry[k] for k in ("kind", "rows", "last_write", "drift") if entry.get(k) is not None}
        if entry.get("online"):
            status["route"] = f"online ({entry['online']})"
        return GroupCard(schema, status)

    # -- actions ---------------------------------------------------------------------------
    def preview(self, *, limit: int = _PREVIEW_ROWS) -> dict[str, Any]:
        """Preview the selected group through the workbench; return the action result.

        Raises:
            ConfigurationError: If no group is selected, or the workbench cannot preview.
        """
        name = self._require_selected("preview")
        run = getattr(self.workbench, "preview", None)
        if run is None:
            raise ConfigurationError(f"{type(self.workbench).__name__} has no preview(); pass a Workbench.")
        result = run(name, limit=limit)
        frame = getattr(result, "frame", None)
        if frame is not None and not hasattr(frame, "height"):
            frame = frame.collect()
        outcome = {
            "action": "preview",
            "group": name,
            "ok": True,
            "message": f"{0 if frame is None else frame.height} rows of {name}"
            + (f" via {result.route}" if getattr(result, "route", None) else ""),
            "columns": [] if frame is None else list(frame.columns),
            "rows": [] if frame is None else [[_jsonable(v) for v in row] for row in frame.rows()],
            "sql": getattr(result, "sql", None),
            "route": getattr(result, "route", None),
            "seconds": getattr(result, "seconds", None),
        }
        self.state["result"] = outcome
        self._bump()
        return outcome

    def promote(self, *, to: str = "materialized") -> dict[str, Any]:
        """Promote the selected group (``to="materialized"`` or ``"online"``); return the result.

        Raises:
            ConfigurationError: If no group is selected, or the workbench cannot promote.
        """
        name = self._require_selected("promote")
        run = getattr(self.workbench, "promote", None)
        if run is None:
            raise ConfigurationError(f"{type(self.workbench).__name__} has no promote(); pass a Workbench.")
        result = run(name, to=to)
        message = getattr(result, "message", None) or repr(result)
        outcome = {"action": "promote", "group": name, "ok": True, "to": to, "message": str(message)}
        self._entries = self._read_entries()
        self._apply_query()
        self.state["detail"] = self._detail(name)
        self.state["result"] = outcome
        self._bump()
        return outcome

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run one browser request and return the new state; errors are reported, never raised.

        Requests: ``{"action": "search", "query": "..."}``, ``{"action": "select", "group": "..."}``,
        ``{"action": "preview", "limit": 10}``, ``{"action": "promote", "to": "online"}``,
        ``{"action": "refresh"}``. A failure sets ``state["result"]`` to
        ``{"ok": False, "message": ...}`` with the error's message.

        Example:
            >>> catalog.handle({"action": "select", "group": "user_features"})["selected"]  # doctest: +SKIP
            'user_features'
        """
        action = str(request.get("action", ""))
        try:
            if action == "refresh":
                self.refresh()
            elif action == "search":
                self.search(str(request.get("query", "")))
            elif action == "select":
                self.select(str(request.get("group", "")))
            elif action == "preview":
                self.preview(limit=int(request.get("limit", _PREVIEW_ROWS)))
            elif action == "promote":
                self.promote(to=str(request.get("to", "materialized")))
            else:
                raise ConfigurationError(f"Unknown browser action {action!r}; use one of {list(ACTIONS)}.")
        except (FeatureStoreException, ValueError, KeyError, TypeError) as err:
            plain_key_error = isinstance(err, KeyError) and not isinstance(err, FeatureStoreException)
            message = str(err.args[0]) if plain_key_error and err.args else str(err)
            self.state["result"] = {
                "action": action,
                "ok": False,
                "message": f"{type(err).__name__}: {message}",
            }
            self._bump()
        return self.state

    def to_json(self) -> str:
        """Return :attr:`state` as JSON text."""
        return json.dumps(self.state, default=str)

    # -- reading the registry --------------------------------------------------------------
    def _require_selected(self, what: str) -> str:
        name = self.state["selected"]
        if name is None:
            raise ConfigurationError(f"Select a feature group before {what}.", hint="catalog.select(name)")
        return str(name)

    def _read_entries(self) -> list[dict[str, Any]]:
        entries = (self._entry(name) for name in sorted(self.metadata.list_feature_groups()))
        return [e for e in entries if e is not None]

    def _entry(self, name: str) -> dict[str, Any] | None:
        schema = self.metadata.find_feature_group(name)
        if schema is None:
            return None
        writes = _safe(lambda: self.metadata.list_writes(name, schema.version), [])
        rows = _rows_now(writes)
        drift = _last_verdict(writes)
        sync = _safe(lambda: self.metadata.find_document("online_sync", name), None) or {}
        virtual = _safe(lambda: self.metadata.find_document("virtual_definition", name), None)
        text = " ".join(
            [
                name,
                schema.description or "",
                *schema.feature_names,
                *(f"{k} {v}" for k, v in schema.tags.items()),
            ]
        ).lower()
        return {
            "name": name,
            "version": schema.version,
            "kind": ("virtual + materialized" if writes else "virtual") if virtual else "materialized",
            "features": len(schema.features),
            "rows": rows,
            "last_write": writes[-1].written_at.strftime("%Y-%m-%d %H:%M:%S UTC") if writes else None,
            "drift": drift,
            "online": sync.get("status"),
            "description": schema.description or "",
            "_text": text,
        }

    def _detail(self, name: str) -> dict[str, Any]:
        schema = self.metadata.get_feature_group(name)
        entry = next((e for e in self._entries if e["name"] == name), None) or self._entry(name) or {}
        writes = _safe(lambda: self.metadata.list_writes(name, schema.version, limit=_WRITES_SHOWN), [])
        drift_report = _last_report(writes)
        virtual = _safe(lambda: self.metadata.find_document("virtual_definition", name), None) or {}
        lineage_svg = _safe(lambda: self._lineage(name).to_svg(), "")
        return {
            "name": name,
            "version": schema.version,
            "versions": _safe(lambda: self.metadata.list_versions(name), [schema.version]),
            "description": schema.description or "",
            "kind": entry.get("kind"),
            "rows": entry.get("rows"),
            "online": entry.get("online"),
            "entity_keys": list(schema.entity_keys),
            "timestamp_key": schema.timestamp_key,
            "ttl": h.fmt(schema.ttl) if schema.ttl is not None else None,
            "tags": dict(schema.tags),
            "owner": schema.owner,
            "features": [
                {
                    "name": f.name,
                    "type": str(getattr(f.data_type, "value", f.data_type)),
                    "kind": str(getattr(f.feature_type, "value", f.feature_type)),
                    "nullable": bool(f.nullable),
                    "description": f.description,
                }
                for f in schema.features
            ],
            "sql": [str(q) for q in (virtual.get("queries") or {}).values()],
            "writes": [
                {
                    "id": w.id,
                    "mode": w.mode,
                    "rows": w.rows,
                    "table_version": w.table_version,
                    "written_at": w.written_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    "drift": (w.details.get("drift") or {}).get("verdict")
                    if isinstance(w.details.get("drift"), dict)
                    else None,
                }
                for w in reversed(writes)
            ],
            "drift": drift_report,
            "lineage_svg": lineage_svg,
        }

    def _lineage(self, name: str) -> Any:
        from tauro_workbench.lineage_graph import LineageGraph

        return LineageGraph.from_registry(
            self.metadata, name, upstream=self.lineage_depth, downstream=self.lineage_depth
        )

    def _bump(self) -> None:
        self.state["revision"] = int(self.state["revision"]) + 1

    # -- displays --------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        return h.render(lambda c: displays.registry_html(c.state["groups"]), self)

    def __repr__(self) -> str:
        try:
            return f"Catalog(groups={self.state['total']}, selected={self.state['selected']!r})"
        except Exception:  # a repr must never raise
            return object.__repr__(self)


def _safe(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except Exception:  # the browser shows what it can; a broken part leaves the rest usable
        return default


def _rows_now(writes: list[Any]) -> int | None:
    """Rows in the table after the listed writes: appends add up since the last overwrite."""
    if not writes:
        return None
    total = 0
    for w in writes:
        if w.mode == "overwrite":
            total = w.rows
        elif w.mode == "append":
            total += w.rows
        else:  # a merge or backfill replaces some rows: the count is not known from the log
            return None
    return total


def _last_verdict(writes: list[Any]) -> str | None:
    report = _last_report(writes)
    return None if report is None else report["verdict"]


def _last_report(writes: list[Any]) -> dict[str, Any] | None:
    for w in reversed(writes):
        drift = w.details.get("drift")
        if isinstance(drift, dict) and drift.get("verdict"):
            return {
                "verdict": drift["verdict"],
                "write_id": w.id,
                "reference": drift.get("reference"),
                "features": [
                    {
                        "feature": f.get("feature"),
                        "psi": _jsonable(f.get("psi")),
                        "ks": _jsonable(f.get("ks")),
                        "verdict": f.get("verdict"),
                    }
                    for f in drift.get("features", ())
                    if isinstance(f, dict)
                ],
            }
    return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return h.fmt(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
