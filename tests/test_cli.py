"""``tauro-wb``: every command in-process against a real repo, and one end-to-end run in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from tauro_workbench.cli import main
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.workbench import Workbench

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "repo"
SILVER = ROOT / "sample_data" / "silver"
PIPELINE = SAMPLE / "pipeline.yaml"


@pytest.fixture(autouse=True)
def _no_env_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TAURO_FS_"):
            monkeypatch.delenv(key)


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, object]:
    code, out, _ = cli(capsys, *args, "--json")
    return code, json.loads(out)


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def redis_config(path: Path, url: str) -> Path:
    path.write_text(
        "mode: hybrid\nenable_online_store: true\n"
        f"online_store:\n  type: redis\n  url: {url}\n  key_prefix: t{abs(hash(str(path))) % 10**8}\n"
    )
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, redis_server: object) -> Path:
    """A repo (online store: Redis) with the sample definitions applied and the sample pipeline run."""
    root = tmp_path_factory.mktemp("built")
    repo = root / "repo"
    config = redis_config(root / "tauro.yaml", redis_server.url)  # type: ignore[attr-defined]
    assert main(["init", "--repo", str(repo), "--config", str(config), "-q"]) == 0
    assert main(["apply", str(SAMPLE), "--repo", str(repo), "-q"]) == 0
    assert main(["run", str(PIPELINE), "--repo", str(repo), "-q"]) == 0
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A fresh repo with the sample definitions applied (no data written)."""
    path = tmp_path / "repo"
    assert main(["apply", str(SAMPLE), "--repo", str(path), "-q"]) == 0
    yield path


def profiles(path: Path, *, rows: int = 50, suffix: str = ".parquet") -> Path:
    frame = (
        pl.read_parquet(SILVER / "users.parquet")
        .head(rows)
        .select(
            "user_id",
            pl.lit(30, dtype=pl.Int32).alias("age"),
            "country",
            "plan",
            "marketing_opt_in",
        )
    )
    file = path / f"profiles{suffix}"
    if suffix == ".csv":
        frame.write_csv(file)
    else:
        frame.write_parquet(file)
    return file


# -- init, sources, register, apply -------------------------------------------------------
def test_init_creates_once_and_validates_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    code, out, _ = cli(capsys, "init", "--repo", repo)
    assert code == 0 and "initialized feature repo" in out and (repo / "registry.db").is_file()
    code, data = cli_json(capsys, "init", "--repo", repo)
    assert code == 0 and data["created"] is False  # type: ignore[index]
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: hybrid\nonline_store:\n  batch_size: 0\n")
    code, _, err = cli(capsys, "init", "--repo", tmp_path / "other", "--config", bad)
    assert code == 2 and "bad.yaml:3: online_store.batch_size" in error_line(err)
    assert not (tmp_path / "other").exists()
    good = tmp_path / "tauro.yaml"
    good.write_text("mode: materialized\n")
    assert cli(capsys, "init", "--repo", repo, "--config", good)[0] == 0
    assert Workbench.open(repo).config.mode.value == "materialized"
    good.write_text("mode: virtualized\n")
    code, _, err = cli(capsys, "init", "--repo", repo, "--config", good)
    assert code == 2 and "--force" in error_line(err)
    assert cli(capsys, "init", "--repo", repo, "--config", good, "--force")[0] == 0


def test_sources_add_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    code, _, err = cli(capsys, "sources", "add", "silver.users", SILVER / "users.parquet", "--repo", repo)
    assert code == 1 and "no feature repo" in error_line(err) and not repo.exists()
    cli(capsys, "init", "--repo", repo)
    code, out, _ = cli(capsys, "sources", "add", "silver.users", SILVER / "users.parquet", "--repo", repo)
    assert code == 0 and "added source silver.users (parquet" in out
    code, data = cli_json(capsys, "sources", "list", "--repo", repo)
    assert code == 0 and [s["name"] for s in data] == ["silver.users"]  # type: ignore[union-attr]
    code, _, err = cli(capsys, "sources", "add", "silver.x", tmp_path / "none.parquet", "--repo", repo)
    assert code == 1 and "silver.x" in error_line(err)
    code, _, err = cli(
        capsys, "sources", "add", "silver.y", SILVER / "users.parquet", "--option", "oops", "--repo", repo
    )
    assert code == 2 and "KEY=VALUE" in error_line(err)


def test_register_a_schema_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    cli(capsys, "init", "--repo", repo)
    file = SAMPLE / "groups" / "user_features.yaml"
    code, out, _ = cli(capsys, "register", file, "--repo", repo)
    assert code == 0 and out.strip() == "registered user_features v1"
    code, out, _ = cli(capsys, "register", file, "--repo", repo)
    assert code == 0 and out.strip() == "unchanged user_features v1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: g\nentity_keys: [k]\nfeatures:\n  - {name: a, data_type: FLOT}\n")
    code, _, err = cli(capsys, "register", bad, "--repo", repo)
    assert code == 2 and f"{bad}:4: features[0].data_type: invalid data type 'FLOT'" in error_line(err)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: café\n".encode("latin-1"))
    code, _, err = cli(capsys, "register", latin, "--repo", repo)
    assert code == 2 and "is not UTF-8 text" in error_line(err)
    code, _, err = cli(capsys, "register", tmp_path / "missing.yaml", "--repo", repo)
    assert code == 2 and "missing.yaml: file not found" in error_line(err)


def test_apply_plans_applies_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    code, data = cli_json(capsys, "apply", SAMPLE, "--repo", repo, "--dry-run")
    assert code == 0 and not repo.exists()  # a dry run creates nothing
    assert {c["action"] for c in data["changes"]} == {"create"}  # type: ignore[index]
    code, out, _ = cli(capsys, "apply", SAMPLE, "--repo", repo)
    assert (
        code == 0
        and "+ group user_features v1" in out
        and "Applied: 8 to create, 0 to update, 0 unchanged." in out
    )
    code, out, _ = cli(capsys, "apply", SAMPLE, "--repo", repo)
    assert code == 0 and out.rstrip().endswith("Applied: no changes.") and "+ " not in out
    with Workbench.open(repo) as wb:
        assert [g.name for g in wb.groups()] == ["user_features", "user_purchases_daily", "user_txn_daily"]
        assert wb.feature_view("fraud_model").version == 1
        assert "silver.purchases" in wb.virtual.get_definition("user_purchases_daily").sources


def test_apply_reports_changes_and_conflicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definitions = tmp_path / "sample_data" / "repo"
    shutil.copytree(SAMPLE, definitions)
    (tmp_path / "sample_data" / "silver").symlink_to(SILVER)  # the relative source locations still resolve
    repo = tmp_path / "repo"
    cli(capsys, "apply", definitions, "--repo", repo)
    group = definitions / "groups" / "user_txn_daily.yaml"
    group.write_text(group.read_text().replace("known at the end of the day.", "changed."))
    code, _, err = cli(capsys, "apply", definitions, "--repo", repo)
    assert code == 2
    assert (
        "user_txn_daily.yaml:3: group 'user_txn_daily' v1 is registered with a different schema"
        in error_line(err)
    )
    assert "version: 2" in err
    group.write_text(group.read_text().replace("entity_keys:", "version: 2\nentity_keys:"))
    view = definitions / "views" / "fraud_model.yaml"
    view.write_text(view.read_text().replace("  - user_features.age\n", ""))
    code, data = cli_json(capsys, "apply", definitions, "--repo", repo)
    assert code == 0
    actions = {(c["kind"], c["name"]): c["action"] for c in data["changes"]}  # type: ignore[index]
    assert (
        actions[("group", "user_txn_daily v2")] == "update" and actions[("view", "fraud_model")] == "update"
    )
    assert actions[("group", "user_features v1")] == "unchanged"
    virtual = definitions / "virtual" / "user_purchases_daily.yaml"
    virtual.write_text(virtual.read_text().replace("silver.purchases", "silver.nope"))
    code, _, err = cli(capsys, "apply", definitions, "--repo", repo)
    assert (
        code == 2
        and "user_purchases_daily.yaml:1: virtual 'user_purchases_daily' was rejected" in error_line(err)
    )
    code, _, err = cli(capsys, "apply", tmp_path / "nowhere", "--repo", repo)
    assert code == 2 and "is not a folder" in error_line(err)


# -- insight ------------------------------------------------------------------------------
def test_list_and_show(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "list", "--repo", built)
    assert code == 0 and "user_purchases_daily\tv1\t2 features\tvirtual\tlast write: never" in out
    assert "user_features\tv1\t4 features\tmaterialized\tlast write: 20" in out
    assert cli(capsys, "groups", "--repo", built)[1] == out  # the earlier name still works
    code, data = cli_json(capsys, "list", "--repo", built)
    assert {r["group"]: r["last_write"] is not None for r in data} == {  # type: ignore[union-attr]
        "user_features": True,
        "user_purchases_daily": False,
        "user_txn_daily": True,
    }
    code, out, _ = cli(capsys, "show", "user_features", "--version", "1", "--repo", built)
    assert code == 0 and "name: user_features\nversion: 1" in out
    code, _, err = cli(capsys, "show", "user_features", "--version", "7", "--repo", built)
    assert code == 1 and error_line(err).endswith(
        "unknown feature group 'user_features' version 7; registered versions: 1"
    )
    code, out, _ = cli(capsys, "show", "user_purchases_daily", "--repo", built)
    assert code == 0 and "entity_keys:\n- user_id" in out
    assert "sql:\n  SELECT user_id," in out and "silver.purchases [source]" in out
    code, data = cli_json(capsys, "show", "user_purchases_daily", "--repo", built)
    assert "FROM (SELECT DISTINCT * FROM silver.purchases)" in data["sql"]["*"]  # type: ignore[index]
    assert any(n["kind"] == "source" for n in data["lineage"]["nodes"])  # type: ignore[index]
    code, _, err = cli(capsys, "show", "nope", "--repo", built)
    line = error_line(err)
    assert code == 1 and line == (
        "error: unknown feature group 'nope'; registered: user_features, user_purchases_daily, "
        "user_txn_daily (see 'tauro-wb list')"
    )
    assert "register_features(" not in err


def test_history_drift_and_lineage(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "history", "--repo", built)
    assert code == 0 and "user_features v1" in out and "drift: no_reference" in out
    code, data = cli_json(capsys, "history", "user_txn_daily", "--repo", built)
    assert [r["group"] for r in data] == ["user_txn_daily"]  # type: ignore[union-attr]
    assert data[0]["write_id"].startswith("daily_features:materialize_user_txn_daily:")  # type: ignore[index]
    code, out, _ = cli(capsys, "drift", "user_txn_daily", "--repo", built)
    assert code == 0 and out.startswith("user_txn_daily v1: no_reference")
    code, out, _ = cli(capsys, "drift", "user_purchases_daily", "--repo", built)
    assert code == 0 and "no drift report" in out
    assert cli(capsys, "drift", "nope", "--repo", built)[0] == 1
    code, out, _ = cli(capsys, "lineage", "user_features", "--repo", built)
    assert code == 0 and out.startswith("lineage of user_features")
    code, out, _ = cli(capsys, "lineage", "user_features", "--format", "json", "--repo", built)
    assert {"nodes", "edges"} <= set(json.loads(out))
    svg = tmp_path / "out" / "lineage.svg"
    code, out, _ = cli(capsys, "lineage", "user_features", "--format", "svg", "-o", svg, "--repo", built)
    assert code == 0 and out == "" and ET.fromstring(svg.read_text()).tag.endswith("svg")
    assert cli(capsys, "lineage", "nope", "--repo", built)[0] == 1
    assert cli(capsys, "history", "nope", "--repo", built)[0] == 1


def test_get_and_training_set(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        "get",
        "user_features.plan",
        "user_features.age",
        "--entity",
        "user_id=1,2,9999",
        "--repo",
        built,
    )
    assert code == 0 and "shape: (3, 3)" in out
    code, rows = cli_json(
        capsys, "get", "user_features.plan,user_txn_daily.txn_count", "--entity", "user_id=1", "--repo", built
    )
    assert rows[0]["user_id"] == 1 and rows[0]["plan"] is not None  # type: ignore[index]
    code, online = cli_json(
        capsys, "get", "user_features.plan", "--entity", "user_id=1", "--online", "--repo", built
    )
    assert code == 0 and online[0]["plan"] == rows[0]["plan"]  # type: ignore[index]
    code, early = cli_json(
        capsys,
        "get",
        "user_txn_daily.txn_count",
        "--entity",
        "user_id=1",
        "--at",
        "2025-01-01",
        "--repo",
        built,
    )
    assert code == 0 and early == [{"user_id": 1, "txn_count": None}]  # nothing was known then
    code, late = cli_json(
        capsys,
        "get",
        "user_txn_daily.txn_count",
        "--entity",
        "user_id=1",
        "--at",
        "2026-07-01T00:00",
        "--repo",
        built,
    )
    assert code == 0 and late[0]["txn_count"] is not None  # type: ignore[index]
    code, _, err = cli(capsys, "get", "user_features.nope", "--repo", built)
    assert code == 1 and "nope" in error_line(err)
    code, _, err = cli(capsys, "get", "user_features.plan", "--entity", "user_id", "--repo", built)
    assert code == 2 and "KEY=V1,V2" in error_line(err)
    labels = tmp_path / "labels.parquet"
    (
        pl.read_parquet(SILVER / "transactions.parquet")
        .filter(pl.col("transaction_ts") >= pl.datetime(2026, 6, 1, time_zone="UTC"))
        .head(300)
        .select("user_id", pl.col("transaction_ts").alias("event_timestamp"), "is_fraud")
        .write_parquet(labels)
    )
    out_file = tmp_path / "ts.parquet"
    code, data = cli_json(capsys, "training-set", labels, "fraud_model", "-o", out_file, "--repo", built)
    assert code == 0 and data["rows"] == 300  # type: ignore[index]
    frame = pl.read_parquet(out_file)
    assert frame.height == 300 and {"plan", "age", "txn_count", "purchase_count"} <= set(frame.columns)
    assert set(data["match_rate"]) == {"user_features", "user_txn_daily", "user_purchases_daily"}  # type: ignore[index]
    code, out, _ = cli(
        capsys, "training-set", labels, "user_features.plan", "-o", tmp_path / "ts.csv", "--repo", built
    )
    assert code == 0 and "wrote 300 rows x 4 columns" in out and (tmp_path / "ts.csv").is_file()
    code, _, err = cli(
        capsys, "training-set", labels, "fraud_model", "-o", tmp_path / "ts.txt", "--repo", built
    )
    assert code == 2 and ".parquet or .csv" in error_line(err)
    code, _, err = cli(
        capsys, "training-set", tmp_path / "none.parquet", "fraud_model", "-o", out_file, "--repo", built
    )
    assert code == 2 and "none.parquet: file not found" in error_line(err)


# -- writes -------------------------------------------------------------------------------
def test_write_modes_and_write_ids(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = profiles(tmp_path)
    code, out, _ = cli(capsys, "write", "user_features", file, "--repo", repo, "--write-id", "batch-1")
    assert code == 0 and out.startswith("wrote 50 rows to user_features v1 (append)")
    code, data = cli_json(capsys, "write", "user_features", file, "--repo", repo, "--write-id", "batch-1")
    assert code == 0 and data["rows"] == 50  # type: ignore[index]
    with Workbench.open(repo) as wb:
        assert len(wb.history("user_features")) == 1  # the same write id was not written twice
    csv = profiles(tmp_path, rows=10, suffix=".csv")
    code, out, _ = cli(capsys, "write", "user_features", csv, "--mode", "overwrite", "--repo", repo)
    assert code == 0 and "(overwrite)" in out
    with Workbench.open(repo) as wb:
        assert wb.materialized.scan_group("user_features").collect().height == 10
    bad = tmp_path / "bad.parquet"
    pl.read_parquet(file).with_columns(pl.lit(500, dtype=pl.Int32).alias("age")).write_parquet(bad)
    code, _, err = cli(capsys, "write", "user_features", bad, "--repo", repo)
    assert code == 1 and "age" in error_line(err) and "\n  -" not in err
    code, _, err = cli(capsys, "write", "user_features", tmp_path / "x.txt", "--repo", repo)
    assert code == 2 and "file not found" in error_line(err)
    (tmp_path / "x.txt").write_text("hi")
    code, _, err = cli(capsys, "write", "user_features", tmp_path / "x.txt", "--repo", repo)
    assert code == 2 and "unknown file type .txt" in error_line(err)
    code, _, err = cli(capsys, "write", "user_features", file, "--mode", "upsert", "--repo", repo)
    assert code == 2 and "invalid choice: 'upsert'" in err
    assert cli(capsys, "write", "nope", file, "--repo", repo)[0] == 1


def test_backfill_and_promote(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    daily = tmp_path / "daily.parquet"
    (
        pl.DataFrame(
            {
                "user_id": [1, 1, 2],
                "day_end": pl.Series(["2026-01-02", "2026-01-03", "2026-01-02"]).str.to_datetime(
                    time_zone="UTC"
                ),
                "txn_count": pl.Series([1, 2, 3], dtype=pl.Int32),
                "txn_amount_sum": [1.0, 2.0, 3.0],
                "txn_amount_mean": [1.0, 1.0, 3.0],
                "txn_amount_max": [1.0, 1.5, 3.0],
                "declined_count": pl.Series([0, 0, 1], dtype=pl.Int32),
            }
        ).write_parquet(daily)
    )
    code, out, _ = cli(
        capsys,
        "backfill",
        "user_txn_daily",
        daily,
        "--start",
        "2026-01-01",
        "--end",
        "2026-02-01",
        "--repo",
        repo,
    )
    assert code == 0 and "(backfill)" in out
    code, _, err = cli(
        capsys,
        "backfill",
        "user_txn_daily",
        daily,
        "--start",
        "yesterday",
        "--end",
        "2026-02-01",
        "--repo",
        repo,
    )
    assert code == 2 and "not an ISO date" in err
    code, _, err = cli(
        capsys,
        "backfill",
        "user_txn_daily",
        daily,
        "--start",
        "2026-02-01",
        "--end",
        "2026-01-01",
        "--repo",
        repo,
    )
    assert code == 2 and "must be after --start" in error_line(err)
    code, data = cli_json(capsys, "promote", "user_purchases_daily", "--to", "materialized", "--repo", repo)
    assert code == 0 and data["changed"] is True and data["rows"] > 0  # type: ignore[index]
    code, data = cli_json(capsys, "list", "--repo", repo)
    kinds = {r["group"]: r["kind"] for r in data}  # type: ignore[union-attr]
    assert kinds == {
        "user_features": "empty",
        "user_purchases_daily": "virtual+materialized",
        "user_txn_daily": "materialized",
    }
    code, out, _ = cli(capsys, "promote", "user_purchases_daily", "--repo", repo)
    assert code == 0 and "nothing changed" in out
    code, data = cli_json(capsys, "promote", "user_txn_daily", "--to", "online", "--repo", repo)
    assert code == 0 and data["target"] == "online"  # type: ignore[index]
    assert cli(capsys, "promote", "nope", "--repo", repo)[0] == 1


# -- health, run, demo --------------------------------------------------------------------
def test_health_ok_and_unhealthy(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "health", "--repo", repo)
    assert code == 0 and "healthy" in out and "registry: ok" in out
    offline = repo / "offline"
    shutil.rmtree(offline, ignore_errors=True)
    offline.write_text("not a folder")  # the storage probe cannot write under it
    code, data = cli_json(capsys, "health", "--repo", repo)
    assert code == 1 and data["healthy"] is False and data["checks"]["storage"] is False  # type: ignore[index]
    code, out, err = cli(capsys, "health", "--repo", repo)
    assert code == 1 and "UNHEALTHY" in out and "storage: FAILED" in out
    assert error_line(err) == "error: the store is unhealthy (see the failed checks above)"


def test_run_reports_nodes_and_stops_at_the_failing_one(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "run", PIPELINE, "--repo", repo)
    assert code == 0 and "pipeline daily_features: 9 nodes ok" in out
    assert "ok     materialize_user_features (write_features) wrote 2,000 rows" in err
    code, data = cli_json(capsys, "run", PIPELINE, "--repo", repo)
    assert code == 0
    details = {n["name"]: n["detail"] for n in data["nodes"]}  # type: ignore[index]
    assert details["materialize_user_features"].startswith("already written")
    failing = tmp_path / "failing.yaml"
    failing.write_text(
        "name: broken\nnodes:\n"
        "  - name: rows\n    type: sql\n    sql: SELECT user_id, no_such_column FROM silver.users\n"
        "  - {name: w, type: write_features, feature_group: user_features, input_source: rows}\n"
    )
    code, out, err = cli(capsys, "run", failing, "--repo", repo)
    line = error_line(err)
    assert code == 1 and line.startswith("error: pipeline 'broken' failed at node 'rows':")
    assert "no_such_column" in line and "failed rows (sql)" in err
    with_input = tmp_path / "scored.yaml"
    with_input.write_text(
        "name: scored\ninputs: [ids]\nnodes:\n"
        "  - {name: read, type: read_features, feature_names: [user_features.plan], entity_ids_source: ids}\n"
    )
    ids = tmp_path / "ids.csv"
    ids.write_text("user_id\n1\n2\n")
    code, data = cli_json(capsys, "run", with_input, "--input", f"ids={ids}", "--repo", repo)
    assert code == 0 and data["nodes"][0]["rows"] == 2  # type: ignore[index]
    code, _, err = cli(capsys, "run", with_input, "--repo", repo)
    assert code == 2 and "needs --input for ids" in error_line(err)
    code, _, err = cli(capsys, "run", with_input, "--input", f"other={ids}", "--repo", repo)
    assert code == 2 and "declares inputs ['ids']" in error_line(err)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: p\nnodes:\n  - {name: a, type: sql, sql: SELECT 1, inputs: [b]}\n")
    code, _, err = cli(capsys, "run", bad, "--repo", repo)
    assert code == 2 and "bad.yaml:3: nodes[0].inputs: unknown node 'b'" in error_line(err)


def test_demo_builds_a_repo_from_sample_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "demo"
    code, data = cli_json(capsys, "demo", "--repo", repo)
    assert code == 0 and data["groups"] == ["user_features", "user_purchases_daily", "user_txn_daily"]  # type: ignore[index]
    assert (repo / ".tauro_demo").is_file()
    assert cli(capsys, "demo", "--repo", repo, "-q")[0] == 0  # a demo repo is rebuilt
    other = tmp_path / "real"
    other.mkdir()
    (other / "data.txt").write_text("keep me")
    code, _, err = cli(capsys, "demo", "--repo", other)
    assert code == 1 and "not emptied" in error_line(err) and (other / "data.txt").is_file()


# -- cross-cutting ------------------------------------------------------------------------
READ_ONLY = [
    ["list"],
    ["show", "user_features"],
    ["history"],
    ["health"],
    ["drift", "user_features"],
    ["lineage", "user_features"],
    ["get", "user_features.plan"],
    ["sources", "list"],
    ["promote", "user_features"],
    ["run", str(PIPELINE)],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: a[0])
def test_commands_on_a_path_with_no_repo_fail_and_create_nothing(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no_repo"
    code, _, err = cli(capsys, *args, "--repo", missing)
    assert code == 1 and error_line(err) == (
        f"error: no feature repo at {missing} (create one with 'tauro-wb init' or 'tauro-wb apply')"
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["show", "user_features"],
        ["history"],
        ["health"],
        ["drift", "user_txn_daily"],
        ["lineage", "user_features"],
        ["get", "user_features.plan", "--entity", "user_id=1"],
        ["sources", "list"],
    ],
    ids=lambda a: a[0],
)
def test_json_on_every_read_command(args: list[str], built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, *args, "--repo", built, "--json")
    assert code == 0 and json.loads(out) is not None


def test_json_errors_and_usage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = cli(capsys, "show", "x", "--repo", tmp_path / "none", "--json")
    assert code == 1 and json.loads(out) == {"error": error_line(err).removeprefix("error: "), "exit_code": 1}
    assert cli(capsys, "frobnicate")[0] == 2
    assert cli(capsys, "show")[0] == 2
    assert cli(capsys, "--help")[0] == 0
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.startswith("tauro-wb ")


def test_verbose_shows_the_traceback_and_quiet_hides_notes(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "show", "nope", "--repo", built, "-v")
    assert (
        code == 1
        and "Traceback" in err
        and err.rstrip().splitlines()[-1].startswith("error: unknown feature group")
    )
    code, out, err = cli(capsys, "run", PIPELINE, "--repo", built, "-q")
    assert code == 0 and err == "" and out.startswith("pipeline daily_features")
    code, _, err = cli(capsys, "run", PIPELINE, "--repo", built, "-vv")
    assert code == 0 and "DEBUG" in err and "INFO" in err


def test_end_to_end_in_a_subprocess(tmp_path: Path, redis_server: object) -> None:
    """init + apply + the sample pipeline through the real console entry point, then check every store."""
    import redis

    url = redis_server.url  # type: ignore[attr-defined]
    prefix = f"e2e{os.getpid()}"
    config = tmp_path / "tauro.yaml"
    config.write_text(
        "mode: hybrid\nenable_online_store: true\n"
        f"online_store:\n  type: redis\n  url: {url}\n  key_prefix: {prefix}\n"
    )
    repo = tmp_path / "repo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAURO_FS_")}

    def tauro_wb(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tauro_workbench.cli", *map(str, args), "--repo", str(repo)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
            check=False,
        )

    for step in (("init", "--config", config), ("apply", SAMPLE), ("run", PIPELINE)):
        done = tauro_wb(*step)
        assert done.returncode == 0, done.stderr
    assert tauro_wb("apply", SAMPLE, "--dry-run").stdout.rstrip().endswith("Plan: no changes.")
    # the Delta table
    table = DeltaTable(str(repo / "offline" / "user_features" / "v1"))
    assert table.to_pyarrow_table().num_rows == 2000
    # the registry
    metadata = FeatureStoreMetadata(repo)
    try:
        assert metadata.list_feature_groups() == ["user_features", "user_purchases_daily", "user_txn_daily"]
        writes = metadata.list_writes("user_txn_daily")
        assert len(writes) == 1 and writes[0].rows > 40_000
    finally:
        metadata.close()
    # the online store: the keys are in Redis, and a new process reads them back
    client = redis.Redis.from_url(url)
    assert client.keys(f"{{{prefix}:user_features:*")
    client.close()
    with Workbench.open(repo) as wb:
        online = wb.get_online_features(
            ["user_features.plan", "user_txn_daily.txn_count"], entity_keys={"user_id": 1}
        )
        offline = wb.get_features(["user_features.plan"], entity_ids={"user_id": [1]}).collect()
    assert online["plan"] == offline["plan"].item() and online["txn_count"] is not None
    # running again repeats no write
    done = tauro_wb("run", PIPELINE, "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert all(n["status"] == "ok" for n in run["nodes"])
    metadata = FeatureStoreMetadata(repo)
    try:
        assert (
            len(metadata.list_writes("user_txn_daily")) == 1
            and len(metadata.list_writes("user_features")) == 1
        )
    finally:
        metadata.close()
    # a failing node and an unknown group give exit 1 and one line
    done = tauro_wb("show", "nope")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0


def test_repo_flag_wins_over_the_environment(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAURO_FS_STORAGE_PATH", str(tmp_path / "elsewhere"))
    code, out, _ = cli(capsys, "list", "--repo", built)
    assert code == 0 and "user_features" in out
    assert os.environ["TAURO_FS_STORAGE_PATH"] == str(tmp_path / "elsewhere")  # restored
    code, _, err = cli(capsys, "list")  # no --repo: the variable names the repo
    assert code == 1 and f"no feature repo at {tmp_path / 'elsewhere'}" in error_line(err)
    monkeypatch.setenv("TAURO_FS_STORAGE_PATH", str(built))
    assert cli(capsys, "list")[0] == 0


def test_drift_warnings_are_one_line_and_block_is_a_failure(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_sample_transforms", SAMPLE / "transforms.py")
    assert spec is not None and spec.loader is not None
    transforms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(transforms)  # the sample pipeline's own step
    daily = transforms.daily_transactions(pl.read_parquet(SILVER / "transactions.parquet"))
    month = pl.col("day_end").dt.offset_by("-1d").dt.month()
    may, june = tmp_path / "may.parquet", tmp_path / "june.parquet"
    daily.filter(month == 5).write_parquet(may)
    daily.filter(month == 6).write_parquet(june)
    assert cli(capsys, "write", "user_txn_daily", may, "--repo", repo)[0] == 0
    code, _, err = cli(capsys, "write", "user_txn_daily", june, "--repo", repo, "--on-drift", "block")
    assert code == 1 and "drift" in error_line(err).lower() and "--on-drift warn" in err
    code, out, err = cli(capsys, "write", "user_txn_daily", june, "--repo", repo)
    assert code == 0 and "drift: drift" in out
    assert [line for line in err.splitlines() if line.startswith("warning: ")]
    code, out, _ = cli(capsys, "drift", "user_txn_daily", "--repo", repo)
    assert code == 0 and out.startswith("user_txn_daily v1: drift") and "txn_amount_sum: drift" in out
    code, out, _ = cli(capsys, "history", "user_txn_daily", "--repo", repo)
    assert out.splitlines()[-1].endswith("drift: drift")


def _run_in_terminal(*args: str | Path) -> tuple[int, str, str]:
    """Run tauro-wb with stderr on a real pseudo-terminal (120 columns); return code, stdout, stderr."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAURO_FS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tauro_workbench.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = process.stdout.read().decode() if process.stdout else ""
    code = process.wait(timeout=120)
    os.close(master)
    return code, out, b"".join(chunks).decode()


def test_progress_bar_only_on_a_terminal(built: Path) -> None:
    code, out, err = _run_in_terminal("run", PIPELINE, "--repo", built)
    assert code == 0 and "daily_features:" in err and "/9 [" in err  # tqdm's bar
    assert "█" not in out
    code, out, err = _run_in_terminal("run", PIPELINE, "--repo", built, "--json")
    assert code == 0 and "daily_features:" not in err and json.loads(out)["pipeline"] == "daily_features"
