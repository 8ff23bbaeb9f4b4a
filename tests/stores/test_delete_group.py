"""Deleting a group deletes its data: offline table, online rows, sync state; history is fenced."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tauro_workbench import DataType, FeatureSchema
from tauro_workbench.exceptions import FeatureGroupNotFoundError, FeatureStoreWarning
from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND
from tauro_workbench.stores.online_serving import SYNC_DOCUMENT
from tests.stores.conftest import StoreFactory, day, users_frame, users_schema


def retyped_schema():  # type: ignore[no-untyped-def]
    """The same name and version, another schema: age is now a string, city is gone."""
    return users_schema(
        features=[FeatureSchema("age", DataType.STRING), FeatureSchema("score", DataType.DOUBLE)]
    )


def retyped_frame(ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": ids, "ts": [day(5)] * len(ids), "age": [f"a{i}" for i in ids], "score": [0.5] * len(ids)}
    )


@pytest.fixture(params=["memory", "redis"])
def online_store_options(request: pytest.FixtureRequest) -> dict[str, object]:
    if request.param == "memory":
        return {"type": "memory"}
    return {"type": "redis", "url": request.getfixturevalue("redis_server").url}


def test_re_registering_a_deleted_group_serves_only_new_data(
    make_store: StoreFactory, online_store_options: dict[str, object]
) -> None:
    store = make_store(
        "delta", enable_online_store=True, sync_to_online=True, online_store=online_store_options
    )
    store.register_features(users_schema())
    store.write_features("users", users_frame([1, 2], [0, 1], [30, 40]), write_id="old-load")
    store.materialize_online("users")
    assert store.get_online_features(["age"], {"user_id": 1}) == {"age": 30}
    table = Path(store.table_uri("users"))

    deleted = store.delete_feature_group("users")
    assert (deleted.group, deleted.versions, deleted.tables) == ("users", (1,), 1)
    assert deleted.online_rows == 2
    assert not table.exists() and not list(table.parent.parent.glob("users*"))
    assert store.metadata.find_document(SYNC_DOCUMENT, "users") is None
    with pytest.raises(FeatureGroupNotFoundError):
        store.scan_group("users")

    store.register_features(retyped_schema())
    empty = store.scan_group("users").collect()
    assert empty.height == 0 and empty.schema["age"] == pl.String
    sync = store.materialize_online("users")
    assert sync.full and sync.rows == 0  # the old watermark did not survive
    assert store.get_online_features(["age", "score"], {"user_id": 1}) == {"age": None, "score": None}
    record = store.write_features("users", retyped_frame([1, 3]), write_id="old-load")  # a fresh history
    assert record.table_version == 1 and record.rows == 2
    got = store.scan_group("users").collect().sort("user_id")
    assert got.get_column("age").to_list() == ["a1", "a3"]
    assert store.get_online_features(["age"], {"user_id": 1}) == {"age": "a1"}
    assert store.get_online_features(["age"], {"user_id": 2}) == {"age": None}
    assert store.get_features(["age"], entity_ids={"user_id": [1, 2]}).collect().get_column(
        "age"
    ).to_list() == [
        "a1",
        None,
    ]
    assert [w.write_id for w in store.list_writes("users")] == ["old-load"]
    assert [
        w.details["table_id"] != record.details["table_id"] for w in store.metadata.list_writes("users")
    ] == [
        True,
        False,
    ]
    assert "deleted_at" in store.metadata.list_writes("users")[0].details  # kept, marked


@pytest.mark.parametrize("storage_format", ["delta", "parquet"])
def test_deleting_one_version_keeps_the_others(make_store: StoreFactory, storage_format: str) -> None:
    store = make_store(storage_format)
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [30]))
    store.register_features(users_schema(version=2))
    store.write_features("users", users_frame([2], [0], [40]))
    assert store.delete_feature_group("users", version=2).versions == (2,)
    assert store.metadata.list_versions("users") == [1]
    assert store.scan_group("users").collect().get_column("user_id").to_list() == [1]
    store.register_features(users_schema(version=2))
    with pytest.warns(FeatureStoreWarning, match="v2 has no data yet"):  # v2's old rows are gone
        assert store.scan_group("users").collect().height == 0
    with pytest.raises(FeatureGroupNotFoundError, match="no version 7"):
        store.delete_feature_group("users", version=7)
    with pytest.raises(FeatureGroupNotFoundError, match="not registered"):
        store.delete_feature_group("nope")
    store.metadata.put_document(VIRTUAL_DEFINITION_KIND, "users", {"sql": "SELECT 1"})
    store.delete_feature_group("users", version=2)
    assert store.metadata.find_document(VIRTUAL_DEFINITION_KIND, "users") is not None  # v1 remains
    store.delete_feature_group("users")
    assert store.metadata.find_document(VIRTUAL_DEFINITION_KIND, "users") is None
    assert store.metadata.list_feature_groups() == []


def test_a_reader_in_another_store_sees_the_new_registration(make_store: StoreFactory) -> None:
    writer = make_store("delta", metadata_cache_ttl_seconds=0)
    writer.register_features(users_schema())
    writer.write_features("users", users_frame([1, 2], [0, 1], [30, 40]))
    reader = make_store("delta", metadata_cache_ttl_seconds=0, materialized={"cache_enabled": False})
    assert reader.scan_group("users").collect().height == 2
    writer.delete_feature_group("users")
    writer.register_features(retyped_schema())
    writer.write_features("users", retyped_frame([5]))
    got = reader.scan_group("users").collect()
    assert got.get_column("user_id").to_list() == [5] and got.schema["age"] == pl.String
    assert [w.table_version for w in reader.list_writes("users")] == [1]


def test_a_reader_caching_results_is_not_served_the_deleted_tables_values(make_store: StoreFactory) -> None:
    writer = make_store("delta", metadata_cache_ttl_seconds=0)
    writer.register_features(users_schema())
    writer.write_features("users", users_frame([1], [0], [30]))
    reader = make_store("delta", metadata_cache_ttl_seconds=0)  # its result cache is on
    assert reader.get_features(["age"], {"user_id": [1]}).collect()["age"].to_list() == [30]
    assert reader.get_features(["age"], {"user_id": [1]}).collect()["age"].to_list() == [30]
    assert reader.last_read_info is not None and reader.last_read_info.cached
    writer.delete_feature_group("users")
    writer.register_features(users_schema())  # the same group version and table version again
    writer.write_features("users", users_frame([1], [0], [99]))
    assert reader.get_features(["age"], {"user_id": [1]}).collect()["age"].to_list() == [99]
    assert reader.last_read_info is not None and not reader.last_read_info.cached
