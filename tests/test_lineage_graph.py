"""LineageGraph: built from the registry, depth-limited, laid out in layers, exported offline."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tauro_workbench.exceptions import FeatureGroupNotFoundError
from tauro_workbench.lineage_graph import LineageEdge, LineageGraph, LineageNode
from tauro_workbench.registry import FeatureStoreMetadata
from tests import display_objects as objects

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def metadata() -> FeatureStoreMetadata:
    return objects.registry()


def test_virtual_group_lineage_runs_source_sql_features_group(metadata: FeatureStoreMetadata) -> None:
    graph = LineageGraph.from_registry(metadata, "user_purchases_daily")
    ids = {n.id for n in graph.nodes}
    assert {
        "source:silver.purchases",
        "sql:user_purchases_daily",
        "feature:user_purchases_daily.purchase_count",
        "group:user_purchases_daily",
        "view:churn",
    } <= ids
    assert graph.upstream_of("sql:user_purchases_daily") == ["source:silver.purchases"]
    assert set(graph.downstream_of("sql:user_purchases_daily")) >= {
        "feature:user_purchases_daily.purchase_count",
        "feature:user_purchases_daily.purchase_amount",
    }
    # the source feeds the SQL, never the features directly
    assert not [
        e
        for e in graph.edges
        if e.upstream == "source:silver.purchases" and e.downstream.startswith("feature:")
    ]
    layers = graph.layers()
    assert (
        layers["source:silver.purchases"]
        < layers["sql:user_purchases_daily"]
        < layers["group:user_purchases_daily"]
    )


def test_materialized_writes_are_lineage_too(metadata: FeatureStoreMetadata) -> None:
    graph = LineageGraph.from_registry(metadata, "user_purchases_daily")
    write = graph.node("write:user_purchases_daily#3")
    assert write.detail == "promote 31,439 rows"
    assert graph.upstream_of(write.id) == ["sql:user_purchases_daily"]  # the promotion ran the SQL
    users = LineageGraph.from_registry(metadata, "user_features")
    writes = [n for n in users.nodes if n.kind == "write"]
    assert [n.detail for n in writes] == ["overwrite 2,000 rows", "append 50 rows"]
    assert users.downstream_of("group:user_features") == ["online:user_features", "view:churn"]


def test_depth_limits_hops_each_way(metadata: FeatureStoreMetadata) -> None:
    near = LineageGraph.from_registry(metadata, "user_purchases_daily", upstream=1, downstream=0)
    assert {n.kind for n in near.nodes} == {"feature", "group", "write"}
    assert all(-1 <= d <= 0 for d in near.depth.values())
    from_source = LineageGraph.from_registry(metadata, "silver.users", upstream=0, downstream=2)
    assert {n.kind for n in from_source.nodes} == {"source", "feature", "group"}
    assert max(from_source.depth.values()) == 2
    feature = LineageGraph.from_registry(metadata, "user_features.age", upstream=5, downstream=5)
    assert feature.focus == "feature:user_features.age"
    assert "online:user_features" in {n.id for n in feature.nodes}


def test_unknown_name_raises_with_the_groups_listed(metadata: FeatureStoreMetadata) -> None:
    with pytest.raises(FeatureGroupNotFoundError, match=r"user_features, user_purchases_daily"):
        LineageGraph.from_registry(metadata, "nope")


def test_svg_is_standalone_well_formed_and_matches_its_golden(metadata: FeatureStoreMetadata) -> None:
    graph = LineageGraph.from_registry(metadata, "user_purchases_daily")
    svg = graph.to_svg()
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    groups = root.findall(f".//{SVG_NS}g")
    assert len(groups) == len(graph.nodes)
    assert len(root.findall(f".//{SVG_NS}path[@class='tauro-edge']")) == len(graph.edges)
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    objects.assert_golden("lineage/user_purchases_daily.svg", svg)
    objects.assert_golden("lineage/user_purchases_daily.txt", graph.to_text())


def test_nodes_do_not_overlap(metadata: FeatureStoreMetadata) -> None:
    root = ET.fromstring(
        LineageGraph.from_registry(metadata, "user_features", upstream=5, downstream=5).to_svg()
    )
    boxes = [
        (float(r.get("x", 0)), float(r.get("y", 0)), float(r.get("width", 0)), float(r.get("height", 0)))
        for g in root.findall(f".//{SVG_NS}g")
        for r in g.findall(f"{SVG_NS}rect")
    ]
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_exports_dict_text_png_and_html(metadata: FeatureStoreMetadata) -> None:
    graph = LineageGraph.from_registry(metadata, "user_features")
    data = graph.to_dict()
    assert data["focus"] == "group:user_features" and len(data["nodes"]) == len(graph.nodes)
    assert {"id", "kind", "label", "layer", "depth"} <= set(data["nodes"][0])
    assert "silver.users [source] -> user_features.age [feature]" in graph.to_text()
    assert graph.to_png().startswith(b"\x89PNG\r\n\x1a\n")
    page = graph._repr_html_()
    assert "tauro-lineage" in page and "<svg" in page
    assert graph._mime_() == ("text/html", page)
    assert "LineageGraph(focus='group:user_features'" in repr(graph)


def test_an_empty_or_broken_graph_displays_without_raising() -> None:
    lone = LineageGraph.around([LineageNode("group:g", "group", "g")], [], "group:g")
    assert "<svg" in lone.to_svg() and lone.to_text().startswith("lineage of g")
    broken = LineageGraph("group:missing", (), ())
    assert broken._repr_html_().startswith("<pre>") and "LineageGraph" in repr(broken)
    escaped = LineageGraph.around([LineageNode("node:<x>", "node", "<x>&")], [], "node:<x>")
    assert "<x>" not in escaped.to_svg() and "&lt;x&gt;&amp;" in escaped.to_svg()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=20),
    st.integers(0, 3),
    st.integers(0, 3),
)
def test_depth_matches_a_brute_force_walk(pairs: list[tuple[int, int]], up: int, down: int) -> None:
    edges = {(f"n:{a}", f"n:{b}") for a, b in pairs if a < b}  # acyclic by construction
    nodes = [LineageNode(f"n:{i}", "node", str(i)) for i in range(8)]
    graph = LineageGraph.around(
        nodes, [LineageEdge(a, b) for a, b in edges], "n:3", upstream=up, downstream=down
    )

    def reach(start: str, hops: int, forward: bool) -> set[str]:
        seen, frontier = {start}, {start}
        for _ in range(hops):
            frontier = {b if forward else a for a, b in edges if (a if forward else b) in frontier} - seen
            seen |= frontier
        return seen

    assert {n.id for n in graph.nodes} == reach("n:3", up, False) | reach("n:3", down, True)
    layers = graph.layers()
    for e in graph.edges:
        assert layers[e.upstream] < layers[e.downstream]
