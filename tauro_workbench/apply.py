"""Apply a folder of YAML definitions to a repo: plan what changes, then change only that.

Applying is declarative and idempotent: each source, group, virtual definition and feature
view of the folder is compared with the registry, and the plan says for each one whether it
is created, updated (a new group version, a changed source or SQL, a new view version) or
unchanged. Applying the same folder twice changes nothing the second time. A group whose
schema differs from the registered one *at the same version* is a conflict, reported before
anything is written (bump ``version``).

Example:
    >>> plan = plan_apply(wb, load_definitions("sample_data/repo"))   # doctest: +SKIP
    >>> plan.summary()                                                # doctest: +SKIP
    '8 to create, 0 to update, 0 unchanged'
    >>> plan.execute(wb)                                              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tauro_workbench.exceptions import FeatureGroupNotFoundError, FeatureStoreException
from tauro_workbench.specs import GroupSpec, Located, RepoDefinitions, SourceSpec, ViewSpec, VirtualSpec

__all__ = ["ApplyPlan", "Change", "plan_apply"]

Action = Literal["create", "update", "unchanged"]
_SYMBOL = {"create": "+", "update": "~", "unchanged": "="}


@dataclass(frozen=True)
class Change:
    """One planned change: ``kind`` (source, group, virtual, view), ``name``, ``action``, why."""

    kind: str
    name: str
    action: Action
    detail: str
    item: Located = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "detail": self.detail,
            "file": self.item.file,
            "line": self.item.line,
        }

    def __str__(self) -> str:
        return f"{_SYMBOL[self.action]} {self.kind} {self.name}: {self.detail}"


@dataclass(frozen=True)
class ApplyPlan:
    """What applying a definitions folder changes, in apply order."""

    changes: list[Change]

    @property
    def pending(self) -> list[Change]:
        """The changes that are not ``unchanged``."""
        return [c for c in self.changes if c.action != "unchanged"]

    def summary(self) -> str:
        """Return e.g. ``'2 to create, 1 to update, 5 unchanged'``."""
        counts = {a: sum(c.action == a for c in self.changes) for a in ("create", "update", "unchanged")}
        return f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"summary": self.summary(), "changes": [c.to_dict() for c in self.changes]}

    def execute(self, workbench: Any) -> list[Change]:
        """Apply the pending changes in order; return them.

        Raises:
            SpecError: If the store rejects a definition (its file and line are named); the
                changes before it stay applied, and applying again continues from there.
        """
        for change in self.pending:
            spec = change.item.spec
            try:
                if isinstance(spec, SourceSpec):
                    options = dict(spec.options)
                    if spec.format is not None:
                        options["format"] = spec.format
                    workbench.add_source(spec.name, spec.location, **options)
                elif isinstance(spec, GroupSpec):
                    workbench.register(spec.to_schema())
                elif isinstance(spec, VirtualSpec):
                    workbench.define_virtual(spec.group, queries=spec.as_queries(), dialect=spec.dialect)
                elif isinstance(spec, ViewSpec):
                    workbench.feature_view(spec.name, spec.features, description=spec.description)
            except FeatureStoreException as err:
                raise change.item.error(
                    f"{change.kind} {change.name!r} was rejected: {one_line(err)}"
                ) from err
        return self.pending


def one_line(err: FeatureStoreException) -> str:
    """Return an error's message on one line (problems joined, a quoted query left out)."""
    text = getattr(err, "message", str(err)).split("\nQuery:\n")[0]
    lines = [part.strip() for part in text.splitlines() if part.strip()]
    if not lines:
        return type(err).__name__
    rest = [line.removeprefix("- ") for line in lines[1:]]
    return lines[0] + (" " + "; ".join(rest) if rest else "")


def plan_apply(workbench: Any, definitions: RepoDefinitions) -> ApplyPlan:
    """Compare ``definitions`` with what ``workbench``'s registry holds (None: an empty repo).

    Raises:
        SpecError: For a group that conflicts with a registered version, or a virtual
            definition of a group that is neither declared nor registered.
    """
    changes: list[Change] = []
    known_sources = {} if workbench is None else {s.name: s for s in workbench.sources()}
    for item in definitions.sources:
        spec: Any = item.spec
        old = known_sources.get(spec.name)
        if old is None:
            changes.append(Change("source", spec.name, "create", spec.location, item))
        elif _same_source(old, spec):
            changes.append(Change("source", spec.name, "unchanged", spec.location, item))
        else:
            changes.append(Change("source", spec.name, "update", f"{old.location} -> {spec.location}", item))
    declared: dict[str, int] = {}
    for item in definitions.groups:
        changes.append(_plan_group(workbench, item))
        declared[item.spec.name] = max(declared.get(item.spec.name, 0), item.spec.version)
    for item in definitions.virtual:
        changes.append(_plan_virtual(workbench, item, declared))
    for item in definitions.views:
        changes.append(_plan_view(workbench, item))
    return ApplyPlan(changes)


def _same_source(old: Any, spec: SourceSpec) -> bool:
    return (
        str(old.location) == spec.location
        and (spec.format is None or old.format == spec.format)
        and dict(old.options) == dict(spec.options)
    )


def _plan_group(workbench: Any, item: Located) -> Change:
    schema = item.spec.to_schema()
    label = f"{schema.name} v{schema.version}"
    if workbench is None:
        return Change("group", label, "create", f"{len(schema.features)} features", item)
    try:
        old = workbench.get_group(schema.name, schema.version)
    except FeatureGroupNotFoundError:
        try:
            latest = workbench.get_group(schema.name)
        except FeatureGroupNotFoundError:
            return Change("group", label, "create", f"{len(schema.features)} features", item)
        if latest.version > schema.version:
            raise item.error(
                f"group {schema.name!r} v{schema.version} is older than the registered v{latest.version}",
                hint="Declare the latest version (or a newer one) in the file.",
            ) from None
        return Change("group", label, "update", f"new version (registered: v{latest.version})", item)
    if old == schema:
        return Change("group", label, "unchanged", f"{len(schema.features)} features", item)
    raise item.error(
        f"group {schema.name!r} v{schema.version} is registered with a different schema",
        hint=f"Set 'version: {schema.version + 1}' to register the change as a new version.",
    )


def _plan_virtual(workbench: Any, item: Located, declared: dict[str, int]) -> Change:
    spec: VirtualSpec = item.spec
    if workbench is None and spec.group in declared:
        return Change("virtual", spec.group, "create", f"{len(spec.as_queries())} query(ies)", item)
    if spec.group in declared:
        version = declared[spec.group]
    elif workbench is None:
        raise item.error(
            f"virtual definition of unknown group {spec.group!r}", hint="Declare the group in groups/."
        )
    else:
        try:
            version = workbench.get_group(spec.group).version
        except FeatureGroupNotFoundError:
            raise item.error(
                f"virtual definition of unknown group {spec.group!r}",
                hint="Declare the group in groups/ or register it first.",
            ) from None
    try:
        old = workbench.virtual.get_definition(spec.group)
    except FeatureStoreException:
        return Change("virtual", spec.group, "create", f"{len(spec.as_queries())} query(ies)", item)
    dialect = spec.dialect or workbench.virtual.executor.dialect
    if old.queries == spec.as_queries() and old.dialect == dialect and old.version == version:
        return Change("virtual", spec.group, "unchanged", f"{len(old.queries)} query(ies)", item)
    return Change("virtual", spec.group, "update", "SQL changed", item)


def _plan_view(workbench: Any, item: Located) -> Change:
    spec: ViewSpec = item.spec
    if workbench is None:
        return Change("view", spec.name, "create", f"{len(spec.features)} features", item)
    try:
        old = workbench.feature_view(spec.name)
    except FeatureStoreException:
        return Change("view", spec.name, "create", f"{len(spec.features)} features", item)
    if list(old.features) == list(spec.features) and (old.description or "") == spec.description:
        return Change("view", spec.name, "unchanged", f"v{old.version}", item)
    return Change("view", spec.name, "update", f"new version (registered: v{old.version})", item)
