"""Rich HTML displays of the core's result objects (feature groups, previews, routes, drift, ...).

The ``_repr_html_`` of each core class delegates here; every renderer is built on the stdlib
leaf :mod:`tauro_workbench.html` and reads its object by attribute (no import of the classes,
so there is no import cycle and a display of a half-built or foreign object degrades to text
instead of raising). Use :func:`html_of` to render anything safely.

Example:
    >>> from tauro_workbench.stores.base import HealthReport
    >>> "healthy" in html_of(HealthReport({"registry": True}))
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tauro_workbench import html as h

__all__ = [
    "drift_report_html",
    "frame_html",
    "group_html",
    "health_html",
    "html_of",
    "preview_html",
    "promotion_html",
    "psi_chart_svg",
    "query_result_html",
    "registry_html",
    "route_html",
    "sync_report_html",
    "training_set_html",
    "view_html",
    "write_html",
    "writes_html",
]

FRAME_ROWS = 20
"""Rows of a frame shown in a display (the rest is counted)."""


def html_of(obj: object) -> str:
    """Return the rich display of ``obj`` (by its class name), or its text; never raises."""
    renderer = _RENDERERS.get(type(obj).__name__)
    if renderer is None:
        return h.fallback(obj)
    return h.render(renderer, obj)


# -- frames ------------------------------------------------------------------------------
def frame_html(frame: Any, *, limit: int = FRAME_ROWS) -> str:
    """Return a Polars DataFrame (or LazyFrame, collected to ``limit`` rows) as a table."""
    if frame is None:
        return h.note("no rows")
    if hasattr(frame, "collect") and not hasattr(frame, "height"):
        frame = frame.head(limit).collect()
    columns = list(frame.columns)
    headers = [f"{c}" for c in columns]
    dtypes = [str(t) for t in frame.dtypes]
    rows = frame.head(limit).rows()
    head = (
        '<table class="tauro-table tauro-frame"><thead><tr>'
        + "".join(
            f"<th>{h.escape(c)}<br><small style='opacity:.6'>{h.escape(t)}</small></th>"
            for c, t in zip(headers, dtypes, strict=True)
        )
        + "</tr></thead><tbody>"
    )
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    more = frame.height - len(rows)
    tail = h.note(f"\u2026 {more:,} more rows") if more > 0 else ""
    shape = h.note(f"{frame.height:,} rows \u00d7 {len(columns)} columns")
    return f"{shape}{head}{body}</tbody></table>{tail}"


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    klass = ' class="tauro-num"' if numeric else ""
    return f"<td{klass}>{h.escape(value)}</td>"


# -- schemas and the registry --------------------------------------------------------------
def group_html(schema: Any, status: Mapping[str, Any] | None = None) -> str:
    """Return the display of a feature group: keys, ttl, version, tags and the schema table.

    Args:
        schema: A :class:`~tauro_workbench.schema.FeatureGroupSchema`.
        status: What the registry knows beyond the schema (``kind``, ``rows``, ``last_write``,
            ``route``, ``drift``, ``table_version``); shown when given.
    """
    status = dict(status or {})
    facts: list[tuple[str, Any]] = [
        ("version", schema.version),
        ("entity keys", list(schema.entity_keys)),
        ("event time", schema.timestamp_key or "none (latest value)"),
    ]
    if getattr(schema, "created_timestamp_key", None):
        facts.append(("created time", schema.created_timestamp_key))
    facts.append(("ttl", schema.ttl if schema.ttl is not None else "none (unbounded)"))
    if getattr(schema, "owner", None):
        facts.append(("owner", schema.owner))
    if schema.tags:
        facts.append(("tags", dict(schema.tags)))
    for key in ("kind", "rows", "table_version", "last_write", "route"):
        if key in status:
            facts.append((key.replace("_", " "), status[key]))
    raw: list[str] = []
    if status.get("drift"):
        facts.append(("drift", h.badge(status["drift"])))
        raw.append("drift")
    rows = [
        [
            f.name,
            str(getattr(f.data_type, "value", f.data_type)),
            str(getattr(f.feature_type, "value", f.feature_type)),
            "yes" if f.nullable else "no",
            _constraints(f.metadata),
            f.description,
        ]
        for f in schema.features
    ]
    body = (
        (h.note(schema.description) if schema.description else "")
        + h.keys_table(facts, raw=raw)
        + h.table(["feature", "type", "kind", "nullable", "constraints", "description"], rows)
    )
    return h.display("feature group", schema.name, body, cls="tauro-group")


def _constraints(metadata: Mapping[str, Any]) -> str:
    parts = [f"{k} {metadata[k]}" for k in ("min", "max") if k in metadata]
    if "allowed_values" in metadata:
        parts.append(f"in {list(metadata['allowed_values'])}")
    return ", ".join(str(p) for p in parts)


def registry_html(entries: Sequence[Mapping[str, Any]], *, title: str = "registry") -> str:
    """Return the registry listing: one row per group (name, version, kind, features, rows, ...)."""
    if not entries:
        return h.display(
            "feature groups", title, h.note("No feature groups registered yet."), cls="tauro-registry"
        )
    rows = [
        [
            e.get("name"),
            e.get("version"),
            e.get("kind"),
            e.get("features"),
            e.get("rows"),
            e.get("last_write"),
            h.badge(e["drift"]) if e.get("drift") else "\u2013",
            e.get("online") or "\u2013",
        ]
        for e in entries
    ]
    body = h.table(
        ["group", "version", "kind", "features", "rows", "last write", "drift", "online"], rows, raw=[6]
    )
    return h.display("feature groups", f"{title} ({len(entries)})", body, cls="tauro-registry")


# -- reads -------------------------------------------------------------------------------
def preview_html(preview: Any) -> str:
    """Return the display of a ``Preview``: route, engine, timing, the SQL and the rows."""
    facts = {
        "route": getattr(preview, "route", None),
        "engine": getattr(preview, "engine", None),
        "time": _seconds(getattr(preview, "seconds", None)),
    }
    body = h.keys_table({k: v for k, v in facts.items() if v is not None})
    sql = getattr(preview, "sql", None)
    if sql:
        body += h.section("SQL", h.code(sql))
    body += frame_html(getattr(preview, "frame", None))
    return h.display("preview", str(getattr(preview, "group", "")), body, cls="tauro-preview")


def query_result_html(result: Any) -> str:
    """Return the display of an engine ``QueryResult``: engine, timing, SQL and rows."""
    body = h.keys_table({"engine": result.engine, "time": _seconds(result.seconds)})
    body += h.section("SQL", h.code(result.sql)) + frame_html(result.frame)
    return h.display("query result", "", body, cls="tauro-query")


def training_set_html(training: Any) -> str:
    """Return the display of a ``TrainingSet``: rows, table versions used, match rate per group."""
    frame = getattr(training, "frame", None)
    versions = dict(getattr(training, "table_versions", {}) or {})
    rates = dict(getattr(training, "match_rate", {}) or {})
    groups = sorted(set(versions) | set(rates))
    facts: dict[str, Any] = {}
    if frame is not None:
        facts["rows"] = frame.height
        facts["columns"] = len(frame.columns)
    features = getattr(training, "features", None)
    if features:
        facts["features"] = list(features)
    seconds = getattr(training, "seconds", None)
    if seconds is not None:
        facts["time"] = _seconds(seconds)
    rows = [
        [
            g,
            versions.get(g, "virtual (computed)") if versions.get(g) is not None else "virtual / latest",
            _percent(rates.get(g)),
        ]
        for g in groups
    ]
    body = h.keys_table(facts)
    if rows:
        body += h.section("per group", h.table(["group", "table version used", "match rate"], rows))
    body += frame_html(frame, limit=10)
    return h.display("training set", "", body, cls="tauro-training-set")


def route_html(route: Any) -> str:
    """Return the display of a hybrid ``Route``: the target, the policy and the reasons."""
    target = str(getattr(route, "target", "?"))
    body = h.keys_table({"policy": getattr(route, "policy", None)})
    reasons = list(getattr(route, "reasons", ()) or ())
    if reasons:
        body += h.section("why", "<ul>" + "".join(f"<li>{h.escape(r)}</li>" for r in reasons) + "</ul>")
    facts = getattr(route, "facts", None)
    fact_items = _public_fields(facts)
    if fact_items:
        body += h.section("facts", h.keys_table(fact_items))
    return h.display("route", "", body, cls="tauro-route", extra=h.badge(target, "info"))


def promotion_html(result: Any) -> str:
    """Return the display of a ``PromotionResult``: target, rows, table version, drift, timing."""
    changed = getattr(result, "changed", True)
    facts = {
        "version": getattr(result, "version", None),
        "target": getattr(result, "target", None),
        "rows": getattr(result, "rows", None),
        "table version": getattr(result, "table_version", None),
        "time": _seconds(getattr(result, "seconds", None)),
        "changed": "yes" if changed else "no (already up to date)",
    }
    raw = []
    verdict = getattr(result, "drift_verdict", None)
    if verdict:
        facts["drift"] = h.badge(verdict)
        raw.append("drift")
    body = h.keys_table(facts, raw=raw)
    message = getattr(result, "message", "")
    if message:
        body = h.note(message) + body
    return h.display(
        "promotion",
        str(getattr(result, "group", "")),
        body,
        cls="tauro-promotion",
        extra=h.badge("promoted" if changed else "unchanged", "ok" if changed else "muted"),
    )


def sync_report_html(report: Any) -> str:
    """Return the display of an online ``SyncReport``."""
    body = h.keys_table(
        {
            "version": report.version,
            "rows read": report.rows,
            "entities": report.entities,
            "applied": report.applied,
            "full sync": report.full,
            "time": _seconds(report.seconds),
        }
    )
    return h.display("online sync", report.group, body, cls="tauro-sync")


def view_html(view: Any) -> str:
    """Return the display of a ``FeatureView``: its version and features, grouped by group."""
    rows = [[f.partition(".")[0], f.partition(".")[2]] for f in view.features]
    body = (h.note(view.description) if getattr(view, "description", "") else "") + h.keys_table(
        {"version": view.version, "created at": getattr(view, "created_at", None)}
    )
    body += h.table(["group", "feature"], rows)
    return h.display("feature view", view.name, body, cls="tauro-view")


# -- writes and health ---------------------------------------------------------------------
def write_html(record: Any) -> str:
    """Return the display of a ``WriteRecord`` (details summarized, never dumped)."""
    details = dict(getattr(record, "details", {}) or {})
    facts: dict[str, Any] = {
        "write id": record.id,
        "version": record.version,
        "mode": record.mode,
        "rows": record.rows,
        "table version": record.table_version,
        "written at": record.written_at,
    }
    facts.update(_detail_summary(details))
    raw = []
    drift = details.get("drift")
    if isinstance(drift, Mapping) and drift.get("verdict"):
        facts["drift"] = h.badge(drift["verdict"])
        raw.append("drift")
    return h.display("write", record.group, h.keys_table(facts, raw=raw), cls="tauro-write")


def writes_html(records: Iterable[Any], *, title: str = "writes") -> str:
    """Return a list of writes as one table (newest last)."""
    rows = []
    for r in records:
        details = dict(getattr(r, "details", {}) or {})
        drift = details.get("drift")
        verdict = drift.get("verdict") if isinstance(drift, Mapping) else None
        rows.append(
            [
                r.id,
                r.group,
                r.version,
                r.mode,
                r.rows,
                r.table_version,
                r.written_at,
                h.badge(verdict) if verdict else "\u2013",
            ]
        )
    if not rows:
        return h.display("writes", title, h.note("No writes yet."), cls="tauro-writes")
    body = h.table(
        ["id", "group", "version", "mode", "rows", "table version", "written at", "drift"], rows, raw=[7]
    )
    return h.display("writes", title, body, cls="tauro-writes")


def _detail_summary(details: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in details.items():
        if key == "drift":
            continue
        if isinstance(value, Mapping):
            out[key] = f"{{{len(value)} fields}}" if len(value) > 4 else dict(value)
        elif isinstance(value, list | tuple) and len(value) > 6:
            out[key] = f"[{len(value)} items]"
        else:
            out[key] = value
    return out


def health_html(report: Any) -> str:
    """Return the display of a ``HealthReport``: one row per check with its detail."""
    checks = dict(getattr(report, "checks", {}) or {})
    details = dict(getattr(report, "details", {}) or {})
    healthy = all(checks.values())
    rows = [[name, h.badge("ok" if ok else "failed"), details.get(name, "")] for name, ok in checks.items()]
    body = h.table(["check", "status", "detail"], rows, raw=[1]) if rows else h.note("No checks ran.")
    state = "healthy" if healthy else "unhealthy"
    return h.display(
        "health", "", body, cls="tauro-health", extra=h.badge(state, "ok" if healthy else "error")
    )


# -- drift -------------------------------------------------------------------------------
def drift_report_html(report: Any, *, chart: bool = True) -> str:
    """Return the display of a ``DriftReport``: the verdict, the PSI chart and the verdict table.

    Args:
        report: The report.
        chart: Draw the stdlib SVG chart of PSI per feature (marimo shows an Altair chart instead).
    """
    features = list(getattr(report, "features", ()) or ())
    summary = (
        f"{report.rows:,} rows compared with {report.reference} ({report.reference_rows:,} rows); "
        f"gate: {report.on_drift}."
    )
    body = h.note(summary)
    if features:
        if chart:
            body += psi_chart_svg(features)
        rows = [
            [
                f.feature,
                f.kind,
                _num(f.psi),
                _num(f.ks),
                f"{f.null_rate_change:+.4f}",
                h.badge(f.verdict),
                "; ".join(f.reasons),
            ]
            for f in features
        ]
        body += h.table(["feature", "kind", "PSI", "KS", "\u0394 null rate", "verdict", "why"], rows, raw=[5])
    else:
        body += h.note("No features compared.")
    title = f"{report.group} v{report.version}"
    return h.display("drift report", title, body, cls="tauro-drift-report", extra=h.badge(report.verdict))


def _num(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.4f}"


def psi_chart_svg(features: Sequence[Any], *, width: int = 460) -> str:
    """Return a small stdlib SVG bar chart of PSI per feature, with its warning and drift marks.

    Bars are coloured by verdict only; the thresholds are dashed ticks. KS is not drawn here
    (it is in the table), so a colour never means two statistics.
    """
    items = [f for f in features if getattr(f, "psi", None) is not None and math.isfinite(f.psi)]
    if not items:
        return ""
    label_w, row_h, pad = 150, 20, 8
    top = max(max(f.psi, f.psi_drift) for f in items) * 1.1 or 1.0
    plot_w = width - label_w - 60
    height = pad * 2 + row_h * len(items) + 18

    def x(value: float) -> float:
        return label_w + plot_w * min(value, top) / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tauro-psi-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="PSI per feature">'
    ]
    for i, f in enumerate(items):
        y = pad + i * row_h
        colour = h.TONES.get(f.verdict, h.TONES["muted"])
        label = f.feature if len(f.feature) <= 22 else f.feature[:21] + "\u2026"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{h.escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(x(f.psi) - label_w, 1):.1f}" height="{row_h - 6}" '
            f'fill="{colour}"><title>{h.escape(f.feature)}: PSI {f.psi:.4f} ({h.escape(f.verdict)})</title></rect>'
            f'<text x="{x(f.psi) + 4:.1f}" y="{y + 14}" font-size="10" fill="currentColor">{f.psi:.3f}</text>'
            f'<line x1="{x(f.psi_warning):.1f}" x2="{x(f.psi_warning):.1f}" y1="{y + 1}" y2="{y + row_h - 1}" '
            f'stroke="{h.TONES["warning"]}" stroke-width="2" stroke-dasharray="3,2"/>'
            f'<line x1="{x(f.psi_drift):.1f}" x2="{x(f.psi_drift):.1f}" y1="{y + 1}" y2="{y + row_h - 1}" '
            f'stroke="{h.TONES["drift"]}" stroke-width="2" stroke-dasharray="3,2"/>'
        )
    axis_y = pad + row_h * len(items) + 12
    parts.append(
        f'<text x="{label_w}" y="{axis_y}" font-size="10" fill="currentColor" opacity=".7">'
        f"PSI (dashed: warning / drift threshold)</text></svg>"
    )
    return "".join(parts)


# -- shared ------------------------------------------------------------------------------
def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.1%}"


def _public_fields(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    fields = getattr(obj, "__dataclass_fields__", None)
    if fields:
        return {name: getattr(obj, name, None) for name in fields if not name.startswith("_")}
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else {}


_RENDERERS: dict[str, Any] = {
    "FeatureGroupSchema": group_html,
    "Preview": preview_html,
    "QueryResult": query_result_html,
    "TrainingSet": training_set_html,
    "Route": route_html,
    "PromotionResult": promotion_html,
    "SyncReport": sync_report_html,
    "WriteRecord": write_html,
    "HealthReport": health_html,
    "FeatureView": view_html,
    "DriftReport": drift_report_html,
}
