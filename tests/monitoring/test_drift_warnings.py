"""No silent drift: a drifting write under on_drift="warn" emits a Python warning; small writes are
judged ``insufficient_data`` (drift.min_rows, default 100), not ``drift``."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tauro_workbench.config import DriftConfig
from tauro_workbench.exceptions import DriftWarning, FeatureStoreWarning
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tests.monitoring.conftest import transactions, transactions_schema


@pytest.fixture
def store(tmp_path: Path) -> MaterializedFeatureStore:
    store = MaterializedFeatureStore(storage_path=tmp_path)
    store.register_features(transactions_schema())
    return store


def test_a_drifting_write_with_warn_emits_a_drift_warning_and_is_committed(
    store: MaterializedFeatureStore,
) -> None:
    store.write_features("transactions", transactions(2_000, seed=1))
    with pytest.warns(DriftWarning, match=r"'transactions' v1: write #\d+ drifted in \[") as caught:
        record = store.write_features(
            "transactions", transactions(2_000, seed=2, shift=1.0, offset=10_000), on_drift="warn"
        )
    assert issubclass(caught[0].category, FeatureStoreWarning) and issubclass(caught[0].category, UserWarning)
    assert "on_drift='block'" in str(caught[0].message)
    assert record.rows == 2_000 and len(store.metadata.list_writes("transactions")) == 2


def test_a_similar_write_and_an_ignored_drift_emit_no_warning(store: MaterializedFeatureStore) -> None:
    store.write_features("transactions", transactions(2_000, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DriftWarning)
        store.write_features("transactions", transactions(2_000, seed=2, offset=10_000))
        store.write_features(
            "transactions", transactions(2_000, seed=3, shift=1.0, offset=20_000), on_drift="ignore"
        )


def test_writes_below_min_rows_are_insufficient_data_not_drift(store: MaterializedFeatureStore) -> None:
    assert DriftConfig().min_rows == 100
    store.write_features("transactions", transactions(50, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DriftWarning)
        store.write_features("transactions", transactions(50, seed=2, shift=1.0, offset=1_000))
    reports = store.monitor.reports("transactions")
    assert [r.verdict for r in reports] == ["no_reference", "insufficient_data"]


def test_min_rows_zero_judges_even_tiny_writes(tmp_path: Path) -> None:
    store = MaterializedFeatureStore(config={"storage_path": str(tmp_path), "drift": {"min_rows": 0}})
    store.register_features(transactions_schema())
    store.write_features("transactions", transactions(50, seed=1))
    with pytest.warns(DriftWarning):
        store.write_features("transactions", transactions(50, seed=2, shift=2.0, offset=1_000))
    assert store.monitor.reports("transactions")[-1].verdict == "drift"
