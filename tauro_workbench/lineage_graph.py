"""LineageGraph: where a feature group comes from and what uses it, laid out and drawn offline.

Built from the registry alone: the lineage edges (``source -> group.feature``), the virtual
definitions (their SQL becomes a node between the sources and the features), the groups and
their features, the writes that landed data in a materialized group (what wrote it), feature
views and the online sync state. Kinds, left to right::

    source -> sql -> feature -> group -> view
    write ----------------------^     \\-> online

The graph around one node keeps ``upstream`` hops towards the sources and ``downstream`` hops
away from them. It renders to SVG with the standard library only (a layered layout: each node
one column right of its deepest input), to PNG through ``vl-convert`` (the ``notebook`` extra),
to a dict and to text.

Example:
    >>> from tauro_workbench.registry import FeatureStoreMetadata
    >>> metadata = FeatureStoreMetadata()
    >>> metadata.set_lineage("user_features.age", ["silver.users"])
    >>> graph = LineageGraph.from_registry(metadata, "user_features.age")
    >>> [n.label for n in graph.nodes]
    ['silver.users', 'user_features.age']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tauro_workbench import html as h
from tauro_workbench.exceptions import FeatureGroupNotFoundError, MissingExtraError

__all__ = ["KINDS", "LineageEdge", "LineageGraph", "LineageNode"]

KINDS = ("source", "sql", "write", "feature", "group", "view", "online", "node")
"""Node kinds, in the order they are drawn within a column."""

_COLOURS = {
    "source": "#6d4c41",
    "sql": "#5e35b1",
    "write": "#00838f",
    "feature": "#1565c0",
    "group": "#2e7d32",
    "view": "#ef6c00",
    "online": "#37474f",  # not red: red means drift everywhere else
    "node": "#616161",
}
_VIRTUAL_KIND = "virtual_definition"
_SOURCE_KIND = "source"
_SYNC_KIND = "online_sync"
_VIEW_KINDS = ("feature_view",)
_WRITES_SHOWN = 3
_TOOLTIP_FACTS = ("table_version", "written_at", "status", "updated_at")
_NODE_W, _NODE_H, _COL_GAP, _ROW_GAP, _MARGIN = 170, 34, 60, 12, 16


@dataclass(frozen=True)
class LineageNode:
    """One node: ``id`` is ``<kind>:<name>``; ``detail`` is a short second line (e.g. row count)."""

    id: str
    kind: str
    label: str
    detail: str = ""
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the node as JSON-ready data."""
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "detail": self.detail,
            "info": dict(self.info),
        }


@dataclass(frozen=True)
class LineageEdge:
    """``upstream -> downstream``: the downstream node is computed from (or fed by) the upstream one."""

    upstream: str
    downstream: str

    def to_dict(self) -> dict[str, str]:
        """Return the edge as JSON-ready data."""
        return {"upstream": self.upstream, "downstream": self.downstream}


@dataclass(frozen=True)
class LineageGraph:
    """The lineage around ``focus``: nodes with their layer (column) and edges.

    Attributes:
        focus: Id of the node the graph is centred on.
        nodes: Nodes, sorted by layer then kind then label.
        edges: Edges between those nodes, sorted.
        depth: Hops from the focus: negative upstream, positive downstream.
        upstream: Hops kept towards the sources.
        downstream: Hops kept away from them.
    """

    focus: str
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]
    depth: Mapping[str, int] = field(default_factory=dict)
    upstream: int = 3
    downstream: int = 3

    # -- building ----------------------------------------------------------------------
    @classmethod
    def from_registry(
        cls, metadata: Any, name: str, *, upstream: int = 3, downstream: int = 3
    ) -> LineageGraph:
        """Return the lineage of ``name`` (a group, ``group.feature``, source or view).

        Args:
            metadata: The registry (:class:`~tauro_workbench.registry.FeatureStoreMetadata`).
            name: A feature group, a feature as ``group.feature``, a source such as
                ``silver.users``, or a feature view.
            upstream: Hops to follow towards the sources (0 for none).
            downstream: Hops to follow away from them.

        Raises:
            FeatureGroupNotFoundError: If ``name`` is in no lineage, group, source or view
                (the groups are listed).

        Example:
            >>> LineageGraph.from_registry(wb.metadata, "user_features", upstream=2)  # doctest: +SKIP
        """
        nodes, edges = _registry_graph(metadata)
        focus = _resolve(name, nodes)
        if focus is None:
            groups = sorted(n.label for n in nodes.values() if n.kind == "group")
            raise FeatureGroupNotFoundError(name, available=groups)
        return cls.around(nodes.values(), edges, focus, upstream=upstream, downstream=downstream)

    @classmethod
    def around(
        cls,
        nodes: Iterable[LineageNode],
        edges: Iterable[LineageEdge],
        focus: str,
        *,
        upstream: int = 3,
        downstream: int = 3,
    ) -> LineageGraph:
        """Return the subgraph within ``upstream``/``downstream`` hops of node id ``focus``."""
        by_id = {n.id: n for n in nodes}
        edge_set = {
            (e.upstream, e.downstream) for e in edges if e.upstream in by_id and e.downstream in by_id
        }
        parents: dict[str, set[str]] = {}
        children: dict[str, set[str]] = {}
        for up, down in edge_set:
            children.setdefault(up, set()).add(down)
            parents.setdefault(down, set()).add(up)
        depth = {focus: 0}
        for links, limit, sign in ((parents, upstream, -1), (children, downstream, 1)):
            frontier = [focus]
            for hop in range(1, max(limit, 0) + 1):
                following = []
                for node in frontier:
                    for other in sorted(links.get(node, ())):
                        if other not in depth:
                            depth[other] = sign * hop
                            following.append(other)
                frontier = following
        kept = set(depth)
        layers = _layers(kept, edge_set)
        order = {k: i for i, k in enumerate(KINDS)}
        chosen = sorted(
            (by_id[i] for i in kept), key=lambda n: (layers[n.id], order.get(n.kind, 99), n.label)
        )
        kept_edges = [LineageEdge(u, d) for u, d in sorted(edge_set) if u in kept and d in kept]
        return cls(focus, tuple(chosen), tuple(kept_edges), depth, upstream, downstream)

    # -- reading ---------------------------------------------------------------------------
    def node(self, node_id: str) -> LineageNode:
        """Return the node with id ``node_id`` (``group:user_features``) or label.

        Raises:
            KeyError: If there is no such node (the ids are listed).
        """
        for n in self.nodes:
            if node_id in (n.id, n.label):
                return n
        raise KeyError(f"no lineage node {node_id!r}; nodes: {[n.id for n in self.nodes]}")

    def upstream_of(self, node_id: str) -> list[str]:
        """Return the ids of the direct inputs of ``node_id``."""
        return [e.upstream for e in self.edges if e.downstream == node_id]

    def downstream_of(self, node_id: str) -> list[str]:
        """Return the ids of what ``node_id`` feeds directly."""
        return [e.downstream for e in self.edges if e.upstream == node_id]

    def layers(self) -> dict[str, int]:
        """Return the column of every node (0 = leftmost: a node sits right of all its inputs)."""
        return _layers({n.id for n in self.nodes}, {(e.upstream, e.downstream) for e in self.edges})

    # -- exports ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the graph as JSON-ready data: focus, nodes (with layer and depth), edges."""
        layers = self.layers()
        return {
            "focus": self.focus,
            "upstream": self.upstream,
            "downstream": self.downstream,
            "nodes": [
                {**n.to_dict(), "layer": layers[n.id], "depth": self.depth.get(n.id, 0)} for n in self.nodes
            ],
            "edges": [e.to_dict() for e in self.edges],
        }

    def to_text(self) -> str:
        """Return the graph as lines ``upstream -> downstream`` (labels), focus first."""
        focus = self.node(self.focus)
        lines = [f"lineage of {focus.label} ({focus.kind}), {len(self.nodes)} nodes"]
        labels = {n.id: f"{n.label} [{n.kind}]" for n in self.nodes}
        lines += [f"  {labels[e.upstream]} -> {labels[e.downstream]}" for e in self.edges]
        return "\n".join(lines)

    def to_svg(self) -> str:
        """Return the graph drawn as a standalone SVG (stdlib only; no fonts or scripts fetched).

        Example:
            >>> graph.to_svg()[:4]  # doctest: +SKIP
            '<svg'
        """
        return _svg(self)

    def to_png(self, *, scale: float = 2.0) -> bytes:
        """Return the graph as PNG bytes, rendered offline by ``vl-convert`` (``notebook`` extra).

        Raises:
            MissingExtraError: If ``vl-convert-python`` is not installed.
        """
        try:
            import vl_convert
        except ImportError as err:
            raise MissingExtraError("vl-convert-python", extra="notebook") from err
        return bytes(vl_convert.svg_to_png(self.to_svg(), scale=scale))

    def __repr__(self) -> str:
        try:
            return f"LineageGraph(focus={self.focus!r}, nodes={len(self.nodes)}, edges={len(self.edges)})"
        except Exception:  # a repr must never raise
            return object.__repr__(self)

    def _repr_html_(self) -> str:
        return h.render(_html, self)

    def _mime_(self) -> tuple[str, str]:
        return "text/html", self._repr_html_()


# -- the registry graph ---------------------------------------------------------------------
def _registry_graph(metadata: Any) -> tuple[dict[str, LineageNode], set[LineageEdge]]:
    nodes: dict[str, LineageNode] = {}
    edges: set[LineageEdge] = set()
    groups: dict[str, Any] = {}
    for name in metadata.list_feature_groups():
        schema = metadata.find_feature_group(name)
        if schema is not None:
            groups[name] = schema
    sources = _documents(metadata, _SOURCE_KIND)
    virtual = _documents(metadata, _VIRTUAL_KIND)
    synced = _documents(metadata, _SYNC_KIND)

    def add(kind: str, name: str, detail: str = "", **info: Any) -> str:
        node_id = f"{kind}:{name}"
        if node_id not in nodes or (detail and not nodes[node_id].detail):
            nodes[node_id] = LineageNode(node_id, kind, name, detail, info)
        return node_id

    def classify(name: str) -> str:
        if name in groups:
            return add("group", name)
        group, _, feature = name.partition(".")
        if feature and group in groups:
            return add("feature", name)
        if name in sources:
            return add("source", name, _source_detail(sources[name]))
        if "." in name:
            return add("source", name)
        return add("node", name)

    for name, schema in groups.items():
        kind = "virtual" if name in virtual else "materialized"
        group_id = add(
            "group", name, f"v{schema.version} \u00b7 {kind}", version=schema.version, storage=kind
        )
        for feature in schema.features:
            fid = add(
                "feature",
                f"{name}.{feature.name}",
                str(getattr(feature.data_type, "value", feature.data_type)),
            )
            edges.add(LineageEdge(fid, group_id))
        for write in _writes(metadata, name):
            wid = add(
                "write",
                f"{name}#{write.id}",
                f"{'promote' if 'promotion' in write.details else write.mode} {write.rows:,} rows",
                table_version=write.table_version,
                written_at=write.written_at.isoformat(),
                promoted="promotion" in write.details,
            )
            edges.add(LineageEdge(wid, group_id))
        sync = synced.get(name)
        if sync:
            oid = add(
                "online",
                name,
                str(sync.get("status", "")),
                **{k: sync[k] for k in ("status", "updated_at") if k in sync},
            )
            edges.add(LineageEdge(group_id, oid))
    sql_of: dict[str, str] = {}
    for group, doc in virtual.items():
        if group not in groups:
            continue
        queries = doc.get("queries") or {}
        sid = add(
            "sql",
            group,
            f"{doc.get('dialect', 'sql')} \u00b7 {len(queries)} quer{'y' if len(queries) == 1 else 'ies'}",
            sql="\n\n".join(f"-- {k}\n{v.strip()}" for k, v in queries.items()),
        )
        sql_of[group] = sid
        for source in doc.get("sources") or ():
            edges.add(LineageEdge(classify(str(source)), sid))
    for up, down in metadata.lineage_edges():
        up_id, down_id = classify(up), classify(down)
        group = down.partition(".")[0]
        if nodes[down_id].kind == "feature" and group in sql_of and nodes[up_id].kind == "source":
            edges.add(LineageEdge(up_id, sql_of[group]))  # source -> SQL -> feature
            edges.add(LineageEdge(sql_of[group], down_id))
        else:
            edges.add(LineageEdge(up_id, down_id))
    for group, sid in sql_of.items():
        for feature in groups[group].features:
            edges.add(LineageEdge(sid, f"feature:{group}.{feature.name}"))
        for node in list(nodes.values()):  # a promotion ran the SQL: the write comes from it
            if node.kind == "write" and node.label.startswith(f"{group}#") and node.info.get("promoted"):
                edges.add(LineageEdge(sid, node.id))
    for view_kind in _VIEW_KINDS:
        for name, doc in _documents(metadata, view_kind).items():
            latest = (doc.get("versions") or [doc])[-1]  # views keep every version; draw the latest
            features = [str(f) for f in latest.get("features") or ()]
            vid = add("view", name, f"v{latest.get('version', 1)} \u00b7 {len(features)} features")
            for feature in features:
                group = feature.partition(".")[0]
                if group in groups:
                    edges.add(LineageEdge(f"group:{group}", vid))
    return nodes, edges


def _documents(metadata: Any, kind: str) -> dict[str, dict[str, Any]]:
    try:
        return dict(metadata.list_documents(kind))
    except Exception:  # an unknown kind or an old registry: nothing of that kind
        return {}


def _writes(metadata: Any, group: str) -> list[Any]:
    try:
        return list(metadata.list_writes(group, limit=_WRITES_SHOWN))
    except Exception:
        return []


def _source_detail(doc: Mapping[str, Any]) -> str:
    return str(doc.get("format") or doc.get("kind") or "")


def _resolve(name: str, nodes: Mapping[str, LineageNode]) -> str | None:
    for kind in ("group", "feature", "view", "source", "sql", "online", "node"):
        if f"{kind}:{name}" in nodes:
            return f"{kind}:{name}"
    return name if name in nodes else None


def _layers(kept: set[str], edges: set[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering: a node sits one column right of its rightmost input."""
    parents: dict[str, list[str]] = {n: [] for n in kept}
    for up, down in edges:
        if up in kept and down in kept:
            parents[down].append(up)
    layer: dict[str, int] = {}

    def visit(node: str, trail: frozenset[str]) -> int:
        if node in layer:
            return layer[node]
        if node in trail:  # the registry rejects cycles; stay finite on a foreign graph anyway
            return 0
        inputs = [visit(p, trail | {node}) for p in parents[node]]
        layer[node] = 1 + max(inputs) if inputs else 0
        return layer[node]

    for node in sorted(kept):
        visit(node, frozenset())
    return layer


# -- drawing -------------------------------------------------------------------------------
def _positions(graph: LineageGraph) -> tuple[dict[str, tuple[float, float]], float, float]:
    layers = graph.layers()
    columns: dict[int, list[LineageNode]] = {}
    for n in graph.nodes:
        columns.setdefault(layers[n.id], []).append(n)
    pos: dict[str, tuple[float, float]] = {}
    parents: dict[str, list[str]] = {}
    for e in graph.edges:
        parents.setdefault(e.downstream, []).append(e.upstream)
    order = {k: i for i, k in enumerate(KINDS)}
    for col in sorted(columns):
        members = columns[col]
        if col > 0:  # barycentre of the inputs, so edges cross less

            def centre(n: LineageNode) -> tuple[float, int, str]:
                ys = [pos[p][1] for p in parents.get(n.id, []) if p in pos]
                return (sum(ys) / len(ys) if ys else 1e9, order.get(n.kind, 99), n.label)

            members = sorted(members, key=centre)
        for row, n in enumerate(members):
            x = _MARGIN + col * (_NODE_W + _COL_GAP)
            y = _MARGIN + 18 + row * (_NODE_H + _ROW_GAP)
            pos[n.id] = (x, y)
    width = _MARGIN * 2 + (max(columns, default=0) + 1) * (_NODE_W + _COL_GAP) - _COL_GAP
    tallest = max((len(c) for c in columns.values()), default=1)
    height = _MARGIN * 2 + 18 + tallest * (_NODE_H + _ROW_GAP) - _ROW_GAP + 22
    return pos, width, height


def _svg(graph: LineageGraph) -> str:
    pos, width, height = _positions(graph)
    esc = h.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tauro-lineage-svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'font-family="Helvetica, Arial, sans-serif" role="img" aria-label="lineage graph">',
        '<defs><marker id="tauro-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#9e9e9e"/>'
        "</marker></defs>",
    ]
    focus = graph.node(graph.focus) if any(n.id == graph.focus for n in graph.nodes) else None
    title = f"lineage of {focus.label}" if focus else "lineage"
    out.append(
        f'<text x="{_MARGIN}" y="{_MARGIN + 4}" font-size="13" font-weight="bold" fill="#424242">{esc(title)}</text>'
    )
    for e in graph.edges:
        x1, y1 = pos[e.upstream]
        x2, y2 = pos[e.downstream]
        sx, sy = x1 + _NODE_W, y1 + _NODE_H / 2
        tx, ty = x2, y2 + _NODE_H / 2
        bend = max((tx - sx) / 2, 20)
        out.append(
            f'<path class="tauro-edge" d="M {sx:.1f} {sy:.1f} C {sx + bend:.1f} {sy:.1f}, {tx - bend:.1f} {ty:.1f}, '
            f'{tx:.1f} {ty:.1f}" fill="none" stroke="#9e9e9e" stroke-width="1.3" marker-end="url(#tauro-arrow)"/>'
        )
    for n in graph.nodes:
        x, y = pos[n.id]
        colour = _COLOURS.get(n.kind, _COLOURS["node"])
        stroke = ' stroke="#212121" stroke-width="2.5"' if n.id == graph.focus else ""
        shown = _short_label(n)
        label = shown if len(shown) <= 24 else shown[:23] + "\u2026"
        detail = n.detail if len(n.detail) <= 28 else n.detail[:27] + "\u2026"
        sep = " \u00b7 "
        tip = f"{n.kind}: {n.label}" + (f" ({n.detail})" if n.detail else "")
        facts = [f"{k}={v}" for k, v in n.info.items() if k in _TOOLTIP_FACTS and v is not None]
        if facts:
            tip += "; " + ", ".join(facts)
        out.append(
            f'<g class="tauro-node tauro-node-{esc(n.kind)}" data-id="{esc(n.id)}"><title>{esc(tip)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_NODE_W}" height="{_NODE_H}" rx="6" fill="{colour}"{stroke}/>'
            f'<text x="{x + 8:.0f}" y="{y + 14:.0f}" font-size="11.5" fill="#ffffff">{esc(label)}</text>'
            f'<text x="{x + 8:.0f}" y="{y + 27:.0f}" font-size="9.5" fill="#ffffff" fill-opacity="0.85">'
            f"{esc(n.kind)}{sep if detail else ''}{esc(detail)}</text></g>"
        )
    legend_y = height - 10
    lx = _MARGIN
    for kind in KINDS:
        if any(n.kind == kind for n in graph.nodes):
            out.append(
                f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" rx="2" fill="{_COLOURS[kind]}"/>'
                f'<text x="{lx + 14}" y="{legend_y}" font-size="10" fill="#616161">{kind}</text>'
            )
            lx += 22 + 7 * len(kind)
    out.append("</svg>")
    return "".join(out)


def _short_label(node: LineageNode) -> str:
    if node.kind == "feature":
        return node.label.partition(".")[2] or node.label
    if node.kind == "write":
        return f"write #{node.label.rpartition('#')[2]}"
    return node.label


def _html(graph: LineageGraph) -> str:
    focus = graph.node(graph.focus)
    counts: dict[str, int] = {}
    for n in graph.nodes:
        counts[n.kind] = counts.get(n.kind, 0) + 1
    summary = ", ".join(f"{v} {k}{'s' if v != 1 else ''}" for k, v in counts.items())
    body = (
        h.note(f"{summary}; {graph.upstream} hops upstream, {graph.downstream} downstream") + graph.to_svg()
    )
    return h.display("lineage", focus.label, body, cls="tauro-lineage")
