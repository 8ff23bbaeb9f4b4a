"""The Workbench: opening repos, the verbs end to end on a fresh repo, and mixed-group reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tauro_workbench import (
    FeatureGroupSchema,
    FeatureSchema,
    FeatureView,
    PromotionResult,
    RepositoryNotFoundError,
    TrainingSet,
    Workbench,
)
from tauro_workbench.config import DEFAULT_REPO, FeatureStoreConfig
from tauro_workbench.engines.pit import PointInTimeSpec
from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureGroupNotFoundError,
    FeatureNotFoundError,
    SchemaValidationError,
)
from tauro_workbench.workbench import Preview
from tests.pit_oracle import oracle_point_in_time

T0 = datetime(2024, 1, 1, tzinfo=UTC)
QUIET = {"drift": {"enabled": False}}

PROFILE = FeatureGroupSchema(
    "profile",
    entity_keys=["user_id"],
    timestamp_key="ts",
    features=[FeatureSchema("age", "INT", "NUMERICAL"), FeatureSchema("city", "STRING", "CATEGORICAL")],
)
SPEND = FeatureGroupSchema(
    "spend",
    entity_keys=["user_id"],
    timestamp_key="ts",
    ttl="2d",
    features=[FeatureSchema("amount", "DOUBLE", "NUMERICAL")],
)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture
def wb(tmp_path: Path) -> Iterator[Workbench]:
    with Workbench({"storage_path": str(tmp_path / "repo"), **QUIET}) as bench:
        yield bench


def _spend_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "ts": [hours(0), hours(30), hours(5), hours(1)],
            "amount": [1.0, 2.0, 3.0, 4.0],
        },
        schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    )


def _profile_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 2, 2],
            "ts": [hours(0), hours(0), hours(10)],
            "age": [30, 40, 41],
            "city": ["a", "b", "c"],
        },
        schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "age": pl.Int32, "city": pl.String},
    )


def _setup_mixed(bench: Workbench, spend: pl.DataFrame, profile: pl.DataFrame) -> None:
    """profile: written (materialized); spend: virtual over a source."""
    bench.register(PROFILE)
    bench.write("profile", profile)
    bench.add_source("silver.spend", spend)
    bench.register(SPEND)
    bench.define_virtual("spend", sql="SELECT user_id, ts, amount FROM silver.spend")


# -- opening repos ---------------------------------------------------------------------------
def test_default_repo_is_feature_repo_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAURO_FS_STORAGE_PATH", raising=False)
    assert DEFAULT_REPO == "./feature_repo" and FeatureStoreConfig().storage_path == DEFAULT_REPO
    with Workbench() as bench:
        assert bench.path == Path(DEFAULT_REPO)
        assert bench.config.mode.value == "hybrid" and bench.config.enable_online_store
        assert bench.config.virtualized.executor_type == "duckdb" and bench.config.offline_format == "delta"
    assert (tmp_path / "feature_repo" / "registry.db").is_file()
    with Workbench.open() as again:  # now there is a repo to open read-only
        assert again.groups() == []


def test_the_folder_named_wins_over_the_storage_path_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAURO_FS_STORAGE_PATH", str(tmp_path / "from_env"))
    monkeypatch.setenv("TAURO_FS_MODE", "materialized")
    with Workbench(tmp_path / "named") as bench:
        assert bench.path == tmp_path / "named" and bench.config.mode.value == "materialized"
    assert (tmp_path / "named" / "registry.db").is_file() and not (tmp_path / "from_env").exists()


def test_read_only_open_of_a_missing_repo_fails_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "nothing_here"
    with pytest.raises(RepositoryNotFoundError, match="nothing_here") as info:
        Workbench.open(target)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(RepositoryNotFoundError):
        Workbench(target, create=False)
    assert not target.exists()


def test_a_repo_folder_reads_its_tauro_yaml(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tauro.yaml").write_text(
        "mode: materialized\nstorage_path: /elsewhere\ndrift:\n  enabled: false\n"
    )
    with Workbench(repo) as bench:
        assert bench.config.mode.value == "materialized" and not bench.config.drift.enabled
        assert bench.path == repo  # the folder opened wins over the file's storage_path
        assert bench.store is bench.materialized
        assert bench.config.enable_online_store  # the embedded default stays


def test_from_config_reads_a_tauro_global_yaml(tmp_path: Path) -> None:
    file = tmp_path / "global.yaml"
    file.write_text(f"feature_store:\n  storage_path: {tmp_path / 'r'}\n  mode: virtualized\n")
    with Workbench.from_config(file) as bench:
        assert bench.path == tmp_path / "r" and bench.store is bench.virtual
    with pytest.raises(ConfigurationError, match="does not exist"):
        Workbench.from_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigurationError, match="repo path"):
        Workbench(42)  # type: ignore[arg-type]


# -- the tour on a fresh repo ----------------------------------------------------------------
def test_end_to_end_on_a_fresh_repo(tmp_path: Path) -> None:
    source = tmp_path / "tx.parquet"
    _spend_rows().write_parquet(source)
    with Workbench(tmp_path / "fresh") as bench:
        assert bench.health_check()
        bench.add_source("silver.tx", str(source))
        assert [s.name for s in bench.sources()] == ["silver.tx"]
        schema = bench.infer_schema(str(source), "spend", ["user_id"], "ts", description="spend")
        assert [(f.name, f.data_type.value, f.feature_type.value) for f in schema.features] == [  # type: ignore[union-attr]
            ("amount", "DOUBLE", "NUMERICAL")
        ]
        bench.register(schema)
        bench.define_virtual("spend", sql="SELECT user_id, ts, amount FROM silver.tx")

        preview = bench.preview("spend", limit=2)
        assert isinstance(preview, Preview) and preview.route == "virtual" and preview.frame.height == 2
        assert preview.sql is not None and "silver.tx" in preview.sql and preview.engine == "duckdb"

        result = bench.promote("spend", to="online")
        assert isinstance(result, PromotionResult) and result.changed and result.rows == 3
        assert bench.preview("spend").route == "materialized" and bench.preview("spend").sql is None
        assert bench.get_online_features(["spend.amount"], entity_keys={"user_id": 1}) == {"amount": 2.0}
        latest = bench.get_features(["amount"], entity_ids={"user_id": [2, 1]}, point_in_time=hours(31))
        assert latest.collect().to_dict(as_series=False) == {"user_id": [2, 1], "amount": [3.0, 2.0]}

        labels = pl.DataFrame({"user_id": [1, 3, 2], "t": [hours(1), hours(100), hours(6)]})
        view = bench.feature_view("training", ["amount"])
        ts = bench.training_set(labels, view)
        assert isinstance(ts, TrainingSet) and ts.features == ("spend.amount",)
        assert ts.frame["amount"].to_list() == [1.0, 4.0, 3.0]
        assert ts.match_rate == {"spend": 1.0} and ts.table_versions == {"spend": 1}
        early = bench.training_set(labels.with_columns(t=pl.lit(hours(0.5))), view)
        assert early.match_rate == {"spend": pytest.approx(1 / 3)}

        listing = bench.features()
        assert listing.columns == ["group", "version", "feature", "data_type", "feature_type", "description"]
        assert listing.row(0) == ("spend", 1, "amount", "DOUBLE", "NUMERICAL", "")
        assert [g.name for g in bench.groups()] == ["spend"] and bench.get_group("spend").version == 1
        assert [r.mode for r in bench.history("spend")] == ["append"] == [r.mode for r in bench.history()]
        report = bench.drift("spend")
        assert (
            report is not None and report.verdict == "no_reference" and result.drift_verdict == "no_reference"
        )
        graph = bench.lineage("spend")
        assert "silver.tx" in graph.to_text()
        route: Any = bench.explain(["spend.amount"])
        assert route.target in ("materialized", "virtual", "online")
    with Workbench.open(tmp_path / "fresh") as reopened:  # everything was persisted
        assert reopened.feature_view("training").features == ("spend.amount",)
        assert reopened.promote("spend").changed is False


def test_writes_and_backfill_go_to_the_offline_table(wb: Workbench) -> None:
    wb.register(PROFILE)
    first = wb.write("profile", _profile_rows())
    assert first.rows == 3 and first.table_version == 1
    replaced = wb.backfill(
        "profile",
        _profile_rows().with_columns(pl.col("age") + 1),
        start=hours(0),
        end=hours(1),
    )
    assert replaced.mode == "backfill"
    ages = wb.get_features(["age"], entity_ids={"user_id": [1]}).collect()["age"].to_list()
    assert ages == [31]
    with pytest.raises(FeatureGroupNotFoundError):
        wb.write("nope", _profile_rows())


def test_write_id_makes_a_write_idempotent(wb: Workbench) -> None:
    wb.register(PROFILE)
    wb.write("profile", _profile_rows(), write_id="batch-1")
    wb.write("profile", _profile_rows(), write_id="batch-1")
    assert wb.materialized.scan_group("profile").collect().height == 3


def test_define_virtual_takes_exactly_one_form(wb: Workbench) -> None:
    wb.register(SPEND)
    with pytest.raises(ConfigurationError, match="exactly one"):
        wb.define_virtual("spend")
    with pytest.raises(ConfigurationError, match="exactly one"):
        wb.define_virtual("spend", sql="SELECT 1", queries={"amount": "SELECT 1"})


# -- feature views and schema inference ------------------------------------------------------
def test_feature_views_are_versioned_and_saving_the_same_list_is_a_no_op(wb: Workbench) -> None:
    wb.register(PROFILE)
    wb.register(SPEND)
    first = wb.feature_view("churn", ["profile.age", "spend.amount"], description="churn model")
    assert isinstance(first, FeatureView) and first.version == 1
    assert first.features == ("profile.age", "spend.amount") and first.groups == ["profile", "spend"]
    assert wb.feature_view("churn", ["profile.age", "spend.amount"], description="churn model") == first
    second = wb.feature_view("churn", ["age", "city"], description="churn model")
    assert second.version == 2 and wb.feature_view("churn") == second
    with pytest.raises(FeatureNotFoundError, match="No feature view 'missing'"):
        wb.feature_view("missing")
    with pytest.raises(FeatureNotFoundError):
        wb.feature_view("bad", ["no_such_feature"])
    with pytest.raises(SchemaValidationError):
        wb.feature_view("empty", [])
    with pytest.raises(SchemaValidationError):
        wb.feature_view("bad name!", ["age"])


def test_infer_schema_reads_types_and_names_missing_columns(wb: Workbench) -> None:
    frame = pl.DataFrame(
        {
            "user_id": [1],
            "ts": [T0],
            "n": pl.Series([1], dtype=pl.Int16),
            "ok": [True],
            "v": [[1.0, 2.0]],
            "d": pl.Series([1.5], dtype=pl.Decimal(10, 2)),
        }
    )
    schema = wb.infer_schema(frame, "g", ["user_id"], "ts", non_nullable=["n"], descriptions={"n": "count"})
    kinds = {f.name: (str(f.spec), f.feature_type.value, f.nullable) for f in schema.features}  # type: ignore[union-attr]
    assert kinds == {
        "n": ("INT", "NUMERICAL", False),
        "ok": ("BOOLEAN", "CATEGORICAL", True),
        "v": ("ARRAY<DOUBLE>", "VECTOR", True),
        "d": ("DECIMAL(10,2)", "NUMERICAL", True),
    }
    assert schema.get_feature("n").description == "count"
    wb.register(schema)
    wb.write("g", frame)  # the inferred schema accepts the frame it came from
    with pytest.raises(SchemaValidationError, match="no column 'event_time'"):
        wb.infer_schema(frame, "g", ["user_id"], "event_time")


# -- one call over materialized and virtual groups -------------------------------------------
def test_historical_features_over_a_materialized_and_a_virtual_group(wb: Workbench) -> None:
    spend, profile = _spend_rows(), _profile_rows()
    _setup_mixed(wb, spend, profile)
    labels = pl.DataFrame(
        {
            "user_id": [2, 1, 3, 2, 9],
            "t": [hours(6), hours(31), hours(2), hours(11), hours(3)],
            "y": [0, 1, 0, 1, 1],
        }
    )
    out = wb.get_historical_features(labels, ["age", "amount", "city"]).collect()
    prof = oracle_point_in_time(labels, profile, PointInTimeSpec(("user_id",), "t", "ts", ("age", "city")))
    both = oracle_point_in_time(
        prof, spend, PointInTimeSpec(("user_id",), "t", "ts", ("amount",), ttl=SPEND.ttl)
    )
    assert out.select(both.columns).equals(both)
    assert out.columns == ["user_id", "t", "y", "age", "city", "amount"]  # grouped, as any one store
    routes: Any = wb.explain(["age", "amount"])
    assert {g: r.target for g, r in routes.items()} == {"profile": "materialized", "spend": "virtual"}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spend=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 40), st.integers(-5, 5)), max_size=10),
    profile=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 40), st.integers(0, 99)), max_size=10),
    probes=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 50)), min_size=1, max_size=8),
)
def test_mixed_historical_read_matches_the_oracle(
    tmp_path_factory: pytest.TempPathFactory,
    spend: list[tuple[int, int, int]],
    profile: list[tuple[int, int, int]],
    probes: list[tuple[int, int]],
) -> None:
    # distinct (key, time) pairs: full ties depend on write order, tested in the store suites
    s = list({(k, t): v for k, t, v in spend}.items())
    p = list({(k, t): v for k, t, v in profile}.items())
    spend_df = pl.DataFrame(
        {
            "user_id": [k for (k, _), _ in s],
            "ts": [hours(t) for (_, t), _ in s],
            "amount": [float(v) for _, v in s],
        },
        schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    )
    profile_df = pl.DataFrame(
        {
            "user_id": [k for (k, _), _ in p],
            "ts": [hours(t) for (_, t), _ in p],
            "age": [v for _, v in p],
            "city": [f"c{v}" for _, v in p],
        },
        schema={"user_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "age": pl.Int32, "city": pl.String},
    )
    labels = pl.DataFrame({"user_id": [k for k, _ in probes], "t": [hours(h) for _, h in probes]})
    with Workbench({"storage_path": str(tmp_path_factory.mktemp("mixed")), **QUIET}) as bench:
        _setup_mixed(bench, spend_df, profile_df)
        out = bench.get_historical_features(labels, ["spend.amount", "profile.age"]).collect()
    expected = oracle_point_in_time(
        oracle_point_in_time(
            labels, spend_df, PointInTimeSpec(("user_id",), "t", "ts", ("amount",), ttl=SPEND.ttl)
        ),
        profile_df,
        PointInTimeSpec(("user_id",), "t", "ts", ("age",)),
    )
    assert out.equals(expected)


# -- health ----------------------------------------------------------------------------------
def test_health_names_the_degraded_component_with_its_error(tmp_path: Path) -> None:
    dead = {"type": "redis", "url": "redis://127.0.0.1:1/0", "socket_timeout_seconds": 0.2}
    with Workbench({"storage_path": str(tmp_path / "r"), "online_store": dead, **QUIET}) as bench:
        report = bench.health_check()
        assert not report and report.checks == {
            "registry": True,
            "storage": True,
            "executor": True,
            "online": False,
        }
        assert "127.0.0.1:1" in report.details["online"] or "onnect" in report.details["online"]
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the offline folder should be")
    options = {"storage_path": str(tmp_path / "s"), "materialized": {"storage_path": str(blocked)}, **QUIET}
    with Workbench(options) as bench:
        report = bench.health_check()
        assert not report.checks["storage"] and report.checks["registry"] and report.checks["online"]
        assert "FileExistsError" in report.details["storage"] or "Error" in report.details["storage"]
        assert not report


def test_health_of_a_working_redis_is_healthy(tmp_path: Path, redis_server: Any) -> None:
    online = {"type": "redis", "url": redis_server.url}
    with Workbench({"storage_path": str(tmp_path / "r"), "online_store": online, **QUIET}) as bench:
        report = bench.health_check()
        assert (
            report
            and report.details == {}
            and set(report.checks) == {"registry", "storage", "executor", "online"}
        )


def test_infer_schema_reads_only_the_schema_of_parquet_delta_and_csv_files(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    from tauro_workbench import infer_schema

    frame = _spend_rows()
    frame.write_parquet(tmp_path / "s.parquet")
    frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S")).write_csv(tmp_path / "s.csv")
    write_deltalake(str(tmp_path / "delta"), frame.to_arrow())
    for location in (tmp_path / "s.parquet", tmp_path / "delta"):
        schema = infer_schema(location, "spend", ["user_id"], "ts")
        assert [(f.name, str(f.spec)) for f in schema.features] == [("amount", "DOUBLE")]
    from_csv = infer_schema(tmp_path / "s.csv", "spend", ["user_id"], None, features=["amount"])
    assert from_csv.feature_names == ["amount"] and from_csv.timestamp_key is None


def test_mode_online_syncs_every_write_and_serves_online_only_history(tmp_path: Path) -> None:
    import shutil

    with Workbench({"storage_path": str(tmp_path / "repo"), "mode": "online", **QUIET}) as bench:
        assert (
            bench.store is bench.hybrid and bench.config.sync_to_online and bench.config.enable_online_store
        )
        bench.register(PROFILE)
        now = datetime.now(UTC).replace(microsecond=0)
        bench.write(
            "profile",
            pl.DataFrame(
                {
                    "user_id": [1, 1],
                    "ts": [now - timedelta(hours=3), now - timedelta(hours=1)],
                    "age": pl.Series([30, 31], dtype=pl.Int32),
                    "city": ["a", "b"],
                }
            ),
        )
        assert bench.get_online_features(["profile.age"], entity_keys={"user_id": 1}) == {"age": 31}
        shutil.rmtree(bench.config.offline_path / "profile")  # the rows now exist only online
        labels = pl.DataFrame({"user_id": [1, 1, 2], "at": [now - timedelta(hours=2), now, now]})
        got = bench.get_historical_features(labels, ["profile.age", "profile.city"]).collect()
        # the latest row (1h ago) is after the first label: online keeps no older row -> null
        assert got.to_dict(as_series=False) == {
            "user_id": [1, 1, 2],
            "at": labels["at"].to_list(),
            "age": [None, 31, None],
            "city": [None, "b", None],
        }
        assert bench.explain(["profile.age"]).target == "materialized"
        assert bench.hybrid.explain(["profile.age"], request="historical").target == "online"


def test_history_reconciles_commits_the_registry_missed(wb: Workbench) -> None:
    wb.register(PROFILE)
    frame = pl.DataFrame({"user_id": [1], "ts": [T0], "age": pl.Series([3], dtype=pl.Int32), "city": ["x"]})
    wb.write("profile", frame)
    record = wb.history("profile")[-1]
    import sqlite3

    # a process killed between the Delta commit and its registry record: the record is missing
    with sqlite3.connect(wb.config.registry_path) as db:
        db.execute("DELETE FROM writes WHERE id = ?", (record.id,))
        db.execute("DELETE FROM documents WHERE kind = 'offline_reconcile'")
    db.close()
    assert wb.metadata.list_writes("profile") == []
    (again,) = wb.history("profile")
    assert again.table_version == record.table_version and again.details.get("reconciled") is True
