"""FeatureView: a named, versioned list of features kept in the registry.

One view serves training and serving alike (like Feast feature services or Hopsworks feature
views): ``wb.get_historical_features(labels, view)`` builds the training set and
``wb.get_online_features(view, entity_keys=...)`` serves the same columns. Saving the same
features again is a no-op; saving different ones adds a version, and old versions stay readable.
The registry keeps one document per view (kind ``feature_view``) holding every version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tauro_workbench.exceptions import FeatureNotFoundError, SchemaValidationError
from tauro_workbench.retrieval import resolve_features
from tauro_workbench.schema import validate_identifier

if TYPE_CHECKING:
    from tauro_workbench.registry import FeatureStoreMetadata

__all__ = ["FEATURE_VIEW_KIND", "FeatureView", "find_feature_view", "get_feature_view", "save_feature_view"]

FEATURE_VIEW_KIND = "feature_view"


@dataclass(frozen=True)
class FeatureView:
    """A saved feature list.

    Attributes:
        name: The view's name.
        version: Its version (1, 2, ...; a new one whenever the features change).
        features: Qualified names (``group.feature``), in output order.
        description: Free text.
        created_at: When this version was saved (UTC).
    """

    name: str
    version: int
    features: tuple[str, ...]
    description: str = ""
    created_at: datetime | None = None

    @property
    def groups(self) -> list[str]:
        """The feature groups the view reads, in first-appearance order."""
        return list(dict.fromkeys(f.split(".", 1)[0] for f in self.features))

    def to_dict(self) -> dict[str, Any]:
        """Return the view as JSON-ready data."""
        return {
            "name": self.name,
            "version": self.version,
            "features": list(self.features),
            "description": self.description,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
        }

    def __repr__(self) -> str:
        return f"FeatureView({self.name!r} v{self.version}: {', '.join(self.features)})"

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


def save_feature_view(
    metadata: FeatureStoreMetadata, name: str, features: Sequence[str], *, description: str = ""
) -> FeatureView:
    """Save a view: a new version when the features or description changed, else the latest.

    Bare feature names are stored qualified (``group.feature``) as they resolve now.

    Raises:
        SchemaValidationError: For a bad view name or an empty feature list.
        FeatureNotFoundError: For unknown or ambiguous features.
    """
    validate_identifier(name, "Feature view name")
    if isinstance(features, str) or not list(features):
        raise SchemaValidationError(
            f"feature view {name!r} needs a non-empty list of features, got {features!r}"
        )
    qualified = tuple(r.qualified for r in resolve_features(metadata, list(features)))
    doc = metadata.find_document(FEATURE_VIEW_KIND, name) or {"versions": []}
    versions: list[dict[str, Any]] = list(doc["versions"])
    if versions:
        latest = versions[-1]
        if tuple(latest["features"]) == qualified and latest.get("description", "") == description:
            return _from_entry(name, latest)
    entry = {
        "version": len(versions) + 1,
        "features": list(qualified),
        "description": description,
        "created_at": datetime.now(UTC).isoformat(),
    }
    metadata.put_document(FEATURE_VIEW_KIND, name, {"versions": [*versions, entry]})
    return _from_entry(name, entry)


def find_feature_view(
    metadata: FeatureStoreMetadata, name: str, version: int | None = None
) -> FeatureView | None:
    """Return a saved view (latest version when None), or None."""
    doc = metadata.find_document(FEATURE_VIEW_KIND, name)
    if doc is None or not doc.get("versions"):
        return None
    entries = doc["versions"]
    if version is None:
        return _from_entry(name, entries[-1])
    for entry in entries:
        if int(entry["version"]) == version:
            return _from_entry(name, entry)
    return None


def get_feature_view(metadata: FeatureStoreMetadata, name: str, version: int | None = None) -> FeatureView:
    """Return a saved view (latest version when None).

    Raises:
        FeatureNotFoundError: If no such view (version) is saved; the saved views are listed.
    """
    view = find_feature_view(metadata, name, version)
    if view is None:
        known = sorted(metadata.list_documents(FEATURE_VIEW_KIND))
        raise FeatureNotFoundError(
            name,
            candidates=known,
            reason=f"No feature view {name!r}" + ("" if version is None else f" v{version}") + " is saved.",
        )
    return view


def _from_entry(name: str, entry: dict[str, Any]) -> FeatureView:
    created = entry.get("created_at")
    return FeatureView(
        name,
        int(entry["version"]),
        tuple(entry["features"]),
        entry.get("description", ""),
        None if created is None else datetime.fromisoformat(created),
    )
