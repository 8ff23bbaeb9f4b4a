"""Deleting a feature group: registry, offline table and online rows together.

``MaterializedFeatureStore.delete_feature_group(name, version=None)`` deletes, per version:

1. the group's online rows and sync token (when an online store is configured), first, so a
   failure there leaves everything else in place;
2. the offline table: the folder is renamed to ``<group>/.deleted-v<version>-<uuid>`` (atomic:
   readers see the whole table or none) under the table's commit lock, then removed;
3. the registry entry (schema; the write records are kept but marked ``deleted_at`` and are no
   longer matched by ``write_id`` or reconciliation) and the group's online-sync and
   reconciliation documents; with the last version, the group's virtual definition too.

Re-registering the same name and version afterwards starts from an empty table with the new
schema; the old rows, dtypes and online values are gone. A crash midway leaves the group
registered with part of its data gone: run the delete again to finish it. Do not delete a group
while other processes are writing to it (a writer holding a stale schema could recreate the
table).

Example:
    >>> store.delete_feature_group("users")  # doctest: +SKIP
    DeletedGroup(group='users', versions=(1, 2), tables=2, online_rows=1000)
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from tauro_workbench.stores.base import VIRTUAL_DEFINITION_KIND
from tauro_workbench.stores.commit_lock import commit_lock
from tauro_workbench.stores.online_serving import SYNC_DOCUMENT
from tauro_workbench.stores.reconcile import RECONCILE_DOCUMENT, reconcile_key

if TYPE_CHECKING:
    from tauro_workbench.stores.materialized import MaterializedFeatureStore

__all__ = ["DeletedGroup", "delete_group"]


@dataclass(frozen=True)
class DeletedGroup:
    """What :func:`delete_group` removed.

    Attributes:
        group: The group name.
        versions: The schema versions deleted.
        tables: Offline tables removed.
        online_rows: Online rows removed (0 without an online store).
    """

    group: str
    versions: tuple[int, ...]
    tables: int
    online_rows: int


def delete_group(store: MaterializedFeatureStore, name: str, version: int | None = None) -> DeletedGroup:
    """Delete one version of a group (every version when None): online rows, table, registry.

    Raises:
        FeatureGroupNotFoundError: If the group (or that version) is not registered.
        OnlineStoreError: If the online store cannot delete the rows (nothing else is changed).
    """
    schemas = [store.metadata.get_feature_group(name, version)]
    if version is None:
        schemas = [store.metadata.get_feature_group(name, v) for v in store.metadata.list_versions(name)]
    online_rows = tables = 0
    online = (
        store.config.enable_online_store or store.config.sync_to_online or store._online_store is not None
    )
    for schema in schemas:
        if online:
            online_rows += store.online.delete_group(schema)
        table = store._table(schema)
        if table.path.exists():
            trash = table.path.with_name(f".deleted-v{schema.version}-{uuid.uuid4().hex}")
            with commit_lock(table.path, timeout_seconds=store.config.lock_timeout_seconds):
                os.rename(table.path, trash)
            shutil.rmtree(trash, ignore_errors=True)
            tables += 1
        store.metadata.delete_feature_group(schema.name, schema.version)
        store.metadata.delete_document(RECONCILE_DOCUMENT, reconcile_key(schema))
        sync = store.metadata.find_document(SYNC_DOCUMENT, schema.name)
        if sync is not None and sync.get("version") == schema.version:
            store.metadata.delete_document(SYNC_DOCUMENT, schema.name)
        store._tables.pop((schema.name, schema.version), None)
    if not store.metadata.list_versions(name):
        store.metadata.delete_document(VIRTUAL_DEFINITION_KIND, name)
    store.cache.clear()
    folder = store.config.offline_path / name
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    result = DeletedGroup(name, tuple(s.version for s in schemas), tables, online_rows)
    logger.info("deleted {}", result)
    return result
