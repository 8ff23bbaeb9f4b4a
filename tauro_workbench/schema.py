"""Feature and feature-group schemas: typed, validated at construction, serializable.

Example:
    >>> from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType
    >>> group = FeatureGroupSchema(
    ...     name="transaction_features",
    ...     entity_keys=["transaction_id"],
    ...     timestamp_key="transaction_date",
    ...     features=[FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL)],
    ... )
    >>> group.feature_names
    ['amount']
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import yaml

from tauro_workbench.dtypes import DataType, TypeSpec
from tauro_workbench.exceptions import FeatureNotFoundError, SchemaValidationError

if TYPE_CHECKING:
    import pyarrow as pa

    from tauro_workbench.frames import FrameLike

__all__ = [
    "DataType",
    "FeatureGroupSchema",
    "FeatureSchema",
    "FeatureType",
    "validate_identifier",
]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
RESERVED_PREFIX = "_tauro"
_CONSTRAINT_KEYS = ("min", "max", "allowed_values")
_TTL_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def validate_identifier(name: object, what: str) -> str:
    """Return ``name`` if it is a safe identifier (letters, digits, ``_``; used in paths and SQL).

    Raises:
        SchemaValidationError: If the name is empty, too long, has other characters, or uses
            the reserved ``_tauro`` prefix.
    """
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise SchemaValidationError(
            f"{what} {name!r} is not a valid name",
            hint="Use 1-128 letters, digits or underscores, not starting with a digit.",
        )
    if name.lower().startswith(RESERVED_PREFIX):
        raise SchemaValidationError(f"{what} {name!r} uses the reserved prefix {RESERVED_PREFIX!r}")
    return name


class FeatureType(str, Enum):  # noqa: UP042 - str() and format() keep the Enum behaviour
    """The semantic kind of a feature (case-insensitive when given as a string)."""

    NUMERICAL = "NUMERICAL"
    CATEGORICAL = "CATEGORICAL"
    TEXT = "TEXT"
    VECTOR = "VECTOR"
    TIMESERIES = "TIMESERIES"
    COMPLEX = "COMPLEX"

    @classmethod
    def _missing_(cls, value: object) -> FeatureType | None:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None

    @classmethod
    def infer(cls, spec: TypeSpec) -> FeatureType:
        """Return the usual feature type of a data type (used when none is given)."""
        if spec.is_numeric:
            return cls.NUMERICAL
        if spec.base in (DataType.STRING, DataType.BOOLEAN):
            return cls.CATEGORICAL
        if spec.base is DataType.ARRAY:
            return cls.VECTOR
        if spec.base in (DataType.TIMESTAMP, DataType.DATE):
            return cls.TIMESERIES
        return cls.COMPLEX


def _enum(kind: type[DataType] | type[FeatureType], value: object, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise SchemaValidationError(f"{what} {value!r} is not one of {', '.join(kind.__members__)}") from None


@dataclass(frozen=True)
class FeatureSchema:
    """One feature: name, data type, semantic type, nullability and metadata.

    ``data_type`` takes a :class:`DataType`, or a type string with parameters such as
    ``"DECIMAL(12,2)"`` or ``"ARRAY<DOUBLE>"``; the full type is in :attr:`spec`. ``metadata``
    may hold the constraints ``min``, ``max`` and ``allowed_values``, checked on every write;
    other keys (``unit``, ...) are free-form documentation.

    Example:
        >>> FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL).spec
        TypeSpec(base=<DataType.DOUBLE: 'DOUBLE'>, precision=None, scale=None, element=None, key=None, value=None, fields=())
    """

    name: str
    data_type: DataType | TypeSpec | str
    feature_type: FeatureType | str | None = None
    description: str = ""
    nullable: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    # an init field so that dataclasses.replace() keeps parameters such as DECIMAL(12,2)
    # (None only until __post_init__ derives it from data_type)
    spec: TypeSpec = field(default=None, repr=False, compare=True, kw_only=True)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        validate_identifier(self.name, "Feature name")
        raw = self.data_type
        if isinstance(self.spec, TypeSpec) and raw is self.spec.base:
            spec = self.spec
        elif isinstance(raw, str) and not isinstance(raw, DataType):
            spec = TypeSpec.parse(raw)
        elif isinstance(raw, (DataType, TypeSpec)):
            spec = TypeSpec.of(raw)
        else:
            raise SchemaValidationError(f"feature {self.name!r}: data type {raw!r} is not a DataType")
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "data_type", spec.base)
        kind = FeatureType.infer(spec) if self.feature_type is None else self.feature_type
        object.__setattr__(self, "feature_type", _enum(FeatureType, kind, "Feature type"))
        if not isinstance(self.metadata or {}, Mapping):
            raise SchemaValidationError(
                f"feature {self.name!r}: metadata must be a mapping, got {self.metadata!r}"
            )
        object.__setattr__(self, "metadata", dict(self.metadata or {}))
        self._check_constraints()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def _check_constraints(self) -> None:
        meta = self.metadata
        low, high = meta.get("min"), meta.get("max")
        if low is not None and high is not None:
            try:
                inverted = bool(low > high)
            except TypeError:
                raise SchemaValidationError(
                    f"feature {self.name!r}: metadata min {low!r} and max {high!r} cannot be compared"
                ) from None
            if inverted:
                raise SchemaValidationError(f"feature {self.name!r}: metadata min {low!r} > max {high!r}")
        allowed = meta.get("allowed_values")
        if allowed is not None and (isinstance(allowed, (str, bytes)) or not isinstance(allowed, Sequence)):
            raise SchemaValidationError(
                f"feature {self.name!r}: metadata allowed_values must be a list, got {allowed!r}"
            )

    @property
    def polars_dtype(self) -> pl.DataType:
        """The Polars type of this feature."""
        return self.spec.to_polars()

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type of this feature."""
        return self.spec.to_arrow()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``from_dict`` reads it back)."""
        assert isinstance(self.feature_type, FeatureType)
        return {
            "name": self.name,
            "data_type": str(self.spec),
            "feature_type": self.feature_type.value,
            "description": self.description,
            "nullable": self.nullable,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        """Build a feature from a dict such as ``{"name": "age", "data_type": "INT"}``."""
        known = {"name", "data_type", "feature_type", "description", "nullable", "metadata"}
        unknown = set(data) - known
        if unknown:
            raise SchemaValidationError(
                f"feature {data.get('name')!r}: unknown keys {sorted(unknown)}; valid keys: {sorted(known)}"
            )
        if "name" not in data or "data_type" not in data:
            raise SchemaValidationError(f"a feature needs 'name' and 'data_type', got {dict(data)!r}")
        return cls(**dict(data))


def _seconds(seconds: float, given: object) -> timedelta:
    if not math.isfinite(seconds):
        raise SchemaValidationError(f"ttl must be a finite duration, got {given!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise SchemaValidationError(f"ttl {given!r} is too large (at most {timedelta.max})") from None


def _parse_ttl(value: object) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        ttl = value
    elif isinstance(value, bool):
        raise SchemaValidationError(f"ttl must be a duration, got {value!r}")
    elif isinstance(value, (int, float)):
        ttl = _seconds(value, value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([wdhms]?)\s*", value.lower())
        if match is None:
            raise SchemaValidationError(
                f"ttl {value!r} is not a duration", hint="Use e.g. '7d', '12h', '30m', '45s' or seconds."
            )
        ttl = _seconds(float(match.group(1)) * _TTL_UNITS[match.group(2) or "s"], value)
    else:
        raise SchemaValidationError(f"ttl must be a timedelta, seconds or a string like '7d', got {value!r}")
    if ttl <= timedelta(0):
        raise SchemaValidationError(f"ttl must be positive, got {value!r}")
    return ttl


@dataclass(frozen=True)
class FeatureGroupSchema:
    """A group of features sharing entity keys, an event time and a lifecycle.

    Args:
        name: Group name (a safe identifier; used in paths).
        version: Schema version, >= 1. A changed schema needs a new version.
        entity_keys: Columns identifying an entity, e.g. ``["user_id"]``.
        timestamp_key: Event-time column, or None for groups with no event time.
        description: Free text.
        features: The features (not including keys or timestamps).
        tags: Free-form labels.
        ttl: How long a value stays valid: a timedelta, seconds, or ``"7d"``/``"12h"``.
        created_timestamp_key: Created-time column breaking ties between equal event times.
        owner: Who to ask about the group.
        entity_key_types: Optional types of the entity keys; undeclared keys accept integers
            (stored as BIGINT) or strings (stored as STRING).
    """

    name: str
    version: int = 1
    entity_keys: list[str] = field(default_factory=list)
    timestamp_key: str | None = None
    description: str = ""
    features: list[FeatureSchema] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    ttl: timedelta | None = None
    created_timestamp_key: str | None = None
    owner: str | None = None
    entity_key_types: dict[str, DataType | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_identifier(self.name, "Feature group name")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise SchemaValidationError(
                f"group {self.name!r}: version must be an integer >= 1, got {self.version!r}"
            )
        keys = [self.entity_keys] if isinstance(self.entity_keys, str) else list(self.entity_keys or [])
        if isinstance(self.features, (str, bytes, Mapping)) or not isinstance(self.features, Sequence):
            raise SchemaValidationError(
                f"group {self.name!r}: features must be a list of FeatureSchema, got {self.features!r}"
            )
        features = []
        for item in self.features:
            if isinstance(item, FeatureSchema):
                features.append(item)
            elif isinstance(item, Mapping):
                features.append(FeatureSchema.from_dict(item))
            else:
                raise SchemaValidationError(
                    f"group {self.name!r}: {item!r} is not a FeatureSchema or a dict describing one"
                )
        if not isinstance(self.tags or {}, Mapping):
            raise SchemaValidationError(
                f"group {self.name!r}: tags must be a mapping such as {{'team': 'risk'}}, got {self.tags!r}"
            )
        if not isinstance(self.entity_key_types or {}, Mapping):
            raise SchemaValidationError(
                f"group {self.name!r}: entity_key_types must be a mapping, got {self.entity_key_types!r}"
            )
        object.__setattr__(self, "entity_keys", keys)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "tags", {str(k): str(v) for k, v in dict(self.tags or {}).items()})
        object.__setattr__(self, "ttl", _parse_ttl(self.ttl))
        key_types = {
            k: _enum(DataType, v, f"Entity key type of {k!r}")
            for k, v in dict(self.entity_key_types or {}).items()
        }
        object.__setattr__(self, "entity_key_types", key_types)
        self._check_names()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def _check_names(self) -> None:
        problems: list[str] = []
        if not self.entity_keys:
            problems.append("entity_keys must name at least one column")
        seen: dict[str, str] = {}
        roles = [(k, "entity key") for k in self.entity_keys]
        if self.timestamp_key is not None:
            roles.append((self.timestamp_key, "timestamp key"))
        if self.created_timestamp_key is not None:
            roles.append((self.created_timestamp_key, "created timestamp key"))
        roles += [(f.name, "feature") for f in self.features]
        for column, role in roles:
            try:
                validate_identifier(column, role.capitalize())
            except SchemaValidationError as err:
                problems.append(err.problems[0])
                continue
            if column in seen:
                problems.append(f"column {column!r} is declared twice (as {seen[column]} and as {role})")
            seen[column] = role
        for key, kind in self.entity_key_types.items():
            if key not in self.entity_keys:
                problems.append(f"entity_key_types names {key!r}, which is not an entity key")
            elif kind not in (DataType.INT, DataType.BIGINT, DataType.STRING, DataType.DATE):
                problems.append(
                    f"entity key {key!r} must be INT, BIGINT, STRING or DATE, not {DataType(kind).value}"
                )
        if self.created_timestamp_key is not None and self.timestamp_key is None:
            problems.append("created_timestamp_key needs a timestamp_key")
        if problems:
            raise SchemaValidationError(problems, group=self.name)

    # -- lookups --------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """Names of the features, in declaration order."""
        return [f.name for f in self.features]

    @property
    def time_columns(self) -> list[str]:
        """The event-time and created-time columns that the group has."""
        return [c for c in (self.timestamp_key, self.created_timestamp_key) if c is not None]

    @property
    def columns(self) -> list[str]:
        """Every column of the group's tables: keys, times, then features."""
        return [*self.entity_keys, *self.time_columns, *self.feature_names]

    def get_feature(self, name: str) -> FeatureSchema:
        """Return the feature called ``name``.

        Raises:
            FeatureNotFoundError: If the group has no such feature (the valid names are listed).
        """
        for feature in self.features:
            if feature.name == name:
                return feature
        raise FeatureNotFoundError(
            f"{self.name}.{name}",
            candidates=[f"{self.name}.{n}" for n in self.feature_names],
            reason=f"Feature group {self.name!r} has no feature {name!r}.",
        )

    def column_spec(self, column: str) -> TypeSpec | None:
        """Return the declared type of any column of the group (None for undeclared keys)."""
        if column in self.time_columns:
            return TypeSpec(DataType.TIMESTAMP)
        if column in self.entity_key_types:
            return TypeSpec.of(self.entity_key_types[column])
        if column in self.entity_keys:
            return None
        return self.get_feature(column).spec

    def polars_schema(self) -> dict[str, pl.DataType]:
        """Return column name -> Polars type (undeclared keys omitted: their type is inferred)."""
        result: dict[str, pl.DataType] = {}
        for column in self.columns:
            spec = self.column_spec(column)
            if spec is not None:
                result[column] = spec.to_polars()
        return result

    def arrow_schema(self) -> pa.Schema:
        """Return the Arrow schema of the declared columns (time columns as UTC microseconds)."""
        import pyarrow as pa

        fields = []
        for column in self.columns:
            spec = self.column_spec(column)
            if spec is not None:
                nullable = (
                    column not in self.entity_keys
                    and column != self.timestamp_key
                    and (column not in self.feature_names or self.get_feature(column).nullable)
                )
                fields.append(pa.field(column, spec.to_arrow(), nullable=nullable))
        return pa.schema(fields)

    # -- validation -----------------------------------------------------------------------
    def validate(
        self,
        frame: FrameLike,
        *,
        extra_columns: Literal["drop", "keep", "error"] = "drop",
    ) -> pl.DataFrame:
        """Check a frame against the schema and return it cast to the schema's types.

        Every problem is reported at once: missing columns, wrong types, nulls in keys, the
        event time or non-nullable features, and ``metadata`` constraints (min, max,
        allowed_values), each with its column, count and a few offending values. Lossless
        casts are applied (see :func:`tauro_workbench.dtypes.can_cast_losslessly`); naive
        datetimes are taken as UTC.

        Raises:
            SchemaValidationError: Listing every problem found.
        """
        from tauro_workbench.validation import validate_frame

        return validate_frame(self, frame, extra_columns=extra_columns)

    # -- serialization --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``from_dict`` reads it back)."""
        return {
            "name": self.name,
            "version": self.version,
            "entity_keys": list(self.entity_keys),
            "timestamp_key": self.timestamp_key,
            "created_timestamp_key": self.created_timestamp_key,
            "description": self.description,
            "owner": self.owner,
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "tags": dict(self.tags),
            "entity_key_types": {k: DataType(v).value for k, v in self.entity_key_types.items()},
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureGroupSchema:
        """Build a group from a dict (as written by :meth:`to_dict`, or hand-written YAML)."""
        options = dict(data)
        if "ttl_seconds" in options:
            if "ttl" in options:
                raise SchemaValidationError("give either 'ttl' or 'ttl_seconds', not both")
            options["ttl"] = options.pop("ttl_seconds")
        valid = set(cls.__dataclass_fields__)
        unknown = set(options) - valid
        if unknown:
            raise SchemaValidationError(
                f"unknown keys {sorted(unknown)} in feature group {options.get('name')!r}; valid keys: {sorted(valid)}"
            )
        if "name" not in options:
            raise SchemaValidationError("a feature group needs a 'name'")
        return cls(**options)

    def to_json(self) -> str:
        """Return the schema as canonical JSON."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> FeatureGroupSchema:
        """Read a schema written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        """Return the schema as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, source: str | Path) -> FeatureGroupSchema:
        """Read a schema from YAML text or a ``.yaml``/``.yml`` file path."""
        is_file = isinstance(source, Path) or (
            isinstance(source, str) and source.endswith((".yaml", ".yml")) and "\n" not in source
        )
        try:
            text = Path(source).read_text(encoding="utf-8") if is_file else str(source)
            data = yaml.safe_load(text)
        except UnicodeDecodeError as err:
            raise SchemaValidationError(
                f"feature group YAML {str(source)!r} is not UTF-8 text (byte {err.start}: {err.reason}); "
                "save it as UTF-8"
            ) from err
        except OSError as err:
            raise SchemaValidationError(f"cannot read feature group YAML {str(source)!r}: {err}") from err
        except yaml.YAMLError as err:
            raise SchemaValidationError(
                f"feature group YAML {str(source)[:80]!r} is not valid YAML: {err}"
            ) from err
        if not isinstance(data, Mapping):
            raise SchemaValidationError("a feature group YAML document must be a mapping")
        return cls.from_dict(data)

    def fingerprint(self) -> str:
        """Return a stable hash of the schema (equal schemas have equal fingerprints)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)
