"""The embedded defaults run on the core dependencies alone (no pandas, no extras)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    BLOCKED = {"pandas", "pyspark", "redis", "altair", "marimo", "anywidget"}

    class Block(MetaPathFinder):  # importing a blocked package raises ModuleNotFoundError
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{name} is blocked in this test", name=name)
            return None

    sys.meta_path.insert(0, Block())

    from datetime import datetime
    import polars as pl
    from tauro_workbench import FeatureGroupSchema, FeatureSchema, MaterializedFeatureStore, VirtualizedFeatureStore

    schema = FeatureGroupSchema(
        name="users", entity_keys=["user_id"], timestamp_key="ts",
        features=[FeatureSchema("age", "INT"), FeatureSchema("region", "STRING")],
    )
    store = MaterializedFeatureStore(storage_path=sys.argv[1], config={"enable_online_store": True})
    store.register_features(schema)
    for month in (1, 2):
        store.write_features("users", pl.DataFrame({
            "user_id": list(range(300)), "ts": [datetime(2026, month, 1)] * 300,
            "age": [20 + i % 50 for i in range(300)], "region": ["eu", "us", "apac"] * 100,
        }))
    assert store.get_features(["age"], entity_ids={"user_id": [1, 2]}).collect()["age"].to_list() == [21, 22]
    labels = pl.DataFrame({"user_id": [1], "ts": [datetime(2026, 1, 15)]})
    assert store.get_historical_features(labels, ["age"]).collect()["age"].to_list() == [21]
    assert store.monitor.reports("users")[-1].verdict == "ok"
    store.promote("users", to="online")
    assert store.get_online_features(["region"], {"user_id": 4}) == {"region": "us"}

    virtual = VirtualizedFeatureStore(storage_path=sys.argv[1] + "_v")
    virtual.metadata.register_feature_group(FeatureGroupSchema(
        name="ages", entity_keys=["user_id"], features=[FeatureSchema("age", "INT")]))
    virtual.executor.register_frame("silver.people", pl.DataFrame({"user_id": [1, 2], "age": [30, 40]}).cast({"age": pl.Int32}))
    virtual.define_virtual_features("ages", "SELECT user_id, age FROM silver.people")
    assert virtual.get_features(["age"], entity_ids={"user_id": [2]}).collect()["age"].to_list() == [40]
    print("core only: ok")
    """
)


def test_embedded_defaults_need_no_optional_package(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "repo")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core only: ok" in done.stdout
