"""YAML definitions: sources, feature groups, virtual definitions, feature views and config.

Each YAML shape equals its Python object: a group file is what
:meth:`FeatureGroupSchema.to_dict` returns (``ttl: 7d`` also works), a source is
``{name, location, format, options}`` like :class:`~tauro_workbench.sources.DataSource`, a
virtual definition is the arguments of ``Workbench.define_virtual`` plus the group, a view is
the arguments of ``Workbench.feature_view``. Files are validated with pydantic; every error
names the file, the line and the key (``groups/users.yaml:12: features[1].data_type: ...``).

A definitions folder (what ``tauro-wb apply`` reads) looks like::

    sources.yaml          sources: [{name: silver.users, location: ../silver/users.parquet}]
    groups/*.yaml         one feature group per file (or a list of them)
    virtual/*.yaml        {group: user_purchases_daily, sql: "SELECT ..."} (or a list)
    views/*.yaml          {name: fraud_model, features: [user_features.age, ...]} (or a list)

Relative source locations are resolved against the folder of the file that names them.

Example:
    >>> doc = load_yaml("sample_data/repo/groups/user_features.yaml")  # doctest: +SKIP
    >>> parse(doc, GroupSpec).to_schema().name                          # doctest: +SKIP
    'user_features'
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.dtypes import TypeSpec
from tauro_workbench.exceptions import ConfigurationError, SchemaValidationError, SpecError
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema

__all__ = [
    "FeatureSpec",
    "GroupSpec",
    "RepoDefinitions",
    "SourceSpec",
    "Spec",
    "ViewSpec",
    "VirtualSpec",
    "YamlDocument",
    "load_config",
    "load_definitions",
    "load_yaml",
    "parse",
]

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


# -- YAML with line numbers ---------------------------------------------------------------
@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file that remembers the line of every key and item.

    Attributes:
        file: The path as given (used in messages).
        data: The parsed content (plain dicts, lists and scalars).
        lines: Path of keys/indexes -> 1-based line (``("features", 1, "data_type")``).
    """

    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict, repr=False)

    @property
    def folder(self) -> Path:
        """The folder of the file (relative paths in it are resolved against it)."""
        return Path(self.file).parent

    def locate(self, loc: Sequence[str | int]) -> tuple[int | None, str]:
        """Return the line and dotted key of the deepest known part of ``loc``.

        Parts that are not keys of the document (pydantic's union tags) are skipped.
        """
        path: Loc = ()
        shown: list[str | int] = []
        for part in loc:
            if (*path, part) in self.lines:
                path = (*path, part)
                shown.append(part)
            elif isinstance(part, str) and not _is_tag(part):
                shown.append(part)  # a missing key: reported at its parent's line
        return self.lines.get(path), _dotted(shown)

    def error(self, problem: str, loc: Sequence[str | int] = (), *, hint: str | None = None) -> SpecError:
        """Return a :class:`SpecError` for ``problem`` at ``loc``."""
        line, key = self.locate(loc)
        return SpecError(self.file, problem, line=line, key=key or None, hint=hint)


def _is_tag(part: str) -> bool:
    # pydantic puts union members ("list[str]") and validator names into locations
    return "[" in part or part.startswith("function-")


def _dotted(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_yaml(path: str | os.PathLike[str]) -> YamlDocument:
    """Read a YAML file, keeping the line of every key.

    Raises:
        SpecError: If the file is missing, not UTF-8, not valid YAML, or repeats a key.

    Example:
        >>> load_yaml("sample_data/repo/sources.yaml").data["sources"][0]["name"]  # doctest: +SKIP
        'silver.users'
    """
    file = os.fspath(path)
    try:
        raw = Path(file).read_bytes()
    except FileNotFoundError:
        raise SpecError(file, "file not found", hint="Check the path.") from None
    except IsADirectoryError:
        raise SpecError(file, "is a folder, not a YAML file") from None
    except OSError as err:
        raise SpecError(file, f"cannot be read ({err.strerror})") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SpecError(
            file,
            f"is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})",
            line=line,
            hint="Save the file as UTF-8.",
        ) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        if node is not None:
            _index(file, node, (), lines)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = f"is not valid YAML: {err.problem or err.context}"
        raise SpecError(file, problem, line=None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as err:
        raise SpecError(file, f"is not valid YAML: {err}") from None
    finally:
        loader.dispose()
    return YamlDocument(file, data, lines)


def _index(file: str, node: yaml.Node, path: Loc, lines: dict[Loc, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise SpecError(
                    file,
                    f"key {key!r} appears twice",
                    line=key_node.start_mark.line + 1,
                    key=_dotted([*path, key]),
                )
            seen.add(key)
            _index(file, value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(file, item, (*path, i), lines)


def parse(doc: YamlDocument, model: type[M], *, at: Loc = (), data: Any = None) -> M:
    """Validate ``doc.data`` (or ``data`` found at ``at`` in it) as ``model``.

    Raises:
        SpecError: Naming the file, line and key of the first problem (and how many more).
    """
    value = doc.data if data is None else data
    try:
        return model.model_validate(value)
    except ValidationError as err:
        problems = err.errors(include_url=False)
        first = problems[0]
        message = _message(first)
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        raise doc.error(message, (*at, *first["loc"])) from None


def _message(problem: Mapping[str, Any]) -> str:
    kind = problem["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    text = str(problem["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    if kind not in ("value_error", "assertion_error"):
        text += f" (got {problem.get('input')!r})"
    return text


def _problems(err: SchemaValidationError) -> str:
    return "; ".join(err.problems) + (f" ({err.hint})" if err.hint else "")


# -- the shapes ---------------------------------------------------------------------------
class Spec(BaseModel):
    """Base of every YAML shape: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(Spec):
    """One feature, as in :meth:`FeatureSchema.to_dict`."""

    name: str
    data_type: str
    feature_type: str | None = None
    description: str = ""
    nullable: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            TypeSpec.parse(value)
        except SchemaValidationError as err:
            raise ValueError(_problems(err)) from None
        return value

    def to_schema(self) -> FeatureSchema:
        """Return the :class:`FeatureSchema`."""
        return FeatureSchema.from_dict(self.model_dump())


class GroupSpec(Spec):
    """A feature group, as in :meth:`FeatureGroupSchema.to_dict` (``ttl: 7d`` or ``ttl_seconds``)."""

    name: str
    version: int = 1
    entity_keys: list[str] | str
    timestamp_key: str | None = None
    created_timestamp_key: str | None = None
    description: str = ""
    owner: str | None = None
    ttl: str | float | None = None
    ttl_seconds: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    entity_key_types: dict[str, str] = Field(default_factory=dict)
    features: list[FeatureSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid_schema(self) -> GroupSpec:
        try:
            self.to_schema()
        except SchemaValidationError as err:
            raise ValueError(_problems(err)) from None
        return self

    def to_schema(self) -> FeatureGroupSchema:
        """Return the :class:`FeatureGroupSchema`."""
        data = self.model_dump(exclude={"features", "ttl", "ttl_seconds"})
        data["features"] = [f.to_schema() for f in self.features]
        if self.ttl is not None and self.ttl_seconds is not None:
            raise ValueError("give either 'ttl' or 'ttl_seconds', not both")
        data["ttl"] = self.ttl if self.ttl is not None else self.ttl_seconds
        return FeatureGroupSchema(**data)

    @classmethod
    def from_schema(cls, schema: FeatureGroupSchema) -> GroupSpec:
        """Return the spec of a schema (``GroupSpec.from_schema(s).to_schema() == s``)."""
        return cls.model_validate(schema.to_dict())


class SourceSpec(Spec):
    """A named source, as in :class:`~tauro_workbench.sources.DataSource` (``options``: reader options)."""

    name: str
    location: str
    format: Literal["parquet", "delta", "csv"] | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    def resolved(self, folder: Path) -> SourceSpec:
        """Return the spec with a relative ``location`` made absolute against ``folder``."""
        if "://" in self.location or Path(self.location).is_absolute():
            return self
        return self.model_copy(update={"location": str((folder / self.location).resolve())})


class SourcesFile(Spec):
    """``sources.yaml``: ``sources:`` followed by a list of sources."""

    sources: list[SourceSpec] = Field(default_factory=list)


class VirtualSpec(Spec):
    """A virtual definition: ``group`` plus one ``sql`` for the group or ``queries`` per feature."""

    group: str
    sql: str | None = None
    queries: dict[str, str] | None = None
    dialect: Literal["duckdb", "spark"] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> VirtualSpec:
        if (self.sql is None) == (self.queries is None):
            raise ValueError("give exactly one of 'sql' (the whole group) or 'queries' (one per feature)")
        return self

    def as_queries(self) -> dict[str, str]:
        """Return the definition as ``{feature or "*": sql}`` (what the registry stores)."""
        return {"*": self.sql} if self.sql is not None else dict(self.queries or {})


class ViewSpec(Spec):
    """A feature view: a named, versioned list of ``group.feature`` names."""

    name: str
    features: list[str] = Field(min_length=1)
    description: str = ""


# -- a definitions folder -----------------------------------------------------------------
@dataclass(frozen=True)
class Located:
    """A spec with where it came from (for messages)."""

    spec: Any
    file: str
    line: int | None

    def error(self, problem: str, *, hint: str | None = None) -> SpecError:
        """Return a :class:`SpecError` pointing at this spec."""
        return SpecError(self.file, problem, line=self.line, hint=hint)


@dataclass(frozen=True)
class RepoDefinitions:
    """Everything a definitions folder declares, in apply order."""

    folder: Path
    sources: list[Located] = field(default_factory=list)
    groups: list[Located] = field(default_factory=list)
    virtual: list[Located] = field(default_factory=list)
    views: list[Located] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of definitions."""
        return len(self.sources) + len(self.groups) + len(self.virtual) + len(self.views)


_FOLDERS: dict[str, type[Spec]] = {"groups": GroupSpec, "virtual": VirtualSpec, "views": ViewSpec}


def load_definitions(folder: str | os.PathLike[str]) -> RepoDefinitions:
    """Read ``sources.yaml``, ``groups/``, ``virtual/`` and ``views/`` of a definitions folder.

    Raises:
        SpecError: If the folder does not exist, declares nothing, or a file is invalid; or
            if two files declare the same name.

    Example:
        >>> load_definitions("sample_data/repo").count  # doctest: +SKIP
        6
    """
    root = Path(folder)
    if not root.is_dir():
        raise SpecError(str(root), "is not a folder of YAML definitions", hint="Check the path.")
    found = RepoDefinitions(root)
    sources_file = next((root / n for n in ("sources.yaml", "sources.yml") if (root / n).is_file()), None)
    if sources_file is not None:
        doc = load_yaml(sources_file)
        parsed = parse(doc, SourcesFile, data=doc.data if doc.data is not None else {})
        for i, spec in enumerate(parsed.sources):
            found.sources.append(Located(spec.resolved(doc.folder), doc.file, doc.lines.get(("sources", i))))
    for sub, model in _FOLDERS.items():
        target = getattr(found, sub)
        for file in sorted([*(root / sub).glob("*.yaml"), *(root / sub).glob("*.yml")]):
            doc = load_yaml(file)
            items = doc.data if isinstance(doc.data, list) else [doc.data]
            for i, item in enumerate(items):
                at: Loc = (i,) if isinstance(doc.data, list) else ()
                if not isinstance(item, Mapping):
                    raise doc.error(f"must be a mapping describing one {sub[:-1]} (or a list of them)", at)
                target.append(Located(parse(doc, model, at=at, data=item), doc.file, doc.lines.get(at)))
    _check_unique(found)
    if found.count == 0:
        raise SpecError(
            str(root),
            "declares nothing",
            hint="Add sources.yaml, groups/*.yaml, virtual/*.yaml or views/*.yaml.",
        )
    return found


def _check_unique(found: RepoDefinitions) -> None:
    for kind, items, key in (
        ("source", found.sources, "name"),
        ("group", found.groups, "name"),
        ("virtual definition of group", found.virtual, "group"),
        ("view", found.views, "name"),
    ):
        seen: dict[tuple[str, int], Located] = {}
        for item in items:
            name = getattr(item.spec, key)
            ident = (name, getattr(item.spec, "version", 0))
            if ident in seen:
                first = seen[ident]
                raise item.error(f"{kind} {name!r} is declared twice (first at {first.file}:{first.line})")
            seen[ident] = item


# -- config -------------------------------------------------------------------------------
def load_config(path: str | os.PathLike[str]) -> FeatureStoreConfig:
    """Read a ``tauro.yaml`` (or a Tauro ``global.yaml`` with a ``feature_store:`` section).

    ``TAURO_FS_*`` environment variables apply on top, as with
    :meth:`FeatureStoreConfig.from_yaml`.

    Raises:
        SpecError: Naming the file, line and option of the first invalid option.

    Example:
        >>> load_config("feature_repo/tauro.yaml").mode  # doctest: +SKIP
        <FeatureStoreMode.HYBRID: 'hybrid'>
    """
    doc = load_yaml(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, Mapping):
        raise doc.error("must hold a mapping of options")
    prefix: Loc = ("feature_store",) if isinstance(data.get("feature_store"), Mapping) else ()
    try:
        return FeatureStoreConfig.from_dict(data)
    except ConfigurationError as err:
        problems = getattr(err, "problems", None)
        if not problems:
            raise doc.error(str(err)) from None
        loc, text = problems[0]
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in str(loc).split(".") if p]
        problem = text.format(loc=".".join(str(p) for p in parts))
        problem = problem.removeprefix(".".join(str(p) for p in parts) + ": ")
        raise doc.error(problem, (*prefix, *parts)) from None
