"""The one promotion path: virtual -> materialized (real Delta) -> online (real Redis), idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tauro_workbench import FeatureGroupSchema, FeatureSchema, Workbench
from tauro_workbench.exceptions import ConfigurationError, FeatureMaterializationError, SchemaValidationError
from tauro_workbench.stores.promotion import PromotionResult, definition_state
from tests.conftest import RedisServer

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TX = FeatureGroupSchema(
    "tx",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[
        FeatureSchema("amount", "DOUBLE", "NUMERICAL"),
        FeatureSchema("doubled", "DOUBLE", "NUMERICAL"),
    ],
)
SQL = "SELECT user_id, ts, amount, amount * 2 AS doubled FROM silver.tx"


def tx_rows(n: int, *, shift: float = 0.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [i % 50 for i in range(n)],
            "ts": [T0 + timedelta(minutes=i) for i in range(n)],
            "amount": [float(i % 17) + shift for i in range(n)],
        },
        schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    )


def latest(frame: pl.DataFrame) -> dict[int, float]:
    last = frame.sort("ts").unique(subset=["user_id"], keep="last")
    return dict(zip(last["user_id"].to_list(), last["amount"].to_list(), strict=True))


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server.url


def open_bench(root: Path, redis_url: str, **options: Any) -> Workbench:
    spark = options.pop("spark", None)
    return Workbench(
        {
            "storage_path": str(root),
            "online_store": {"type": "redis", "url": redis_url, "key_prefix": f"t{abs(hash(root))}"},
            **options,
        },
        spark=spark,
    )


def setup_group(bench: Workbench, source: Path, rows: pl.DataFrame) -> None:
    rows.write_parquet(source)
    bench.add_source("silver.tx", str(source))
    bench.register(TX)
    bench.define_virtual("tx", sql=SQL)


@pytest.fixture
def bench(tmp_path: Path, redis_url: str) -> Iterator[Workbench]:
    with open_bench(tmp_path / "repo", redis_url) as wb:
        setup_group(wb, tmp_path / "tx.parquet", tx_rows(300))
        yield wb


def test_virtual_to_materialized_to_online_with_delta_and_redis(bench: Workbench, tmp_path: Path) -> None:
    events: list[Any] = []
    bench.events.subscribe(events.append)
    step = bench.promote("tx")
    assert isinstance(step, PromotionResult) and step.changed and step.target == "materialized"
    assert (step.rows, step.table_version, step.drift_verdict) == (300, 1, "no_reference")
    uri = bench.materialized.table_uri("tx")
    stored = pl.from_arrow(DeltaTable(uri).to_pyarrow_table())
    assert isinstance(stored, pl.DataFrame) and stored.height == 300 and DeltaTable(uri).version() == 1
    assert stored.sort("ts")["doubled"].to_list() == [2 * (i % 17) for i in range(300)]
    record = bench.history("tx")[-1]
    assert record.details["promotion"] == definition_state(bench.virtual, TX)
    assert "drift" in record.details

    online = bench.promote("tx", to="online")
    assert online.changed and online.target == "online" and online.rows == 50 and online.table_version == 1
    want = latest(tx_rows(300))
    got = bench.get_online_features(["tx.amount"], entity_keys={"user_id": list(range(50))})
    assert isinstance(got, pl.DataFrame)
    assert dict(zip(got["user_id"].to_list(), got["amount"].to_list(), strict=True)) == want
    # the values really are in Redis: a fresh process-level client on the same server sees them
    with open_bench(tmp_path / "repo", bench.config.online_store.url or "") as other:
        assert other.get_online_features(["tx.amount"], entity_keys={"user_id": 7}) == {"amount": want[7]}

    kinds = [e.kind for e in events]
    assert kinds.count("features_written") == 1 and kinds.count("promoted") == 2


def test_promote_is_idempotent_and_says_so(bench: Workbench) -> None:
    bench.promote("tx", to="online")
    writes = len(bench.history("tx"))
    again = bench.promote("tx")
    assert not again.changed and again.rows == 0 and again.table_version == 1
    assert "nothing changed" in again.message and again.drift_verdict == "no_reference"
    online = bench.promote("tx", to="online")
    assert not online.changed and online.rows == 0 and "already up to date" in online.message
    assert len(bench.history("tx")) == writes
    assert DeltaTable(bench.materialized.table_uri("tx")).version() == 1


def test_a_changed_source_or_definition_is_promoted_again(bench: Workbench, tmp_path: Path) -> None:
    bench.promote("tx", to="online")
    tx_rows(300, shift=100.0).write_parquet(tmp_path / "tx.parquet")
    again = bench.promote("tx", to="online")
    assert again.changed and again.table_version == 2 and "Materialized 300 rows" in again.message
    table = bench.materialized.scan_group("tx").collect()
    assert table.height == 300 and table["amount"].min() == 100.0  # replaced, not appended
    assert bench.get_online_features(["amount"], entity_keys={"user_id": 3}) == {
        "amount": latest(tx_rows(300, shift=100.0))[3]
    }
    bench.define_virtual("tx", sql=SQL.replace("amount * 2", "amount * 3"))
    third = bench.promote("tx")
    assert third.changed and third.table_version == 3
    assert bench.promote("tx").changed is False


def test_the_old_store_methods_use_the_same_path(bench: Workbench) -> None:
    record = bench.virtual.materialize("tx", bench.materialized)
    assert record.rows == 300 and record.table_version == 1
    report = bench.materialized.promote("tx", to="online")
    assert report.entities == 50
    assert [e.kind for e in bench.events.history(group="tx")].count("promoted") == 1


def test_bad_promotions_are_typed_errors_and_write_nothing(bench: Workbench) -> None:
    with pytest.raises(ConfigurationError, match="valid targets"):
        bench.promote("tx", to="offline")  # type: ignore[arg-type]
    bench.register(FeatureGroupSchema("plain", entity_keys=["user_id"], features=[FeatureSchema("x", "INT")]))
    with pytest.raises(FeatureMaterializationError, match="neither virtual nor written"):
        bench.promote("plain")
    bench.write("plain", pl.DataFrame({"user_id": [1], "x": [2]}))
    stored = bench.promote("plain")
    assert not stored.changed and "stored data" in stored.message
    assert bench.history("tx") == []


def test_online_promotion_needs_an_online_store(tmp_path: Path) -> None:
    with Workbench({"storage_path": str(tmp_path / "r"), "enable_online_store": False}) as wb:
        setup_group(wb, tmp_path / "tx.parquet", tx_rows(10))
        with pytest.raises(ConfigurationError, match="online store is not enabled"):
            wb.promote("tx", to="online")
        assert wb.promote("tx").changed is False  # the materialized step ran before the error


def test_promote_with_spark_keeps_rows_off_the_driver(tmp_path: Path, redis_url: str, spark: Any) -> None:
    with open_bench(tmp_path / "repo", redis_url, spark=spark) as wb:
        assert wb.config.virtualized.executor_type == "spark"
        setup_group(wb, tmp_path / "tx.parquet", tx_rows(300))
        events: list[Any] = []
        wb.events.subscribe(events.append)
        step = wb.promote("tx", to="online")
        assert step.changed and step.rows == 50 and step.table_version == 1
        assert step.drift_verdict is None  # the rows were never on the driver to be profiled
        record = wb.history("tx")[-1]
        assert record.details["engine"] == "spark" and record.details["files"] >= 1
        assert record.rows == 300 and "promotion" in record.details
        commit = DeltaTable(wb.materialized.table_uri("tx")).history(1)[0]
        assert commit["tauro.write_id"] == record.details["write_id"] and commit["tauro.rows"] == "300"
        stored = wb.materialized.scan_group("tx").collect()
        assert stored.height == 300 and sorted(stored["doubled"].to_list()) == sorted(
            2 * (i % 17) for i in range(300)
        )
        assert wb.get_online_features(["amount"], entity_keys={"user_id": 9}) == {
            "amount": latest(tx_rows(300))[9]
        }
        assert [e.kind for e in events].count("features_written") == 1
        again = wb.promote("tx", to="online")
        assert not again.changed and again.rows == 0
        tx_rows(300, shift=5.0).write_parquet(tmp_path / "tx.parquet")
        third = wb.promote("tx")
        assert third.changed and third.table_version == 2
        assert wb.materialized.scan_group("tx").collect()["amount"].min() == 5.0


def test_spark_promotion_refuses_times_out_of_range_and_writes_nothing(
    tmp_path: Path, redis_url: str, spark: Any
) -> None:
    with open_bench(tmp_path / "repo", redis_url, spark=spark) as wb:
        rows = tx_rows(20).with_columns(
            ts=pl.when(pl.col("user_id") == 3).then(datetime(2500, 1, 1, tzinfo=UTC)).otherwise(pl.col("ts"))
        )
        setup_group(wb, tmp_path / "tx.parquet", rows)
        with pytest.raises(
            SchemaValidationError, match=r"column 'ts' has 1 value\(s\) outside the supported range"
        ):
            wb.promote("tx")
        assert not DeltaTable.is_deltatable(wb.materialized.table_uri("tx"))
        assert not list((tmp_path / "repo").rglob("*.parquet"))  # no file left behind either
        assert wb.history("tx") == []


def test_engines_never_import_stores_or_monitoring() -> None:
    import ast

    import tauro_workbench.engines as engines

    for path in Path(engines.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        bad = [m for m in imported if m.startswith(("tauro_workbench.stores", "tauro_workbench.monitoring"))]
        assert bad == [], f"{path.name} imports {bad}"


def test_executors_come_from_one_factory_and_declare_capabilities(spark: Any) -> None:
    from tauro_workbench.config import FeatureStoreConfig
    from tauro_workbench.engines import DISTRIBUTED_PIT, WRITE_FILES, create_executor, has_capability

    duck = create_executor(FeatureStoreConfig())
    assert duck.name == "duckdb" and not has_capability(duck, WRITE_FILES)
    on_spark = create_executor(FeatureStoreConfig(virtualized={"executor_type": "spark"}), spark=spark)
    assert (
        on_spark.name == "spark"
        and has_capability(on_spark, WRITE_FILES)
        and has_capability(on_spark, DISTRIBUTED_PIT)
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(["grow", "rewrite"]),
                st.lists(st.tuples(st.integers(0, 4), st.integers(-9, 9)), min_size=1, max_size=6),
            ),
            st.tuples(st.sampled_from(["materialized", "online"]), st.just([])),
        ),
        min_size=1,
        max_size=7,
    )
)
def test_promotion_sequences_match_the_source(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Any]
) -> None:
    """A source that grows or is rewritten (entities dropped, times moving back), promoted at random
    points: the table always holds the source's rows, the online store exactly their latest row per
    entity, and a promotion with nothing new changes nothing."""
    root = tmp_path_factory.mktemp("seq")
    source = root / "tx.parquet"
    rows = pl.DataFrame({"user_id": [0], "ts": [T0], "amount": [0.0]}, schema=tx_rows(0).schema)
    with Workbench({"storage_path": str(root / "repo"), "drift": {"enabled": False}}) as wb:
        setup_group(wb, source, rows)
        clock, pending, online_pending = 1, True, True
        for kind, new in ops:
            if kind in ("grow", "rewrite"):
                if kind == "rewrite":
                    rows, clock = rows.clear(), 1 + len(new) % 3  # times restart: the rows may be older
                added = pl.DataFrame(
                    {
                        "user_id": [u for u, _ in new],
                        "ts": [T0 + timedelta(minutes=clock + i) for i in range(len(new))],
                        "amount": [float(v) for _, v in new],
                    },
                    schema=rows.schema,
                )
                clock += len(new)
                rows = pl.concat([rows, added])
                rows.write_parquet(source)
                pending = online_pending = True
                continue
            result = wb.promote("tx", to=kind)
            assert result.changed == (pending or (kind == "online" and online_pending))
            pending = False
            stored = wb.materialized.scan_group("tx").collect().select(rows.columns).sort("ts")
            assert stored.equals(rows.sort("ts"))
            if kind == "online":
                online_pending = False
                got = wb.get_online_features(["tx.amount"], entity_keys={"user_id": list(range(5))})
                assert isinstance(got, pl.DataFrame)
                online = dict(zip(got["user_id"].to_list(), got["amount"].to_list(), strict=True))
                assert {u: a for u, a in online.items() if a is not None} == latest(rows)
