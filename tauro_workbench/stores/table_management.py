"""Table management of the materialized store: commits, versions, vacuum, write history, deletion.

:class:`TableManagementMixin` gives :class:`~tauro_workbench.stores.materialized.MaterializedFeatureStore`
the verbs that manage a group's tables rather than read or write rows. It relies on the store's
``metadata``, ``config`` and ``_table(schema)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tauro_workbench.registry import FeatureStoreMetadata, WriteRecord
from tauro_workbench.stores.group_deletion import DeletedGroup, delete_group
from tauro_workbench.stores.reconcile import reconcile_table

if TYPE_CHECKING:
    from tauro_workbench.config import FeatureStoreConfig
    from tauro_workbench.schema import FeatureGroupSchema
    from tauro_workbench.stores.offline_table import OfflineTable

__all__ = ["TableManagementMixin"]


class TableManagementMixin:
    """History, versions, vacuum, reconciliation and deletion of a store's tables."""

    metadata: FeatureStoreMetadata
    config: FeatureStoreConfig
    _table: Callable[[FeatureGroupSchema], OfflineTable]  # the store's table of a group version

    def history(self, feature_group: str, *, version: int | None = None) -> list[dict[str, object]]:
        """Return the table commits of a group version, newest first (Delta ``history()``)."""
        return self._table(self.metadata.get_feature_group(feature_group, version)).history()

    def list_table_versions(self, feature_group: str, *, version: int | None = None) -> list[int]:
        """Return the table versions of a group version, ascending (usable as ``as_of``)."""
        return sorted(int(str(c["version"])) for c in self.history(feature_group, version=version))

    def vacuum(
        self,
        feature_group: str,
        *,
        version: int | None = None,
        retention_hours: int = 168,
        dry_run: bool = True,
    ) -> list[str]:
        """Delete files unreferenced for ``retention_hours`` (Delta); return them.

        Time travel to versions older than the retention stops working afterwards.
        """
        table = self._table(self.metadata.get_feature_group(feature_group, version))
        return table.vacuum(retention_hours=retention_hours, dry_run=dry_run)

    def list_writes(
        self, feature_group: str, *, version: int | None = None, limit: int | None = None
    ) -> list[WriteRecord]:
        """Return the write history of a group, oldest first, after reconciling it with the log.

        Commits the registry missed (a crash between commit and record) are recorded first, so
        every data version of the table has exactly one record. Records of deleted
        registrations of the group are left out (the registry keeps them).

        Args:
            feature_group: A registered group.
            version: One schema version (None: every version).
            limit: Return only the newest ``limit`` writes.

        Example:
            >>> [w.table_version for w in store.list_writes("user_features")]  # doctest: +SKIP
            [1, 2, 3]
        """
        self.reconcile(feature_group, version=version)
        live = [r for r in self.metadata.list_writes(feature_group, version) if "deleted_at" not in r.details]
        return live if limit is None else live[-limit:] if limit > 0 else []

    def reconcile(self, feature_group: str | None = None, *, version: int | None = None) -> list[WriteRecord]:
        """Record every table commit that has no write record (see :mod:`~.reconcile`).

        Args:
            feature_group: One group (None: every registered group).
            version: One schema version of it (None: every version).

        Returns:
            The records created (empty when the history was complete).

        Raises:
            MetadataError: If the registry cannot be written.

        Example:
            >>> store.reconcile()  # doctest: +SKIP
            []
        """
        groups = [feature_group] if feature_group is not None else self.metadata.list_feature_groups()
        created: list[WriteRecord] = []
        for name in groups:
            versions = [version] if version is not None else self.metadata.list_versions(name)
            for v in versions:
                schema = self.metadata.get_feature_group(name, v)
                table = self._table(schema)
                created += reconcile_table(
                    self.metadata, schema, table, online_pending=self.config.sync_to_online
                )
        return created

    def delete_feature_group(self, name: str, version: int | None = None) -> DeletedGroup:
        """Delete a group version (every version when None): online rows, offline table, registry.

        Re-registering the name afterwards (any schema) starts from empty tables; write
        records are kept, marked deleted. See :mod:`tauro_workbench.stores.group_deletion`.

        Raises:
            FeatureGroupNotFoundError: If the group or version is not registered.
            OnlineStoreError: If the online rows cannot be deleted (nothing else is changed).

        Example:
            >>> store.delete_feature_group("users")  # doctest: +SKIP
            DeletedGroup(group='users', versions=(1,), tables=1, online_rows=0)
        """
        return delete_group(self, name, version)  # type: ignore[arg-type]
