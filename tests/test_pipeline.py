"""Pipelines: Tauro-style nodes from Python or YAML, run in dependency order against a real repo."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st

from tauro_workbench.exceptions import ConfigurationError, PipelineError, SpecError
from tauro_workbench.pipeline import (
    FeatureStoreExecutorAdapter,
    PipelineSpec,
    frame_digest,
    load_pipeline,
    python_node,
    read_features_node,
    refresh_features_node,
    run_pipeline,
    sql_node,
    write_features_node,
)
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tauro_workbench.workbench import Workbench

SILVER = Path(__file__).resolve().parents[1] / "sample_data" / "silver"
PLAN = FeatureGroupSchema(
    name="user_plan",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("plan", "STRING"), FeatureSchema("score", "DOUBLE")],
)


@pytest.fixture
def wb(tmp_path: Path) -> Iterator[Workbench]:
    with Workbench(tmp_path / "repo") as workbench:
        workbench.add_source("silver.users", str(SILVER / "users.parquet"))
        workbench.register(PLAN)
        yield workbench


def plan_rows(sql_filter: str = "user_id <= 20") -> str:
    return (
        "SELECT user_id, updated_at AS ts, plan, CAST(user_id AS DOUBLE) / 3 AS score "
        f"FROM silver.users WHERE {sql_filter}"
    )


def pipeline(*nodes: object, name: str = "daily") -> dict[str, object]:
    return {"name": name, "nodes": list(nodes)}


def write_count(wb: Workbench, group: str = "user_plan") -> int:
    return len(wb.history(group))


def test_nodes_run_in_dependency_order_and_feed_each_other(wb: Workbench) -> None:
    seen: list[str] = []
    spec = pipeline(
        # declared out of order on purpose: the runner orders by inputs and dependencies
        read_features_node(
            "latest", feature_names=["user_plan.plan"], entity_ids_source="ids", dependencies=["write"]
        ),
        write_features_node("write", feature_group="user_plan", input_source="doubled", mode="append"),
        python_node(
            "doubled",
            lambda df, factor: df.with_columns(pl.col("score") * factor),
            inputs=["rows"],
            params={"factor": 2.0},
        ),
        sql_node("rows", plan_rows()),
        sql_node(
            "ids", "SELECT user_id FROM rows WHERE user_id IN (1, 2, 99) ORDER BY user_id", inputs=["rows"]
        ),
    )
    run = run_pipeline(wb, spec, on_node=lambda n: seen.append(n.name))
    assert seen == [n.name for n in run.nodes] == ["rows", "doubled", "write", "ids", "latest"]
    assert all(n.status == "ok" for n in run.nodes)
    latest = run.frame("latest")
    assert latest["user_id"].to_list() == [1, 2] and latest["plan"].null_count() == 0
    stored = wb.materialized.scan_group("user_plan").collect().sort("user_id")
    assert stored.height == 20
    assert stored.filter(pl.col("user_id") == 3)["score"].item() == pytest.approx(2.0)
    assert run.output("write").rows == 20 and "wrote 20 rows" in run.nodes[2].detail


def test_rerun_does_not_repeat_writes_but_new_data_is_written(wb: Workbench) -> None:
    spec = pipeline(
        sql_node("rows", plan_rows()),
        write_features_node("w", feature_group="user_plan", input_source="rows"),
    )
    run_pipeline(wb, spec)
    table = DeltaTable(wb.materialized.table_uri("user_plan"))
    version = table.version()
    second = run_pipeline(wb, spec)
    assert "already written" in second.nodes[1].detail
    assert write_count(wb) == 1 and DeltaTable(wb.materialized.table_uri("user_plan")).version() == version
    assert wb.materialized.scan_group("user_plan").collect().height == 20
    grown = pipeline(
        sql_node("rows", plan_rows("user_id <= 25")),
        write_features_node("w", feature_group="user_plan", input_source="rows"),
    )
    run_pipeline(wb, grown)
    assert write_count(wb) == 2


def test_first_failure_stops_the_run_and_names_the_node(wb: Workbench) -> None:
    def explode(df: pl.DataFrame) -> pl.DataFrame:
        raise RuntimeError("bad input batch")

    seen: list[tuple[str, str]] = []
    spec = pipeline(
        sql_node("rows", plan_rows()),
        python_node("transform", explode, inputs=["rows"]),
        write_features_node("w", feature_group="user_plan", input_source="transform"),
    )
    with pytest.raises(PipelineError) as info:
        run_pipeline(wb, spec, on_node=lambda n: seen.append((n.name, n.status)))
    err = info.value
    assert (err.pipeline, err.node, err.completed) == ("daily", "transform", ["rows"])
    assert "node 'transform'" in str(err) and "RuntimeError: bad input batch" in str(err)
    assert seen == [("rows", "ok"), ("transform", "failed")]
    assert write_count(wb) == 0  # the write after the failure did not run


def test_a_failing_write_names_the_node_and_writes_nothing(wb: Workbench) -> None:
    spec = pipeline(
        sql_node(
            "rows", "SELECT user_id, updated_at AS ts, plan FROM silver.users"
        ),  # no score: fine (nullable)
        sql_node("bad", "SELECT user_id, NULL::TIMESTAMPTZ AS ts, plan, 1.0 AS score FROM silver.users"),
        write_features_node("w_bad", feature_group="user_plan", input_source="bad"),
    )
    with pytest.raises(PipelineError) as info:
        run_pipeline(wb, spec)
    assert info.value.node == "w_bad" and "ts" in str(info.value)
    assert write_count(wb) == 0


def test_sql_errors_are_node_failures(wb: Workbench) -> None:
    with pytest.raises(PipelineError) as info:
        run_pipeline(wb, pipeline(sql_node("q", "SELECT nope FROM silver.users")))
    assert info.value.node == "q" and "nope" in str(info.value)


def test_refresh_and_online_write_publish_online(wb: Workbench) -> None:
    spec = pipeline(
        sql_node("rows", plan_rows()),
        write_features_node("w", feature_group="user_plan", input_source="rows", feature_store="online"),
        refresh_features_node("publish", feature_group="user_plan", to="online", dependencies=["w"]),
    )
    run = run_pipeline(wb, spec)
    assert "online" in run.nodes[1].detail
    assert run.output("publish").changed is False  # the online write already published it
    assert wb.get_online_features(["user_plan.plan"], entity_keys={"user_id": 1})["plan"] is not None


def test_historical_read_and_backfill_nodes(wb: Workbench) -> None:
    run_pipeline(
        wb,
        pipeline(
            sql_node("rows", plan_rows()),
            write_features_node("w", feature_group="user_plan", input_source="rows"),
        ),
    )
    labels_sql = "SELECT user_id, TIMESTAMPTZ '2030-01-01 00:00:00+00' AS event_timestamp FROM silver.users WHERE user_id <= 3"
    run = run_pipeline(
        wb,
        pipeline(
            sql_node("labels", labels_sql),
            read_features_node(
                "training", feature_names=["user_plan.plan"], entity_ids_source="labels", historical=True
            ),
            name="train",
        ),
    )
    assert run.frame("training").columns == ["user_id", "event_timestamp", "plan"]
    assert run.frame("training")["plan"].null_count() == 0
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    backfill = pipeline(
        sql_node("rows", plan_rows("user_id <= 5")),
        write_features_node(
            "bf", feature_group="user_plan", input_source="rows", backfill={"start": start, "end": end}
        ),
        name="bf",
    )
    run_pipeline(wb, backfill)
    assert wb.materialized.scan_group("user_plan").collect().height == 5  # the window was replaced
    assert wb.history("user_plan")[-1].mode == "backfill"


def test_adapter_tauro_verbs(wb: Workbench) -> None:
    adapter = FeatureStoreExecutorAdapter(wb, pipeline="manual")
    adapter.execution_outputs["users"] = wb.virtual.executor.execute(plan_rows()).collect()
    record = adapter.write_features_from_output("user_plan", "users")
    assert record.rows == 20 and adapter.write_features_from_output("user_plan", "users").id == record.id
    frame = adapter.read_features_as_input("feats", ["user_plan.plan"], entity_ids={"user_id": [1, 2]})
    assert adapter.feature_store_inputs["feats"] is frame and frame.height == 2
    via_store = adapter.read_features_as_input(
        "m", ["user_plan.plan"], entity_ids={"user_id": [1]}, store="materialized"
    )
    assert via_store["plan"].to_list() == frame["plan"].to_list()[:1]
    with pytest.raises(ConfigurationError, match="output 'missing' was not produced"):
        adapter.write_features_from_output("user_plan", "missing")


def test_adapter_from_a_tauro_context(tmp_path: Path) -> None:
    class Context:
        def __init__(self) -> None:
            self.feature_store_path = str(tmp_path / "ctx_repo")
            self.feature_store_config = {"mode": "materialized"}

    adapter = FeatureStoreExecutorAdapter(Context())
    try:
        assert adapter.workbench.path == tmp_path / "ctx_repo"
        assert adapter.workbench.config.mode.value == "materialized"
    finally:
        adapter.workbench.close()


def test_python_functions_by_reference(wb: Workbench, tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text(
        "import polars as pl\n\ndef tag(df, label='x'):\n    return df.with_columns(pl.lit(label).alias('label'))\n"
    )
    spec = PipelineSpec(
        name="refs",
        base_dir=str(tmp_path),
        nodes=[
            sql_node("rows", plan_rows()),
            python_node("by_file", "steps.py:tag", inputs=["rows"], params={"label": "y"}),
            python_node("by_module", "polars:DataFrame", inputs=["rows"]),
        ],
    )
    run = run_pipeline(wb, spec)
    assert run.frame("by_file")["label"].unique().to_list() == ["y"]
    assert run.frame("by_module").height == 20
    bad = spec.model_copy(update={"nodes": [python_node("x", "steps.py:nope")]})
    with pytest.raises(PipelineError, match="has no function 'nope'"):
        run_pipeline(wb, bad)
    with pytest.raises(PipelineError, match="cannot import 'no_such_module_xyz'"):
        run_pipeline(wb, {"nodes": [python_node("x", "no_such_module_xyz:f")]})


@pytest.mark.parametrize(
    ("nodes", "needle"),
    [
        ([sql_node("a", "SELECT 1"), sql_node("a", "SELECT 2")], "the name is used twice"),
        ([sql_node("a", "SELECT 1", inputs=["b"])], "unknown node 'b'"),
        ([sql_node("a", "SELECT 1", dependencies=["a"])], "depends on itself"),
        (
            [sql_node("a", "SELECT 1", dependencies=["b"]), sql_node("b", "SELECT 1", dependencies=["a"])],
            "dependency cycle: a -> b -> a",
        ),
    ],
)
def test_bad_graphs_are_rejected_before_running(nodes: list[object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        PipelineSpec(nodes=nodes)


def test_node_options_are_validated() -> None:
    with pytest.raises(ValueError, match="exactly one input"):
        write_features_node("w", feature_group="g", input_source="a", inputs=["b"])
    with pytest.raises(ValueError, match="exactly one of 'feature_names' or 'view'"):
        read_features_node("r")
    with pytest.raises(ValueError, match="not a valid name"):
        sql_node("bad-name", "SELECT 1")
    with pytest.raises(ValueError, match=r"'package\.module:function'"):
        python_node("p", "no_colon")


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "line", "key", "needle"),
    [
        (
            "name: p\nnodes:\n  - name: a\n    type: sql\n    sql: SELECT 1\n    colour: red\n",
            6,
            "nodes[0].colour",
            "unknown key",
        ),
        ("name: p\nnodes:\n  - name: a\n    type: sqlx\n", 4, "nodes[0].type", "'type' must be one of"),
        ("name: p\nnodes:\n  - name: a\n    type: sql\n", 3, "nodes[0].sql", "required key is missing"),
        (
            "name: p\nnodes:\n  - {name: a, type: sql, sql: SELECT 1}\n  - name: b\n    type: sql\n    sql: SELECT 1\n    inputs: [zz]\n",
            7,
            "nodes[1].inputs",
            "unknown node 'zz'",
        ),
        ("name: p\nnodes: []\n", 2, "nodes", "non-empty list"),
        (
            "name: p\nnodes:\n  - {name: w, type: write_features, feature_group: g, mode: upsert, input_source: a}\n",
            3,
            "nodes[0].mode",
            "Input should be",
        ),
        ("name: p\nstages: []\n", 2, "stages", "unknown key"),
    ],
)
def test_pipeline_yaml_errors_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, needle: str
) -> None:
    file = write_yaml(tmp_path / "p.yaml", text)
    with pytest.raises(SpecError) as info:
        load_pipeline(file)
    assert (info.value.file, info.value.line, info.value.key) == (str(file), line, key)
    assert needle in str(info.value)


def test_sample_pipeline_loads_with_tauro_shapes() -> None:
    spec = load_pipeline(Path(__file__).resolve().parents[1] / "sample_data" / "repo" / "pipeline.yaml")
    assert spec.name == "daily_features"
    kinds = {n.type for n in spec.nodes}
    assert kinds == {"sql", "python", "write_features", "refresh_features", "read_features"}
    order = [n.name for n in spec.order()]
    assert (
        order.index("materialize_user_features")
        < order.index("publish_user_features")
        < order.index("latest_features")
    )
    # a node dict and the object a node function returns have the same shape
    node = spec.node("materialize_user_features")
    assert node == write_features_node(
        "materialize_user_features",
        feature_group="user_features",
        input_source="user_profiles",
        mode="overwrite",
    )


frames = st.lists(
    st.tuples(st.integers(-5, 5), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from(["a", "b", None])),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows=frames, seed=st.integers(0, 1000))
def test_digest_ignores_row_order_and_sees_every_value(
    rows: list[tuple[int, float, str | None]], seed: int
) -> None:
    frame = pl.DataFrame(rows, schema={"k": pl.Int64, "x": pl.Float64, "s": pl.String}, orient="row")
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    assert frame_digest(frame) == frame_digest(shuffled)
    changed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("k") + 100).otherwise(pl.col("k")).alias("k")
    )
    assert frame_digest(changed) != frame_digest(frame)
    assert frame_digest(frame.head(frame.height - 1)) != frame_digest(frame) or frame.height == 0


def test_the_tauro_readme_pipeline_with_inputs_from_the_context(wb: Workbench) -> None:
    """The pipeline of the Tauro design's README, fed with frames produced elsewhere."""
    process_user_data = wb.virtual.executor.execute(plan_rows()).collect()
    load_entity_ids = pl.DataFrame({"user_id": [3, 1]})
    pipeline = {
        "nodes": [
            write_features_node(
                name="materialize_user_features",
                feature_store="materialized",
                feature_group="user_plan",
                input_source="process_user_data",
            ),
            read_features_node(
                name="fetch_training_features",
                feature_store="materialized",
                feature_names=["plan", "score"],
                entity_ids_source="load_entity_ids",
                dependencies=["materialize_user_features"],
            ),
        ]
    }
    inputs = {"process_user_data": process_user_data, "load_entity_ids": load_entity_ids}
    run = run_pipeline(wb, pipeline, inputs=inputs)
    fetched = run.frame("fetch_training_features")
    assert fetched["user_id"].to_list() == [3, 1] and fetched["score"].to_list() == pytest.approx(
        [1.0, 1 / 3]
    )
    assert "process_user_data" not in run.outputs
    with pytest.raises(SpecError, match="unknown node 'process_user_data'"):
        run_pipeline(wb, pipeline)


def test_declared_inputs_in_yaml(wb: Workbench, tmp_path: Path) -> None:
    file = write_yaml(
        tmp_path / "p.yaml",
        "name: scored\ninputs: [ids]\nnodes:\n"
        "  - {name: read, type: read_features, feature_names: [user_plan.plan], entity_ids_source: ids}\n",
    )
    spec = load_pipeline(file)
    assert spec.inputs == ["ids"]
    with pytest.raises(SpecError, match=r"inputs \['ids'\] are declared but not given"):
        run_pipeline(wb, spec)
    run = run_pipeline(wb, spec, inputs={"ids": pl.DataFrame({"user_id": [1]})})
    assert run.frame("read").height == 1
    clash = write_yaml(tmp_path / "c.yaml", "inputs: [a]\nnodes:\n  - {name: a, type: sql, sql: SELECT 1}\n")
    with pytest.raises(SpecError, match="also a pipeline input"):
        load_pipeline(clash)


def test_pipeline_names_fit_write_ids(wb: Workbench, tmp_path: Path) -> None:
    file = write_yaml(
        tmp_path / "p.yaml", "name: daily features!\nnodes:\n  - {name: a, type: sql, sql: SELECT 1}\n"
    )
    with pytest.raises(SpecError) as info:
        load_pipeline(file)
    assert (info.value.line, info.value.key) == (1, "name")
    unnamed = write_yaml(tmp_path / "my pipeline.yaml", "nodes:\n  - {name: a, type: sql, sql: SELECT 1}\n")
    assert load_pipeline(unnamed).name == "my_pipeline"
    long_node = "w" * 120
    spec = pipeline(
        sql_node("rows", plan_rows()),
        write_features_node(long_node, feature_group="user_plan", input_source="rows"),
    )
    run_pipeline(wb, spec)
    run_pipeline(wb, spec)
    assert write_count(wb) == 1
    write_id = wb.history("user_plan")[0].details["write_id"]
    assert len(write_id) <= 128 and write_id.startswith("daily:")
