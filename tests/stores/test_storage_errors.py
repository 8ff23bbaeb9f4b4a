"""Typed errors for unusable storage paths and for time travel to vacuumed table versions."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tauro_workbench.exceptions import ConfigurationError, StoragePathError, TableVersionUnavailableError
from tauro_workbench.stores.materialized import MaterializedFeatureStore
from tests.stores.conftest import StoreFactory, users_frame, users_schema


@pytest.fixture
def immutable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder even root cannot write into (``chattr +i``)."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_storage_path_under_a_file_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "data.csv"
    blocker.write_text("a,b\n")
    for path in (blocker, blocker / "repo"):
        with pytest.raises(StoragePathError, match="is a file, not a folder") as caught:
            MaterializedFeatureStore(storage_path=path)
        assert isinstance(caught.value, ConfigurationError)
        assert caught.value.path == str(path) and "Pass a storage_path that is a folder" in str(caught.value)


def test_unwritable_storage_paths_are_named(immutable_folder: Path) -> None:
    with pytest.raises(StoragePathError, match="not writable") as existing:
        MaterializedFeatureStore(storage_path=immutable_folder)
    assert existing.value.path == str(immutable_folder)
    with pytest.raises(StoragePathError, match="permission denied") as below:
        MaterializedFeatureStore(storage_path=immutable_folder / "repo")
    assert str(immutable_folder) in below.value.path


@pytest.mark.parametrize("storage_format", ["delta", "parquet"])
def test_unusable_offline_path_fails_the_write_before_anything_is_recorded(
    make_store: StoreFactory, tmp_path: Path, storage_format: str
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = make_store(storage_format, materialized={"storage_path": str(blocker / "offline")})
    store.register_features(users_schema())
    with pytest.raises(StoragePathError, match="is a file") as caught:
        store.write_features("users", users_frame([1], [0], [1]))
    assert str(blocker) in caught.value.path
    assert store.metadata.list_writes("users") == []


def test_as_of_a_vacuumed_version_fails_at_read_time(delta_store: MaterializedFeatureStore) -> None:
    delta_store.write_features("users", users_frame([1, 2], [0, 1], [30, 40]))
    delta_store.write_features("users", users_frame([3], [2], [50]), mode="overwrite")
    assert delta_store.scan_group("users", as_of=1).collect().height == 2  # still readable
    time.sleep(0.01)
    assert delta_store.vacuum("users", retention_hours=0, dry_run=False)
    with pytest.raises(TableVersionUnavailableError, match="Table version 1 of") as caught:
        delta_store.scan_group("users", as_of=1)  # raised here, not at collect()
    err = caught.value
    assert (err.table_version, err.missing) == (1, 1) and err.uri == delta_store.table_uri("users")
    assert "vacuum" in str(err) and "retention_hours" in str(err)
    with pytest.raises(TableVersionUnavailableError):
        delta_store.get_features(["age"], as_of=1)
    assert delta_store.scan_group("users", as_of=2).collect().height == 1  # the latest is intact
    assert delta_store.scan_group("users").collect().height == 1
