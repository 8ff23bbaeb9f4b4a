"""Reads of the materialized store: latest values, time travel, the result cache, management."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tauro_workbench import FeatureStoreConfig
from tauro_workbench.exceptions import FeatureMaterializationError, FeatureNotFoundError, PointInTimeError
from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tests.stores.conftest import StoreFactory, day, users_frame, users_schema


def orders(
    ids: list[int], shops: list[str], days: list[float], created: list[float], spend: list[float]
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ids,
            "shop": shops,
            "ts": [day(d) for d in days],
            "created": [day(c) for c in created],
            "spend": spend,
        }
    )


def test_latest_value_per_requested_entity_in_request_order(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 1, 2, 3], [0, 2, 1, 5], [10, 12, 20, 30]))
    got = store.get_features(["age", "users.city"], entity_ids={"user_id": [3, 1, 9, 1]}).collect()
    assert got.rows() == [(3, 30, "c30"), (1, 12, "c12"), (9, None, None), (1, 12, "c12")]
    as_of = store.get_features(["age"], entity_ids={"user_id": [1, 3]}, point_in_time=day(1)).collect()
    assert as_of.rows() == [(1, 10), (3, None)]


def test_every_entity_when_no_ids_are_given(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([2, 1, 2], [0, 0, 1], [20, 10, 21]))
    got = store.get_features(["age"], point_in_time=day(0.5)).collect()
    assert got.rows() == [(1, 10), (2, 20)]


def test_write_order_breaks_ties_of_equal_event_times(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 1], [0, 0], [10, 11]))  # later row wins in a write
    assert store.get_features(["age"], entity_ids={"user_id": [1]}).collect().item(0, "age") == 11
    store.write_features("users", users_frame([1], [0], [5]))  # a later write wins over both
    assert store.get_features(["age"], entity_ids={"user_id": [1]}).collect().item(0, "age") == 5


def test_ttl_counts_back_from_the_point_in_time_or_now(make_store: StoreFactory) -> None:
    store = make_store("delta")
    store.register_features(users_schema(ttl=timedelta(days=2)))
    store.write_features("users", users_frame([1, 2], [0, 3], [10, 20]))
    at = store.get_features(["age"], entity_ids={"user_id": [1, 2]}, point_in_time=day(2)).collect()
    assert at.rows() == [(1, 10), (2, None)]  # day 0 is exactly at the closed ttl boundary
    later = store.get_features(["age"], entity_ids={"user_id": [1, 2]}, point_in_time=day(4)).collect()
    assert later.rows() == [(1, None), (2, 20)]
    assert store.get_features(["age"], point_in_time=day(4)).collect().rows() == [(2, 20)]
    assert (
        store.get_features(["age"], entity_ids={"user_id": [1, 2]}).collect().get_column("age").null_count()
        == 2
    )


def test_composite_keys_match_as_tuples_across_groups(delta_store: MaterializedFeatureStore) -> None:
    delta_store.write_features("users", users_frame([1, 2], [0, 0], [10, 20]))
    delta_store.write_features(
        "orders",
        orders([1, 1, 2, 2], ["a", "b", "a", "a"], [0, 0, 0, 0], [0, 0, 0, 1], [1.0, 2.0, 3.0, 4.0]),
    )
    ids = {"user_id": [1, 2, 2], "shop": ["b", "a", "b"]}
    got = delta_store.get_features(["age", "spend"], entity_ids=ids).collect()
    # (2, "a") has two rows at the same event time: the greater created time wins
    assert got.rows() == [(1, "b", 10, 2.0), (2, "a", 20, 4.0), (2, "b", 20, None)]
    full = delta_store.get_features(["age", "spend"], entity_ids=ids, full_feature_names=True).collect()
    assert full.columns == ["user_id", "shop", "users__age", "orders__spend"]
    with pytest.raises(PointInTimeError, match="different entity keys"):
        delta_store.get_features(["age", "spend"])
    with pytest.raises(PointInTimeError, match="shop"):
        delta_store.get_features(["age", "spend"], entity_ids={"user_id": [1]})


def test_entity_filters_are_pushed_down_to_the_scan(make_store: StoreFactory) -> None:
    store = make_store("delta", materialized={"cache_enabled": False})  # a cached result has no scan
    store.register_features(users_schema())
    for start in (0, 100, 200):
        store.write_features("users", users_frame(list(range(start, start + 50)), [0] * 50, [1] * 50))
    plan = store.get_features(["age"], entity_ids={"user_id": [7, 120]}).explain()
    scan = next(line for line in plan.splitlines() if "SELECTION" in line)
    assert "is_in" in scan and "user_id" in scan
    assert "Parquet SCAN" in plan or "SCAN" in plan


def test_unknown_and_ambiguous_names_list_candidates(delta_store: MaterializedFeatureStore) -> None:
    with pytest.raises(FeatureNotFoundError, match=r"users\.age"):
        delta_store.get_features(["agee"])
    delta_store.register_features(users_schema(name="people"))
    with pytest.raises(FeatureNotFoundError, match="ambiguous"):
        delta_store.get_features(["age"], entity_ids={"user_id": [1]})
    with pytest.raises(PointInTimeError, match="differ in length"):
        delta_store.get_features(["spend"], entity_ids={"user_id": [1, 2], "shop": ["a"]})
    with pytest.raises(PointInTimeError, match="stored key types"):
        delta_store.write_features("users", users_frame([1], [0], [1]))
        delta_store.get_features(["users.age"], entity_ids={"user_id": ["x"]}).collect()


def test_reads_of_a_group_never_written_are_empty(store: MaterializedFeatureStore) -> None:
    got = store.get_features(["age"], entity_ids={"user_id": [1]}).collect()
    assert got.rows() == [(1, None)]
    assert store.scan_group("users").collect().height == 0
    assert store.last_read_info is not None and store.last_read_info.table_versions == {"users": None}


def test_cache_never_serves_stale_data(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1], [0], [10]))
    first = store.get_features(["age"], entity_ids={"user_id": [1]}).collect()
    again = store.get_features(["age"], entity_ids={"user_id": [1]}).collect()
    assert store.last_read_info is not None and store.last_read_info.cached
    assert_frame_equal(first, again)
    store.write_features("users", users_frame([1], [1], [11]))
    fresh = store.get_features(["age"], entity_ids={"user_id": [1]}).collect()
    assert fresh.item(0, "age") == 11 and not store.last_read_info.cached
    assert store.cache.hits == 1


def test_cache_is_bounded_and_can_be_disabled(make_store: StoreFactory) -> None:
    store = make_store("delta", materialized={"cache_enabled": False})
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [10]))
    store.get_features(["age"], entity_ids={"user_id": [1]})
    assert len(store.cache) == 0
    tiny = make_store(
        "parquet", root=Path(store.config.storage_path).parent / "tiny", materialized={"cache_size_mb": 1}
    )
    tiny.register_features(users_schema())
    tiny.write_features("users", users_frame(list(range(20_000)), [0] * 20_000, [1] * 20_000))
    for n in range(5):
        tiny.get_features(["age", "city"], entity_ids={"user_id": list(range(n, 20_000))}).collect()
    assert tiny.cache.size_bytes <= 1024 * 1024 and len(tiny.cache) < 5


def test_time_travel_by_version_and_by_datetime(make_store: StoreFactory) -> None:
    store = make_store("delta")
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [10]))
    from datetime import datetime

    between = datetime.now(UTC)
    store.write_features("users", users_frame([1], [1], [11]), mode="overwrite")
    assert store.scan_group("users", as_of=1).collect().get_column("age").to_list() == [10]
    assert store.scan_group("users", as_of=between).collect().get_column("age").to_list() == [10]
    assert store.last_read_info is not None and store.last_read_info.table_versions == {"users": 1}
    assert (
        store.get_features(["age"], entity_ids={"user_id": [1]}, as_of={"users": 1}).collect().item(0, "age")
        == 10
    )
    assert store.list_table_versions("users") == [0, 1, 2]
    assert store.history("users")[0]["operation"] == "WRITE"
    with pytest.raises(PointInTimeError, match="as_of"):
        store.scan_group("users", as_of=99)


def test_training_set_is_rebuilt_exactly_from_recorded_versions(make_store: StoreFactory) -> None:
    store = make_store("delta")
    store.register_features(users_schema())
    store.write_features("users", users_frame([1, 2], [0, 0], [10, 20]))
    labels = pl.DataFrame({"user_id": [1, 2], "when": [day(1), day(1)]})
    first = store.get_historical_features(labels, ["age"]).collect()
    info = store.last_read_info
    assert info is not None and info.operation == "get_historical_features" and info.plan
    store.write_features("users", users_frame([1], [0.5], [99]))
    assert store.get_historical_features(labels, ["age"]).collect().get_column("age").to_list() == [99, 20]
    rebuilt = store.get_historical_features(labels, ["age"], as_of=info.table_versions).collect()
    assert_frame_equal(rebuilt, first)


def test_parquet_has_no_time_travel(make_store: StoreFactory) -> None:
    store = make_store("parquet")
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [10]))
    store.write_features("users", users_frame([1], [1], [11]))
    with pytest.raises(PointInTimeError, match="no time travel"):
        store.scan_group("users", as_of=1)
    assert store.list_table_versions("users") == [1, 2]


def test_scan_group_windows_and_columns(store: MaterializedFeatureStore) -> None:
    store.write_features("users", users_frame([1, 1, 1], [0, 1, 2], [10, 11, 12]))
    got = store.scan_group("users", start=day(1), end=day(2), columns=["age"]).collect()
    assert got.rows() == [(11,)]
    with pytest.raises(FeatureNotFoundError, match="nope"):
        store.scan_group("users", columns=["nope"])


def test_historical_features_across_groups_with_different_keys(delta_store: MaterializedFeatureStore) -> None:
    delta_store.write_features("users", users_frame([1, 2], [0, 0], [10, 20]))
    delta_store.write_features("orders", orders([1, 1], ["a", "a"], [0, 2], [0, 0], [1.0, 2.0]))
    labels = pl.DataFrame({"user_id": [2, 1, 1], "shop": ["a", "a", "a"], "t": [day(1), day(1), day(3)]})
    got = delta_store.get_historical_features(labels, ["age", "spend"], full_feature_names=True).collect()
    assert got.columns == ["user_id", "shop", "t", "users__age", "orders__spend"]
    assert got.select("users__age", "orders__spend").rows() == [(20, None), (10, 1.0), (10, 2.0)]
    with pytest.raises(PointInTimeError, match="shop"):
        delta_store.get_historical_features(labels.drop("shop"), ["spend"])


def test_historical_features_of_a_group_without_event_time(make_store: StoreFactory) -> None:
    store = make_store("delta")
    store.register_features(users_schema(name="profile", timestamp_key=None))
    store.write_features("profile", pl.DataFrame({"user_id": [1, 1], "age": [1, 2], "city": ["a", "b"]}))
    labels = pl.DataFrame({"user_id": pl.Series([1, 3], dtype=pl.Int32), "t": [day(0), day(0)]})
    got = store.get_historical_features(labels, ["age"]).collect()
    assert got.columns == ["user_id", "t", "age"]
    assert got.get_column("age").to_list() == [2, None]


@pytest.mark.parametrize(
    "context",
    [
        None,
        {"materialized": {"cache_size_mb": 7}},
        SimpleNamespace(
            feature_store_path="SET", feature_store_config={"materialized": {"cache_size_mb": 7}}
        ),
    ],
)
def test_context_conventions(context: object, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    if isinstance(context, SimpleNamespace):
        context.feature_store_path = str(tmp_path)
    store = MaterializedFeatureStore(context, config=None if context is not None else FeatureStoreConfig())
    store.register_features(users_schema())
    store.write_features("users", users_frame([1], [0], [1]))
    assert store.table_uri("users").endswith("users/v1")
    if context is not None:
        assert store.cache.max_bytes == 7 * 1024 * 1024
    assert store.storage_format == "delta"


def test_reading_an_unmaterialized_virtual_group_is_a_clear_error(make_store: StoreFactory) -> None:
    store = make_store("delta")
    store.register_features(users_schema())
    store.metadata.put_document(VIRTUAL_DEFINITION_KIND, "users", {"sql": "SELECT 1"})
    with pytest.raises(FeatureMaterializationError, match="virtual and has not been materialized"):
        store.get_features(["age"], entity_ids={"user_id": [1]}).collect()
