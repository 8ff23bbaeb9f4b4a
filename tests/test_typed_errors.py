"""A damaged registry row or a non-UTF-8 YAML file gives a typed error naming it, not a traceback."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureStoreConfig
from tauro_workbench.exceptions import (
    ConfigurationError,
    FeatureStoreWarning,
    MetadataError,
    RegistryCorruptionError,
    SchemaValidationError,
)
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.stores.materialized import MaterializedFeatureStore


def users(version: int = 1) -> FeatureGroupSchema:
    return FeatureGroupSchema(
        name="users",
        version=version,
        entity_keys=["user_id"],
        timestamp_key="ts",
        features=[FeatureSchema("age", DataType.INT)],
    )


def tamper(repo: Path, sql: str) -> None:
    with sqlite3.connect(repo / "registry.db") as conn:
        conn.execute(sql)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    metadata = FeatureStoreMetadata(tmp_path)
    metadata.register_feature_group(users())
    metadata.record_write("users", 1, mode="append", rows=3)
    metadata.put_document("virtual_definition", "users", {"sql": "SELECT 1"})
    metadata.close()
    return tmp_path


@pytest.mark.parametrize(
    ("sql", "read", "row"),
    [
        (
            "UPDATE feature_groups SET schema_json='{not json'",
            lambda m: m.get_feature_group("users"),
            "feature_groups users",
        ),
        (
            'UPDATE feature_groups SET schema_json=\'{"name": "users", "entity_keys": 3}\'',
            lambda m: m.get_feature_group("users"),
            "feature_groups users",
        ),
        ("UPDATE writes SET details='[1, 2'", lambda m: m.list_writes("users"), "writes id=1"),
        ("UPDATE writes SET written_at='yesterday'", lambda m: m.list_writes("users"), "writes id=1"),
        (
            "UPDATE documents SET payload='\"text\"'",
            lambda m: m.find_document("virtual_definition", "users"),
            "documents virtual_definition/users",
        ),
        (
            "UPDATE documents SET payload='{'",
            lambda m: m.list_documents("virtual_definition"),
            "documents virtual_definition/users",
        ),
    ],
)
def test_a_tampered_registry_row_raises_a_typed_error_naming_the_row(repo: Path, sql, read, row) -> None:  # type: ignore[no-untyped-def]
    tamper(repo, sql)
    metadata = FeatureStoreMetadata(repo)
    try:
        with pytest.raises(RegistryCorruptionError) as caught:
            read(metadata)
    finally:
        metadata.close()
    error = caught.value
    assert isinstance(error, MetadataError) and isinstance(error, ValueError)
    assert row in str(error) and str(repo / "registry.db") in str(error)
    assert error.hint is not None and "backup" in error.hint


def test_a_damaged_event_payload_names_the_event(repo: Path) -> None:
    metadata = FeatureStoreMetadata(repo)
    metadata.record_event("custom", {"a": 1}, group="users")
    metadata.close()
    tamper(repo, "UPDATE events SET payload='nope'")
    metadata = FeatureStoreMetadata(repo)
    try:
        with pytest.raises(RegistryCorruptionError, match=r"events id=\d+"):
            metadata.list_events()
    finally:
        metadata.close()


def test_non_utf8_config_yaml_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "tauro.yaml"
    path.write_bytes("storage_path: ./r\nmode: hybrid # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigurationError, match="not UTF-8") as caught:
        FeatureStoreConfig.from_yaml(path)
    assert str(path) in str(caught.value) and "UTF-8" in (caught.value.hint or "")


def test_non_utf8_or_broken_schema_yaml_is_a_schema_validation_error(tmp_path: Path) -> None:
    latin = tmp_path / "users.yaml"
    latin.write_bytes(users().to_yaml().replace("users", "us\xe9rs").encode("latin-1"))
    with pytest.raises(SchemaValidationError, match="not UTF-8"):
        FeatureGroupSchema.from_yaml(latin)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [users\n", encoding="utf-8")
    with pytest.raises(SchemaValidationError, match="not valid YAML"):
        FeatureGroupSchema.from_yaml(broken)
    with pytest.raises(SchemaValidationError, match="cannot read"):
        FeatureGroupSchema.from_yaml(tmp_path / "missing.yaml")


def test_reading_a_new_version_with_no_data_warns_when_an_older_version_has_data(tmp_path: Path) -> None:
    store = MaterializedFeatureStore(storage_path=tmp_path)
    store.register_features(users())
    store.write_features(
        "users",
        pl.DataFrame(
            {"user_id": [1], "ts": [datetime(2026, 1, 1, tzinfo=UTC)], "age": pl.Series([30], dtype=pl.Int32)}
        ),
    )
    store.register_features(
        FeatureGroupSchema(
            name="users",
            version=2,
            entity_keys=["user_id"],
            timestamp_key="ts",
            features=[FeatureSchema("age", DataType.INT), FeatureSchema("city", DataType.STRING)],
        )
    )
    with pytest.warns(FeatureStoreWarning, match=r"'users' v2 has no data yet.*v1 has data"):
        frame = store.get_features(["users.age"], entity_ids={"user_id": [1]}).collect()
    assert frame["age"].to_list() == [None]
