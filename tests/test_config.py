"""FeatureStoreConfig: every option, every source (dict, YAML, env, context), every error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from tauro_workbench.config import (
    DriftConfig,
    DriftThresholds,
    FeatureStoreConfig,
    FeatureStoreMode,
    MaterializedConfig,
    OnlineStoreConfig,
    VirtualizedConfig,
    env_overrides,
    resolve_config,
)
from tauro_workbench.exceptions import ConfigurationError

TOP_LEVEL = [
    "auto_materialize_on_read",
    "drift",
    "enable_online_store",
    "hybrid",
    "hybrid_threshold_rows",
    "lock_timeout_seconds",
    "materialized",
    "max_retries",
    "metadata_cache_ttl_seconds",
    "mode",
    "online_store",
    "retry_backoff_ms",
    "retry_backoff_multiplier",
    "storage_format",
    "storage_path",
    "sync_to_online",
    "virtualized",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("TAURO_FS_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    cfg = FeatureStoreConfig()
    assert cfg.mode is FeatureStoreMode.MATERIALIZED
    assert cfg.storage_format == "delta"
    assert (cfg.hybrid_threshold_rows, cfg.max_retries) == (100_000, 3)
    assert (cfg.retry_backoff_ms, cfg.retry_backoff_multiplier) == (100.0, 2.0)
    assert (cfg.metadata_cache_ttl_seconds, cfg.lock_timeout_seconds) == (300.0, 30.0)
    assert not cfg.enable_online_store and not cfg.sync_to_online and not cfg.auto_materialize_on_read
    assert cfg.online_store == OnlineStoreConfig(type="memory", url=None)
    assert cfg.materialized.cache_enabled and cfg.materialized.cache_size_mb == 512
    assert cfg.virtualized.executor_type == "duckdb" and cfg.virtualized.query_timeout_seconds == 300
    assert not cfg.virtualized.enable_caching
    assert cfg.drift.enabled and cfg.drift.on_drift == "warn"
    assert sorted(FeatureStoreConfig.model_fields) == TOP_LEVEL


def _strings(model: BaseModel) -> list[str]:
    found: list[str] = []
    for value in model.model_dump().values():
        if isinstance(value, str):
            found.append(value)
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found += _strings(value)
    return found


def test_no_hidden_absolute_default_paths() -> None:
    cfg = FeatureStoreConfig()
    for text in _strings(cfg):
        assert not Path(text).is_absolute(), text
        assert not text.startswith("~"), text
    assert not cfg.offline_path.is_absolute()
    assert not cfg.registry_path.is_absolute()
    assert cfg.registry_path == Path("./feature_repo") / "registry.db"


@pytest.mark.parametrize("mode", ["hybrid", "HYBRID", " Hybrid ", FeatureStoreMode.HYBRID])
def test_modes_accept_strings(mode: Any) -> None:
    assert FeatureStoreConfig(mode=mode).mode is FeatureStoreMode.HYBRID
    assert FeatureStoreMode(mode) is FeatureStoreMode.HYBRID


def test_architecture_example() -> None:
    cfg = FeatureStoreConfig(
        storage_path="./feature_repo",
        mode="hybrid",
        enable_online_store=True,
        online_store={"type": "redis", "url": "redis://127.0.0.1:6379/0"},
        sync_to_online=True,
        virtualized={"executor_type": "duckdb", "query_timeout_seconds": 300},
    )
    assert cfg.online_store.type == "redis" and cfg.online_store.url == "redis://127.0.0.1:6379/0"
    assert cfg.registry_path == Path("feature_repo/registry.db")


def test_reference_readme_config_dict_loads() -> None:
    feature_store_config = {
        "materialized": {
            "storage_path": "/data/gold/features",
            "storage_format": "parquet",
            "cache_enabled": True,
            "cache_size_mb": 512,
        },
        "virtualized": {
            "executor_type": "spark",  # or "duckdb"
            "query_timeout_seconds": 300,
            "enable_caching": True,
        },
    }
    cfg = FeatureStoreConfig.from_dict(feature_store_config, env=False)
    assert cfg.offline_path == Path("/data/gold/features")
    assert cfg.offline_format == "parquet"
    assert cfg.virtualized.executor_type == "spark" and cfg.virtualized.enable_caching
    assert (
        cfg.storage_format == "delta"
    )  # top level unchanged; the materialized section wins for offline data


def test_choices_are_case_insensitive() -> None:
    cfg = FeatureStoreConfig(
        storage_format="PARQUET",
        virtualized={"executor_type": "Spark"},
        online_store={"type": "REDIS"},
        drift={"on_drift": "Block"},
        materialized={"storage_format": "Delta"},
    )
    assert cfg.storage_format == "parquet" and cfg.virtualized.executor_type == "spark"
    assert cfg.online_store.type == "redis" and cfg.drift.on_drift == "block"
    assert cfg.materialized.storage_format == "delta"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (
            {"mode": "fast"},
            "mode: Input should be 'materialized', 'virtualized', 'hybrid' or 'online' (got 'fast')",
        ),
        ({"storage_format": "csv"}, "storage_format: Input should be 'delta' or 'parquet'"),
        ({"storage_path": ""}, "storage_path must not be empty"),
        ({"storage_path": None}, "storage_path: Input should be a valid string"),
        ({"hybrid_threshold_rows": -1}, "hybrid_threshold_rows: Input should be greater than or equal to 0"),
        ({"max_retries": -1}, "max_retries: Input should be greater than or equal to 0 (got -1)"),
        ({"max_retries": "many"}, "max_retries: Input should be a valid integer"),
        ({"max_retries": 2.5}, "fractional part"),
        ({"retry_backoff_ms": -1}, "retry_backoff_ms"),
        (
            {"retry_backoff_multiplier": 0.5},
            "retry_backoff_multiplier: Input should be greater than or equal to 1",
        ),
        ({"metadata_cache_ttl_seconds": -0.1}, "metadata_cache_ttl_seconds"),
        ({"lock_timeout_seconds": 0}, "lock_timeout_seconds: Input should be greater than 0"),
        ({"enable_online_store": "perhaps"}, "enable_online_store: Input should be a valid boolean"),
        ({"sync_to_online": [1]}, "sync_to_online"),
        ({"auto_materialize_on_read": "maybe"}, "auto_materialize_on_read"),
        ({"online_store": "redis"}, "online_store: Input should be a valid dictionary"),
        ({"online_store": {"type": "memcached"}}, "online_store.type: Input should be 'memory' or 'redis'"),
        ({"online_store": {"batch_size": 0}}, "online_store.batch_size"),
        ({"online_store": {"socket_timeout_seconds": 0}}, "online_store.socket_timeout_seconds"),
        ({"online_store": {"max_connections": 0}}, "online_store.max_connections"),
        ({"materialized": {"cache_size_mb": -1}}, "materialized.cache_size_mb"),
        ({"materialized": {"cache_enabled": "often"}}, "materialized.cache_enabled"),
        ({"materialized": {"storage_format": "orc"}}, "materialized.storage_format"),
        (
            {"virtualized": {"executor_type": "trino"}},
            "virtualized.executor_type: Input should be 'duckdb' or 'spark'",
        ),
        ({"virtualized": {"query_timeout_seconds": 0}}, "virtualized.query_timeout_seconds"),
        ({"virtualized": {"enable_caching": "x"}}, "virtualized.enable_caching"),
        ({"drift": {"on_drift": "panic"}}, "drift.on_drift"),
        ({"drift": {"bins": 1}}, "drift.bins"),
        ({"drift": {"defaults": {"ks_drift": 2}}}, "drift.defaults.ks_drift"),
    ],
)
def test_bad_values_name_the_option_and_value(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        FeatureStoreConfig(**options)
    assert fragment in str(info.value)
    assert str(info.value).startswith("Invalid feature store configuration: ")


@pytest.mark.parametrize(
    ("options", "location", "valid"),
    [
        ({"storage_pth": "x"}, "storage_pth", TOP_LEVEL),
        (
            {"virtualized": {"timeout": 1}},
            "virtualized.timeout",
            ["enable_caching", "executor_type", "query_timeout_seconds", "spark_master"],
        ),
        (
            {"online_store": {"host": "x"}},
            "online_store.host",
            ["batch_size", "key_prefix", "max_connections", "socket_timeout_seconds", "type", "url"],
        ),
        (
            {"materialized": {"path": "x"}},
            "materialized.path",
            ["cache_enabled", "cache_size_mb", "partition_by_date", "storage_format", "storage_path"],
        ),
        (
            {"drift": {"defaults": {"psi": 1}}},
            "drift.defaults.psi",
            ["ks_drift", "null_rate_change", "psi_drift", "psi_warning"],
        ),
        (
            {"drift": {"overrides": {"g.f": {"psi": 1}}}},
            "drift.overrides.g.f.psi",
            ["ks_drift", "null_rate_change"],
        ),
    ],
)
def test_unknown_options_list_the_valid_ones(
    options: dict[str, Any], location: str, valid: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        FeatureStoreConfig(**options)
    text = str(info.value)
    assert f"unknown option {location!r}; valid options: " in text
    assert ", ".join(valid) in text
    assert text.count("Invalid feature store configuration") == 1


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigurationError) as info:
        FeatureStoreConfig(mode="x", max_retries=-1, virtualized={"nope": 1})
    text = str(info.value)
    assert "mode:" in text and "max_retries:" in text and "'virtualized.nope'" in text


def test_nested_models_raise_configuration_errors_directly() -> None:
    for model in (MaterializedConfig, VirtualizedConfig, OnlineStoreConfig, DriftConfig, DriftThresholds):
        with pytest.raises(ConfigurationError, match="unknown option 'bogus'"):
            model(bogus=1)


def test_config_is_frozen_and_with_options_revalidates() -> None:
    cfg = FeatureStoreConfig()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.mode = FeatureStoreMode.ONLINE  # type: ignore[misc]
    changed = cfg.with_options(mode="online", virtualized={"query_timeout_seconds": 5})
    assert changed.mode is FeatureStoreMode.ONLINE and changed.virtualized.query_timeout_seconds == 5
    assert changed.virtualized.executor_type == "duckdb"
    with pytest.raises(ConfigurationError, match="unknown option 'bogus'"):
        cfg.with_options(bogus=1)


def test_derived_paths() -> None:
    cfg = FeatureStoreConfig(
        storage_path=Path("repo"), materialized={"storage_path": "offline", "storage_format": "parquet"}
    )
    assert cfg.storage_path == "repo"
    assert cfg.offline_path == Path("offline") and cfg.offline_format == "parquet"
    assert cfg.registry_path == Path("repo/registry.db")
    assert FeatureStoreConfig(storage_path="repo").offline_path == Path("repo/offline")


def test_drift_thresholds_for_group_and_feature() -> None:
    drift = DriftConfig(overrides={"g": {"psi_drift": 0.5}, "g.age": {"psi_drift": 0.9}})
    assert drift.thresholds_for("g", "age").psi_drift == 0.9
    assert drift.thresholds_for("g", "region").psi_drift == 0.5
    assert drift.thresholds_for("h", "x").psi_drift == 0.25


# -- dict and YAML ----------------------------------------------------------------------


def test_from_dict_unwraps_a_feature_store_section() -> None:
    cfg = FeatureStoreConfig.from_dict(
        {"feature_store": {"mode": "online"}, "input_path": "/other"}, env=False
    )
    assert cfg.mode is FeatureStoreMode.ONLINE
    assert FeatureStoreConfig.from_dict({"feature_store": None}, env=False) == FeatureStoreConfig()


GLOBAL_YAML = """
input_path: /data/input
output_path: /data/output
mode: local
feature_store:
  mode: HYBRID
  storage_path: ./features
  hybrid_threshold_rows: 50000
  enable_online_store: true
  online_store:
    type: redis
    url: redis://127.0.0.1:6379/0
  sync_to_online: true
  materialized:
    cache_size_mb: 128
  virtualized:
    executor_type: duckdb
    query_timeout_seconds: 60
"""


def test_tauro_global_yaml(tmp_path: Path) -> None:
    path = tmp_path / "global.yaml"
    path.write_text(GLOBAL_YAML)
    cfg = FeatureStoreConfig.from_yaml(path)
    assert cfg.mode is FeatureStoreMode.HYBRID and cfg.storage_path == "./features"
    assert cfg.hybrid_threshold_rows == 50000 and cfg.online_store.type == "redis" and cfg.sync_to_online
    assert cfg.materialized.cache_size_mb == 128 and cfg.virtualized.query_timeout_seconds == 60
    plain = tmp_path / "fs.yaml"
    plain.write_text("mode: virtualized\nmax_retries: 5\n")
    assert FeatureStoreConfig.from_yaml(str(plain)).max_retries == 5
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert FeatureStoreConfig.from_yaml(empty) == FeatureStoreConfig()


def test_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        FeatureStoreConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: [unclosed\n")
    with pytest.raises(ConfigurationError, match="is not valid YAML"):
        FeatureStoreConfig.from_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigurationError, match="must hold a mapping"):
        FeatureStoreConfig.from_yaml(listy)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("feature_store:\n  modes: hybrid\n")
    with pytest.raises(
        ConfigurationError, match="unknown option 'modes'; valid options: auto_materialize_on_read"
    ):
        FeatureStoreConfig.from_yaml(unknown)


# -- environment ------------------------------------------------------------------------


def test_env_overrides_nested_and_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAURO_FS_MODE", "online")
    monkeypatch.setenv("TAURO_FS_STORAGE_PATH", "123")
    monkeypatch.setenv("TAURO_FS_MAX_RETRIES", "7")
    monkeypatch.setenv("TAURO_FS_ENABLE_ONLINE_STORE", "true")
    monkeypatch.setenv("TAURO_FS_RETRY_BACKOFF_MS", "2.5")
    monkeypatch.setenv("TAURO_FS_ONLINE_STORE__URL", "redis://:p#w@127.0.0.1:6379/0")
    monkeypatch.setenv("TAURO_FS_ONLINE_STORE__KEY_PREFIX", "007")
    monkeypatch.setenv("TAURO_FS_VIRTUALIZED__QUERY_TIMEOUT_SECONDS", "60")
    monkeypatch.setenv("TAURO_FS_DRIFT__DEFAULTS__PSI_DRIFT", "0.3")
    monkeypatch.setenv("OTHER_VAR", "ignored")
    assert env_overrides()["online_store"] == {"url": "redis://:p#w@127.0.0.1:6379/0", "key_prefix": "007"}
    path = tmp_path / "global.yaml"
    path.write_text(GLOBAL_YAML)
    for cfg in (FeatureStoreConfig.from_yaml(path), FeatureStoreConfig.from_env(), resolve_config()):
        assert cfg.mode is FeatureStoreMode.ONLINE
        assert cfg.storage_path == "123"
        assert cfg.max_retries == 7 and cfg.enable_online_store and cfg.retry_backoff_ms == 2.5
        assert (
            cfg.online_store.url == "redis://:p#w@127.0.0.1:6379/0" and cfg.online_store.key_prefix == "007"
        )
        assert cfg.virtualized.query_timeout_seconds == 60 and cfg.drift.defaults.psi_drift == 0.3
    assert (
        FeatureStoreConfig.from_yaml(path).online_store.type == "redis"
    )  # file values not overridden are kept
    assert FeatureStoreConfig.from_yaml(path, env=False).mode is FeatureStoreMode.HYBRID


def test_env_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAURO_FS_MAX_RETRYS", "1")
    with pytest.raises(ConfigurationError, match="unknown option 'max_retrys'"):
        FeatureStoreConfig.from_env()
    monkeypatch.delenv("TAURO_FS_MAX_RETRYS")
    monkeypatch.setenv("TAURO_FS_MAX_RETRIES", "lots")
    with pytest.raises(ConfigurationError, match=r"max_retries.*'lots'"):
        resolve_config()
    monkeypatch.delenv("TAURO_FS_MAX_RETRIES")
    monkeypatch.setenv("TAURO_FS_MODE", "online")
    monkeypatch.setenv("TAURO_FS_MODE__X", "1")
    with pytest.raises(ConfigurationError, match="TAURO_FS_MODE__X conflicts"):
        env_overrides()


def test_env_overrides_from_a_given_mapping() -> None:
    assert env_overrides({"TAURO_FS_MODE": "hybrid", "TAURO_FS_": "x", "HOME": "/root"}) == {"mode": "hybrid"}


# -- resolve_config ---------------------------------------------------------------------


def test_resolve_config_with_no_context() -> None:
    assert resolve_config() == FeatureStoreConfig()
    assert resolve_config(storage_path=Path("repo")).storage_path == "repo"
    assert resolve_config(mode="online").mode is FeatureStoreMode.ONLINE


def test_resolve_config_with_a_dict_context() -> None:
    cfg = resolve_config(
        {"feature_store": {"mode": "virtualized", "max_retries": 1}}, config={"max_retries": 4}
    )
    assert cfg.mode is FeatureStoreMode.VIRTUALIZED and cfg.max_retries == 4
    assert resolve_config({"mode": "hybrid"}, storage_path="x", max_retries=9).max_retries == 9


def test_resolve_config_with_an_object_context() -> None:
    context = SimpleNamespace(
        feature_store_path="/tmp/test_features", feature_store_config={"mode": "hybrid"}
    )
    cfg = resolve_config(context)
    assert cfg.storage_path == "/tmp/test_features" and cfg.mode is FeatureStoreMode.HYBRID
    typed = SimpleNamespace(feature_store_config=FeatureStoreConfig(mode="online", max_retries=0))
    assert resolve_config(typed).max_retries == 0
    tauro_like = SimpleNamespace(
        global_settings={"feature_store": {"mode": "virtualized"}, "input_path": "/in"}
    )
    assert resolve_config(tauro_like).mode is FeatureStoreMode.VIRTUALIZED
    assert resolve_config(object()) == FeatureStoreConfig()


def test_resolve_config_precedence() -> None:
    context = SimpleNamespace(feature_store_config={"mode": "hybrid", "max_retries": 5})
    # an explicit option set to its default value still wins over the context
    cfg = resolve_config(context, config=FeatureStoreConfig(mode="materialized"))
    assert cfg.mode is FeatureStoreMode.MATERIALIZED and cfg.max_retries == 5
    ready = FeatureStoreConfig(mode="online")
    assert resolve_config(config=ready) == ready
    assert resolve_config(config=ready, storage_path="elsewhere").storage_path == "elsewhere"


def test_ready_config_ignores_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAURO_FS_MODE", "hybrid")
    ready = FeatureStoreConfig(mode="online")
    assert resolve_config(config=ready).mode is FeatureStoreMode.ONLINE
    assert resolve_config(config={"mode": "online"}).mode is FeatureStoreMode.HYBRID
