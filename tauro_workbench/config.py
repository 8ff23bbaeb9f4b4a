"""Configuration: :class:`FeatureStoreConfig`, :class:`FeatureStoreMode`, and where they come from.

A config is built from keyword arguments, a dict, a YAML file (a Tauro ``global.yaml`` whose
``feature_store:`` section holds the options works as is) or a Tauro context, and then
``TAURO_FS_*`` environment variables override single options. Nested options use ``__``::

    TAURO_FS_MODE=hybrid
    TAURO_FS_STORAGE_PATH=./feature_repo
    TAURO_FS_ONLINE_STORE__URL=redis://127.0.0.1:6379/0
    TAURO_FS_VIRTUALIZED__QUERY_TIMEOUT_SECONDS=60

Environment values are parsed as YAML scalars (``true``, ``42``, ``0.5``). Unknown options fail
with a :class:`~tauro_workbench.exceptions.ConfigurationError` listing the valid ones. Every
default path is relative: nothing is written outside the working directory unless asked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from tauro_workbench.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_REPO",
    "DriftConfig",
    "DriftThresholds",
    "FeatureStoreConfig",
    "FeatureStoreMode",
    "HybridConfig",
    "MaterializedConfig",
    "OnlineStoreConfig",
    "VirtualizedConfig",
    "resolve_config",
]

ENV_PREFIX = "TAURO_FS_"

#: The one default repository folder of the library, the CLI, the README and the notebooks.
DEFAULT_REPO = "./feature_repo"


class FeatureStoreMode(str, Enum):  # noqa: UP042 - str() and format() keep the Enum behaviour
    """Where features are read from by default."""

    MATERIALIZED = "materialized"
    VIRTUALIZED = "virtualized"
    HYBRID = "hybrid"
    ONLINE = "online"

    @classmethod
    def _missing_(cls, value: object) -> FeatureStoreMode | None:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower() or member.name == value.strip().upper():
                    return member
        return None


def _is_choice(annotation: Any) -> bool:
    """True for ``Literal`` string choices, optional or not."""
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return all(isinstance(a, str) for a in args)
    return any(_is_choice(a) for a in args if a is not type(None))


class _InvalidOptions(ConfigurationError):
    """A ConfigurationError that keeps its problems, so a parent model can report nested ones."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        text = "; ".join(f"{p.format(loc=loc)}" for loc, p in problems)
        super().__init__(f"Invalid feature store configuration: {text}.")


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _config_error(err, type(self)) from None

    @field_validator("*", mode="before")
    @classmethod
    def _lowercase_choices(cls, value: object, info: ValidationInfo) -> object:
        # choices such as executor_type="SPARK" are case-insensitive, like the modes
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, str) and field is not None and _is_choice(field.annotation):
            return value.strip().lower()
        return value


class MaterializedConfig(_Options):
    """Options of the materialized (offline, Delta Lake) store.

    Attributes:
        storage_path: Overrides the top-level ``storage_path`` for offline tables.
        storage_format: Overrides the top-level ``storage_format``.
        cache_enabled: Cache read results keyed by query and table version.
        cache_size_mb: Upper bound of the result cache.
        partition_by_date: Partition Delta tables by the date of the event time.
    """

    storage_path: str | None = None
    storage_format: Literal["delta", "parquet"] | None = None
    cache_enabled: bool = True
    cache_size_mb: int = Field(default=512, ge=0)
    partition_by_date: bool = False


class VirtualizedConfig(_Options):
    """Options of the virtualized (SQL on demand) store.

    Attributes:
        executor_type: Query engine: ``"duckdb"`` (embedded default) or ``"spark"``.
        query_timeout_seconds: Queries running longer are cancelled.
        enable_caching: Cache query results, invalidated when a source changes.
        spark_master: Master URL used when a Spark session has to be started.
    """

    executor_type: Literal["duckdb", "spark"] = "duckdb"
    query_timeout_seconds: float = Field(default=300.0, gt=0)
    enable_caching: bool = False
    spark_master: str = "local[*]"


class OnlineStoreConfig(_Options):
    """Options of the online store.

    Attributes:
        type: ``"memory"`` (in process) or ``"redis"``.
        url: Redis URL, e.g. ``redis://:password@127.0.0.1:6379/0`` or ``rediss://`` for TLS.
        key_prefix: Prefix of every Redis key (keeps several stores apart on one server).
        socket_timeout_seconds: Redis socket timeout.
        batch_size: Rows per pipelined batch when syncing.
        max_connections: Size of the Redis connection pool.
    """

    type: Literal["memory", "redis"] = "memory"
    url: str | None = None
    key_prefix: str = "tauro"
    socket_timeout_seconds: float = Field(default=5.0, gt=0)
    batch_size: int = Field(default=5000, ge=1)
    max_connections: int = Field(default=16, ge=1)


_DURATION_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def _duration(value: object) -> object:
    """Parse ``"30m"``, ``"12h"``, ``"7d"`` or seconds into a timedelta (others: pydantic's rules)."""
    if isinstance(value, bool):
        raise ValueError(f"a duration must be seconds or a string like '1h', got {value!r}")
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([wdhms]?)\s*", value.lower())
        if match is None and value.strip().upper().startswith("P"):
            return value  # ISO 8601 (what a JSON dump of the config holds): pydantic parses it
        if match is None:
            raise ValueError(f"{value!r} is not a duration; use e.g. '30m', '12h', '7d' or seconds")
        return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"])
    return value


class HybridConfig(_Options):
    """Options of the hybrid router (``mode="hybrid"``; see :mod:`tauro_workbench.stores.routing`).

    The top-level ``hybrid_threshold_rows`` (above it a group with a materialized copy is read
    from it; at most it, a virtual group is computed on demand) and ``auto_materialize_on_read``
    (a virtual group read while above the threshold is materialized in the background) belong
    to the router too.

    Attributes:
        freshness: How far a group's materialized copy may lag its sources, per group, e.g.
            ``{"user_features": "1h"}``; beyond it reads go to the virtual definition. A group
            tag ``freshness: "1h"`` works too (this option wins).
        default_freshness: The requirement of groups with none of their own (None: any lag).
        materialize_cooldown_seconds: Least time between two automatic materializations of
            one group.
        latency_ratio: When set (> 1), a route measured this many times slower than the other
            offline route gives way to it; None: latency only breaks ties of unknown size.
    """

    freshness: dict[str, timedelta] = Field(default_factory=dict)
    default_freshness: timedelta | None = None
    materialize_cooldown_seconds: float = Field(default=300.0, ge=0)
    latency_ratio: float | None = Field(default=None, gt=1)

    @field_validator("freshness", mode="before")
    @classmethod
    def _freshness_durations(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {str(k): _duration(v) for k, v in value.items()}
        return value

    @field_validator("default_freshness", mode="before")
    @classmethod
    def _default_duration(cls, value: object) -> object:
        return None if value is None else _duration(value)

    @field_validator("freshness", "default_freshness")
    @classmethod
    def _non_negative(cls, value: object) -> object:
        durations = value.values() if isinstance(value, Mapping) else [value]
        if any(isinstance(d, timedelta) and d < timedelta(0) for d in durations):
            raise ValueError("freshness requirements must not be negative")
        return value

    def freshness_for(self, group: str, tags: Mapping[str, str] | None = None) -> timedelta | None:
        """Return the freshness requirement of ``group``: this config, its ``freshness`` tag, the default.

        Raises:
            ConfigurationError: If the group's ``freshness`` tag is not a duration.
        """
        if group in self.freshness:
            return self.freshness[group]
        tag = (tags or {}).get("freshness")
        if tag is not None:
            try:
                parsed = _duration(tag)
            except ValueError as err:
                raise ConfigurationError(
                    f"group {group!r}: tag freshness={tag!r} is not a duration.",
                    hint="Use e.g. tags={'freshness': '1h'} ('30m', '12h', '7d' or seconds).",
                ) from err
            assert isinstance(parsed, timedelta)
            return parsed
        return self.default_freshness


class DriftThresholds(_Options):
    """Drift thresholds; PSI at or above ``psi_warning`` warns, at or above ``psi_drift`` drifts."""

    psi_warning: float = Field(default=0.1, ge=0)
    psi_drift: float = Field(default=0.25, ge=0)
    ks_drift: float = Field(default=0.2, ge=0, le=1)
    null_rate_change: float = Field(default=0.1, ge=0, le=1)


class DriftConfig(_Options):
    """Drift monitoring of every write.

    Attributes:
        enabled: Profile every write and compare it to the reference.
        on_drift: ``"warn"`` records and publishes drift; ``"block"`` rejects the write first.
        defaults: Thresholds used where no override applies.
        overrides: Thresholds per ``"group"`` or per ``"group.feature"`` (the latter wins).
        bins: Number of quantile bins used for numeric PSI.
        sample_rows: Above this many rows, distributions (quantiles, histograms, category
            counts, PSI/KS shares) come from a seeded uniform sample of this many rows (counts,
            null rates, min, max, mean and std stay exact); at or below it all is exact.
        top_categories: Categories kept (with their counts) per categorical feature; the rest
            form one "other" bin for PSI.
        min_rows: Writes (or references) with fewer rows are profiled but not judged: their
            report's verdict is ``"insufficient_data"``. The default, 100, keeps PSI over the
            default 10 bins from flagging sampling noise (about 10 rows a bin); set 0 to judge
            every write.
    """

    enabled: bool = True
    on_drift: Literal["ignore", "warn", "block"] = "warn"
    defaults: DriftThresholds = DriftThresholds()
    overrides: dict[str, DriftThresholds] = Field(default_factory=dict)
    bins: int = Field(default=10, ge=2, le=100)
    sample_rows: int = Field(default=100_000, ge=1_000)
    top_categories: int = Field(default=20, ge=1, le=1_000)
    min_rows: int = Field(default=100, ge=0)

    def thresholds_for(self, group: str, feature: str) -> DriftThresholds:
        """Return the thresholds that apply to ``group.feature``."""
        return self.overrides.get(f"{group}.{feature}") or self.overrides.get(group) or self.defaults


class FeatureStoreConfig(_Options):
    """Every option of the feature store, validated.

    Example:
        >>> cfg = FeatureStoreConfig(storage_path="./feature_repo", mode="hybrid")
        >>> cfg.mode
        <FeatureStoreMode.HYBRID: 'hybrid'>
    """

    mode: FeatureStoreMode = FeatureStoreMode.MATERIALIZED
    storage_path: str = DEFAULT_REPO
    storage_format: Literal["delta", "parquet"] = "delta"
    hybrid_threshold_rows: int = Field(default=100_000, ge=0)
    max_retries: int = Field(default=3, ge=0)
    retry_backoff_ms: float = Field(default=100.0, ge=0)
    retry_backoff_multiplier: float = Field(default=2.0, ge=1)
    metadata_cache_ttl_seconds: float = Field(default=300.0, ge=0)
    lock_timeout_seconds: float = Field(default=30.0, gt=0)
    enable_online_store: bool = False
    online_store: OnlineStoreConfig = OnlineStoreConfig()
    sync_to_online: bool = False
    auto_materialize_on_read: bool = False
    hybrid: HybridConfig = HybridConfig()
    materialized: MaterializedConfig = MaterializedConfig()
    virtualized: VirtualizedConfig = VirtualizedConfig()
    drift: DriftConfig = DriftConfig()

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_from_string(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return FeatureStoreMode(value)
            except ValueError:
                return value
        return value

    @field_validator("storage_path", mode="before")
    @classmethod
    def _path_to_string(cls, value: object) -> object:
        value = str(value) if isinstance(value, Path) else value
        if isinstance(value, str) and not value.strip():
            raise ValueError("storage_path must not be empty; use e.g. './feature_repo'")
        return value

    # -- derived values -------------------------------------------------------------------
    @property
    def offline_path(self) -> Path:
        """Root folder of offline tables: ``materialized.storage_path``, else ``<storage_path>/offline``."""
        if self.materialized.storage_path:
            return Path(self.materialized.storage_path)
        return Path(self.storage_path) / "offline"

    @property
    def offline_format(self) -> Literal["delta", "parquet"]:
        """Format of offline tables (``materialized.storage_format`` or ``storage_format``)."""
        return self.materialized.storage_format or self.storage_format

    @property
    def registry_path(self) -> Path:
        """Path of the SQLite registry."""
        return Path(self.storage_path) / "registry.db"

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, options: Mapping[str, Any], *, env: bool = True) -> FeatureStoreConfig:
        """Build a config from a dict; ``env=True`` applies ``TAURO_FS_*`` overrides on top.

        A dict with a single ``feature_store`` key is unwrapped (Tauro ``global.yaml`` layout).
        """
        data = dict(options)
        if set(data) == {"feature_store"} or (
            "feature_store" in data and isinstance(data["feature_store"], Mapping)
        ):
            data = dict(data["feature_store"] or {})
        if env:
            data = _merge(data, env_overrides())
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path, *, env: bool = True) -> FeatureStoreConfig:
        """Load a config from a YAML file (a Tauro ``global.yaml`` with ``feature_store:`` works)."""
        file = Path(path)
        if not file.is_file():
            raise ConfigurationError(f"Config file {str(file)!r} does not exist.")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as err:
            raise ConfigurationError(
                f"Config file {str(file)!r} is not UTF-8 text (byte {err.start}: {err.reason}).",
                hint="Save the file as UTF-8.",
            ) from err
        except yaml.YAMLError as err:
            raise ConfigurationError(f"Config file {str(file)!r} is not valid YAML: {err}") from err
        if not isinstance(loaded, Mapping):
            raise ConfigurationError(f"Config file {str(file)!r} must hold a mapping of options.")
        return cls.from_dict(loaded, env=env)

    @classmethod
    def from_env(cls, **options: Any) -> FeatureStoreConfig:
        """Build a config from keyword options with ``TAURO_FS_*`` environment overrides."""
        return cls.from_dict(options, env=True)

    def with_options(self, **changes: Any) -> FeatureStoreConfig:
        """Return a copy with some options changed (validated again)."""
        return type(self)(**_merge(self.model_dump(), changes))


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the options set by ``TAURO_FS_*`` variables, nested on ``__``.

    Values of text options (paths, URLs, prefixes) are kept as given; the others are parsed
    as YAML scalars (``true``, ``42``, ``0.5``).
    """
    source = os.environ if environ is None else environ
    result: dict[str, Any] = {}
    for key, raw in sorted(source.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        if _is_text_option(path):
            value: Any = raw
        else:
            try:
                value = yaml.safe_load(raw) if raw != "" else ""
            except yaml.YAMLError:
                value = raw
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigurationError(f"Environment variable {key} conflicts with another one.")
        node[path[-1]] = value
    return result


def resolve_config(
    context: Any = None,
    *,
    config: FeatureStoreConfig | Mapping[str, Any] | None = None,
    storage_path: str | Path | None = None,
    **overrides: Any,
) -> FeatureStoreConfig:
    """Resolve the config of a store from the Tauro conventions.

    Precedence, lowest first: defaults, the context (a dict of options, or an object with
    ``feature_store_config`` and/or ``feature_store_path`` attributes), ``config``, then
    ``storage_path`` and ``overrides``. ``TAURO_FS_*`` variables apply when the config is built
    from plain options (not when a ready :class:`FeatureStoreConfig` is given).
    """
    if isinstance(config, FeatureStoreConfig) and context is None:
        data: dict[str, Any] = config.model_dump()
        env = False
    else:
        data = _context_options(context)
        if isinstance(config, FeatureStoreConfig):
            data = _merge(data, config.model_dump(exclude_unset=True))
        elif config is not None:
            data = _merge(data, _unwrap(config))
        env = not isinstance(config, FeatureStoreConfig)
    if storage_path is not None:
        data["storage_path"] = str(storage_path)
    data = _merge(data, overrides)
    return FeatureStoreConfig.from_dict(data, env=env)


def _context_options(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if isinstance(context, Mapping):
        return _unwrap(context)
    data: dict[str, Any] = {}
    settings = getattr(context, "global_settings", None)
    if isinstance(settings, Mapping) and isinstance(settings.get("feature_store"), Mapping):
        data = dict(settings["feature_store"])
    fs_config = getattr(context, "feature_store_config", None)
    if isinstance(fs_config, FeatureStoreConfig):
        data = _merge(data, fs_config.model_dump(exclude_unset=True))
    elif isinstance(fs_config, Mapping):
        data = _merge(data, _unwrap(fs_config))
    fs_path = getattr(context, "feature_store_path", None)
    if isinstance(fs_path, (str, Path)):
        data["storage_path"] = str(fs_path)
    return data


def _unwrap(options: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(options)
    if "feature_store" in data and isinstance(data["feature_store"], Mapping):
        data = dict(data["feature_store"])
    return data


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _config_error(err: ValidationError, model: type[BaseModel]) -> ConfigurationError:
    # each problem is (dotted location, text with a {loc} placeholder) so that a parent model
    # can prefix the location of a nested model's problems
    problems: list[tuple[str, str]] = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"])
        nested = (item.get("ctx") or {}).get("error")
        if isinstance(nested, _InvalidOptions):
            problems += [(f"{loc}.{inner}" if inner else loc, text) for inner, text in nested.problems]
        elif item["type"] == "extra_forbidden":
            valid = ", ".join(_valid_options(model, item["loc"][:-1]))
            problems.append((loc, "unknown option {loc!r}; valid options: " + valid.replace("{", "{{")))
        else:
            got = repr(item.get("input")).replace("{", "{{").replace("}", "}}")
            message = str(item["msg"]).replace("{", "{{").replace("}", "}}")
            problems.append((loc, "{loc}: " + message + f" (got {got})"))
    return _InvalidOptions(problems)


def _is_text_option(path: list[str]) -> bool:
    """True when the option at ``path`` holds free text (a path, URL or name)."""
    model: type[BaseModel] = FeatureStoreConfig
    for part in path[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return False
        model = annotation
    field = model.model_fields.get(path[-1])
    if field is None:
        return False
    return field.annotation in (str, str | None)


def _valid_options(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: type[BaseModel] = model
    for part in loc:
        field = current.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current = annotation
        else:
            break
    return sorted(current.model_fields)
