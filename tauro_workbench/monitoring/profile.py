"""Feature profiles: per-feature statistics of one write, computed in one Polars pass.

A :class:`GroupProfile` holds one :class:`FeatureProfile` per feature:

- every feature: rows, non-null count, null rate;
- numeric features (INT, BIGINT, FLOAT, DOUBLE, DECIMAL, unless declared CATEGORICAL): min, max,
  mean, std, a quantile grid (the values at levels ``0, 1/100, ..., 1``, "lower" method: the
  value at sorted index ``floor(level * (n - 1))``), the share of values at or below each grid
  value (the empirical CDF on the grid, used for PSI bins and KS), and an equal-width histogram;
- categorical features (STRING, BOOLEAN, or any simple type declared CATEGORICAL): the top
  categories with their counts and the number of distinct values;
- other types (TIMESTAMP, DATE, ARRAY, MAP, STRUCT): counts and null rate only.

NaN counts as null. Everything comes from a single ``select`` of aggregate expressions over the
frame; only per-feature summaries (a sorted sample, value counts) leave Polars. Rows, non-null
counts, null rates, min, max, mean and std are always exact. Distributions (quantiles, CDF,
histogram, category counts) are exact when the frame has at most ``sample_rows`` rows; above,
they come from one seeded uniform sample (with replacement) of ``sample_rows`` rows shared by
every feature, which keeps profiling cheap on large writes (a 100k sample gives CDF and share
errors around ``1/sqrt(100_000) ~ 0.003``): top-category counts are then the sample counts
scaled to the write's non-null count, and ``distinct_count`` counts the sample's distinct values.

Profiles are frozen dataclasses that round-trip through JSON (:meth:`GroupProfile.to_dict`,
:meth:`GroupProfile.from_dict`); the monitor stores them with the write in the registry.

Example:
    >>> import polars as pl
    >>> from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
    >>> schema = FeatureGroupSchema("g", entity_keys=["id"], features=[FeatureSchema("x", DataType.DOUBLE)])
    >>> profile, _ = profile_frame(schema, pl.DataFrame({"id": [1, 2, 3], "x": [1.0, None, 3.0]}))
    >>> profile.feature("x").null_rate
    0.3333333333333333
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from tauro_workbench.dtypes import DataType
from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.frames import FrameLike, to_dataframe
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema, FeatureType

__all__ = ["GRID_SIZE", "HISTOGRAM_BINS", "FeatureProfile", "GroupProfile", "merge_profiles", "profile_frame"]

GRID_SIZE = 100
"""Intervals of the quantile grid: values are kept at levels ``i / GRID_SIZE``."""
HISTOGRAM_BINS = 20
"""Equal-width bins of the display histogram of numeric features."""
_SEED = 0

ProfileKind = Literal["numeric", "categorical", "other"]


def feature_kind(feature: FeatureSchema) -> ProfileKind:
    """Return how a feature is profiled: ``numeric``, ``categorical`` or ``other``."""
    spec = feature.spec
    simple = spec.base not in (DataType.ARRAY, DataType.MAP, DataType.STRUCT)
    if spec.is_numeric and feature.feature_type is not FeatureType.CATEGORICAL:
        return "numeric"
    if spec.base in (DataType.STRING, DataType.BOOLEAN) or (
        simple and feature.feature_type is FeatureType.CATEGORICAL
    ):
        return "categorical"
    return "other"


@dataclass(frozen=True)
class FeatureProfile:
    """Statistics of one feature in one write (see the module docstring for each field).

    Attributes:
        name: Feature name.
        kind: ``numeric``, ``categorical`` or ``other``.
        dtype: Declared data type, e.g. ``DOUBLE``.
        rows: Rows in the write.
        count: Non-null (and non-NaN) values.
        min, max, mean, std: Numeric features only (std with ddof=1; None below 2 values).
        quantiles: Values at levels ``i / GRID_SIZE`` (numeric features with values).
        cdf: Share of values at or below each of ``quantiles``.
        histogram_edges: ``HISTOGRAM_BINS + 1`` equal-width edges from min to max.
        histogram: Share of values per histogram bin (first bin closed on both sides).
        top_categories: ``(value, count)`` of the most frequent categories, by count.
        distinct_count: Distinct non-null values (categorical features; of the sample when
            sampled).
        sampled: Non-null values the distribution was computed from (== count when exact).
    """

    name: str
    kind: ProfileKind
    dtype: str
    rows: int
    count: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: tuple[float, ...] = ()
    cdf: tuple[float, ...] = ()
    histogram_edges: tuple[float, ...] = ()
    histogram: tuple[float, ...] = ()
    top_categories: tuple[tuple[str, int], ...] = ()
    distinct_count: int | None = None
    sampled: int = 0

    @property
    def null_count(self) -> int:
        """Null (or NaN) values."""
        return self.rows - self.count

    @property
    def null_rate(self) -> float:
        """Share of null (or NaN) values; 0.0 for an empty write."""
        return self.null_count / self.rows if self.rows else 0.0

    def quantile(self, level: float) -> float | None:
        """Return the grid value at the level nearest to ``level`` (0..1), or None without values."""
        if not self.quantiles:
            return None
        index = round(min(max(level, 0.0), 1.0) * (len(self.quantiles) - 1))
        return self.quantiles[index]

    def cdf_at(self, value: float) -> float:
        """Return the share of values at or below ``value``.

        Exact at the grid values; between two of them the CDF is interpolated linearly (an
        approximation, coarse for discrete data); 0 below the minimum, 1 from the maximum up.
        """
        grid, shares = self.quantiles, self.cdf
        right = bisect.bisect_right(grid, value)
        if right == 0:
            return 0.0
        if right == len(grid):
            return 1.0
        x0, x1 = grid[right - 1], grid[right]
        y0, y1 = shares[right - 1], shares[right]
        return y0 + (y1 - y0) * (value - x0) / (x1 - x0)

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as JSON-ready data."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "rows": self.rows,
            "count": self.count,
        }
        if self.kind == "numeric":
            data.update(
                min=_json_float(self.min),
                max=_json_float(self.max),
                mean=_json_float(self.mean),
                std=_json_float(self.std),
                quantiles=[_json_float(v) for v in self.quantiles],
                cdf=list(self.cdf),
                histogram_edges=[_json_float(v) for v in self.histogram_edges],
                histogram=list(self.histogram),
                sampled=self.sampled,
            )
        elif self.kind == "categorical":
            data.update(
                top_categories=[[v, c] for v, c in self.top_categories],
                distinct_count=self.distinct_count,
                sampled=self.sampled,
            )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        """Rebuild a profile from :meth:`to_dict` output."""
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            dtype=str(data.get("dtype", "")),
            rows=int(data["rows"]),
            count=int(data["count"]),
            min=_from_json_float(data.get("min")),
            max=_from_json_float(data.get("max")),
            mean=_from_json_float(data.get("mean")),
            std=_from_json_float(data.get("std")),
            quantiles=tuple(_from_json_float(v) or 0.0 for v in data.get("quantiles", ())),
            cdf=tuple(float(v) for v in data.get("cdf", ())),
            histogram_edges=tuple(_from_json_float(v) or 0.0 for v in data.get("histogram_edges", ())),
            histogram=tuple(float(v) for v in data.get("histogram", ())),
            top_categories=tuple((str(v), int(c)) for v, c in data.get("top_categories", ())),
            distinct_count=None if data.get("distinct_count") is None else int(data["distinct_count"]),
            sampled=int(data.get("sampled", 0)),
        )


@dataclass(frozen=True)
class GroupProfile:
    """The profile of one write to a feature group.

    Attributes:
        group: Feature group name.
        version: Feature group version.
        rows: Rows in the write.
        features: One profile per feature, in schema order.
        created_at: When the profile was computed (UTC).
        event_time_min, event_time_max: Range of the event-time column (None without one).
    """

    group: str
    version: int
    rows: int
    features: tuple[FeatureProfile, ...]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    event_time_min: datetime | None = None
    event_time_max: datetime | None = None

    @property
    def feature_names(self) -> list[str]:
        """Names of the profiled features."""
        return [f.name for f in self.features]

    def find_feature(self, name: str) -> FeatureProfile | None:
        """Return the profile of feature ``name``, or None."""
        return next((f for f in self.features if f.name == name), None)

    def feature(self, name: str) -> FeatureProfile:
        """Return the profile of feature ``name``.

        Raises:
            SchemaValidationError: If the profile has no such feature (the valid names are listed).
        """
        found = self.find_feature(name)
        if found is None:
            raise SchemaValidationError(
                f"the profile of {self.group!r} has no feature {name!r}; profiled features: {self.feature_names}"
            )
        return found

    def to_polars(self) -> pl.DataFrame:
        """Return one summary row per feature (kind, counts, null rate, moments, quartiles)."""
        return pl.DataFrame(
            [
                {
                    "feature": f.name,
                    "kind": f.kind,
                    "dtype": f.dtype,
                    "rows": f.rows,
                    "count": f.count,
                    "null_rate": f.null_rate,
                    "min": f.min,
                    "max": f.max,
                    "mean": f.mean,
                    "std": f.std,
                    "p25": f.quantile(0.25),
                    "p50": f.quantile(0.5),
                    "p75": f.quantile(0.75),
                    "distinct_count": f.distinct_count,
                    "top_category": f.top_categories[0][0] if f.top_categories else None,
                }
                for f in self.features
            ],
            schema={
                "feature": pl.String,
                "kind": pl.String,
                "dtype": pl.String,
                "rows": pl.Int64,
                "count": pl.Int64,
                "null_rate": pl.Float64,
                "min": pl.Float64,
                "max": pl.Float64,
                "mean": pl.Float64,
                "std": pl.Float64,
                "p25": pl.Float64,
                "p50": pl.Float64,
                "p75": pl.Float64,
                "distinct_count": pl.Int64,
                "top_category": pl.String,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as JSON-ready data."""
        return {
            "group": self.group,
            "version": self.version,
            "rows": self.rows,
            "created_at": self.created_at.isoformat(),
            "event_time_min": None if self.event_time_min is None else self.event_time_min.isoformat(),
            "event_time_max": None if self.event_time_max is None else self.event_time_max.isoformat(),
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupProfile:
        """Rebuild a profile from :meth:`to_dict` output."""

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return None if value is None else datetime.fromisoformat(str(value))

        return cls(
            group=str(data["group"]),
            version=int(data["version"]),
            rows=int(data["rows"]),
            features=tuple(FeatureProfile.from_dict(f) for f in data.get("features", ())),
            created_at=when("created_at") or datetime.now(UTC),
            event_time_min=when("event_time_min"),
            event_time_max=when("event_time_max"),
        )


def profile_frame(
    schema: FeatureGroupSchema,
    data: FrameLike,
    *,
    reference: GroupProfile | None = None,
    sample_rows: int = 100_000,
    top_categories: int = 20,
) -> tuple[GroupProfile, dict[str, tuple[float, ...]]]:
    """Profile the features of ``data`` in one pass, observing it on ``reference``'s bins.

    Args:
        schema: The feature group; every feature is profiled.
        data: The frame written (Polars, PyArrow or pandas).
        reference: A profile to compare with later: the same pass measures the new data on
            the reference's quantile grid and categories.
        sample_rows: Above this many rows, distributions come from a seeded sample this size.
        top_categories: Categories kept per categorical feature.

    Returns:
        The profile, and per reference feature the new data's shares aligned with the
        reference: for numeric features the share at or below each reference grid value, for
        categorical ones the share of each reference top category.

    Raises:
        SchemaValidationError: If ``data`` lacks a feature column.

    Example:
        >>> import polars as pl
        >>> from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
        >>> schema = FeatureGroupSchema("g", entity_keys=["id"], features=[FeatureSchema("x", DataType.DOUBLE)])
        >>> profile, _ = profile_frame(schema, pl.DataFrame({"id": [1, 2], "x": [1.0, 2.0]}))
        >>> profile.feature("x").quantile(0.5), profile.feature("x").cdf_at(1.0)
        (1.0, 0.5)
    """
    frame = to_dataframe(data)
    missing = [f.name for f in schema.features if f.name not in frame.columns]
    if missing:
        raise SchemaValidationError(
            f"cannot profile: the frame lacks the feature columns {missing}", group=schema.name
        )
    height = frame.height
    sample = (
        pl.int_range(0, height, eager=True).sample(sample_rows, with_replacement=True, seed=_SEED).sort()
        if height > sample_rows
        else None
    )
    exprs: list[pl.Expr] = []
    kinds: dict[str, ProfileKind] = {}
    for feature in schema.features:
        kind = kinds[feature.name] = feature_kind(feature)
        exprs.extend(_expressions(feature.name, kind, frame.schema[feature.name], sample))
    ts = schema.timestamp_key
    has_time = ts is not None and ts in frame.columns and frame.schema[ts].is_temporal()
    if ts is not None and has_time:
        exprs += [pl.col(ts).min().alias("__time_min"), pl.col(ts).max().alias("__time_max")]
    result = frame.lazy().select(exprs).collect() if exprs else pl.DataFrame()

    features: list[FeatureProfile] = []
    observed: dict[str, tuple[float, ...]] = {}
    for feature in schema.features:
        name, kind = feature.name, kinds[feature.name]
        ref = None if reference is None else reference.find_feature(name)
        if kind == "numeric":
            profile, seen = _numeric_profile(feature, result, height, ref)
        elif kind == "categorical":
            profile, seen = _categorical_profile(feature, result, height, top_categories, ref)
        else:
            count = int(result[f"{name}:count"][0])
            profile, seen = FeatureProfile(name, kind, str(feature.spec), height, count), None
        features.append(profile)
        if seen is not None:
            observed[name] = seen
    time_min = _as_utc(result["__time_min"][0]) if has_time else None
    time_max = _as_utc(result["__time_max"][0]) if has_time else None
    group_profile = GroupProfile(
        schema.name, schema.version, height, tuple(features), event_time_min=time_min, event_time_max=time_max
    )
    return group_profile, observed


def _expressions(name: str, kind: ProfileKind, dtype: pl.DataType, sample: pl.Series | None) -> list[pl.Expr]:
    column = pl.col(name)
    if kind == "numeric":
        values = column.cast(pl.Float64)
        if dtype.is_float():
            values = values.fill_nan(None)
        drawn = values if sample is None else values.gather(sample)
        return [
            values.count().alias(f"{name}:count"),
            values.min().alias(f"{name}:min"),
            values.max().alias(f"{name}:max"),
            values.mean().alias(f"{name}:mean"),
            values.std().alias(f"{name}:std"),
            drawn.drop_nulls().sort().implode().alias(f"{name}:sorted"),
        ]
    if kind == "categorical":
        # counted in the native type (casting a million booleans to text costs more than
        # counting them); only the distinct values are turned into text afterwards
        drawn = column if sample is None else column.gather(sample)
        return [
            column.count().alias(f"{name}:count"),
            drawn.drop_nulls().value_counts(name="count").implode().alias(f"{name}:values"),
        ]
    return [column.count().alias(f"{name}:count")]


def _numeric_profile(
    feature: FeatureSchema, result: pl.DataFrame, rows: int, ref: FeatureProfile | None
) -> tuple[FeatureProfile, tuple[float, ...] | None]:
    name = feature.name
    count = int(result[f"{name}:count"][0])
    ordered: pl.Series = result[f"{name}:sorted"][0]
    drawn = len(ordered)
    stats = {k: _float(result[f"{name}:{k}"][0]) for k in ("min", "max", "mean", "std")}
    quantiles: tuple[float, ...] = ()
    cdf: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()
    histogram: tuple[float, ...] = ()
    if drawn:
        positions = [math.floor(i / GRID_SIZE * (drawn - 1)) for i in range(GRID_SIZE + 1)]
        grid = ordered.gather(positions)
        quantiles = tuple(float(v) for v in grid)
        cdf = _shares_at(ordered, grid)
        low, high = stats["min"], stats["max"]
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            bins = HISTOGRAM_BINS if high > low else 1
            edges = (*(low + (high - low) * j / bins for j in range(bins)), high)
            cumulative = (0.0, *_shares_at(ordered, pl.Series(edges[1:], dtype=pl.Float64)))
            histogram = tuple(b - a for a, b in itertools.pairwise(cumulative))
    seen = None
    if ref is not None and ref.kind == "numeric" and ref.quantiles:
        seen = (
            _shares_at(ordered, pl.Series(ref.quantiles, dtype=pl.Float64))
            if drawn
            else tuple(0.0 for _ in ref.quantiles)
        )
    profile = FeatureProfile(
        name,
        "numeric",
        str(feature.spec),
        rows,
        count,
        stats["min"],
        stats["max"],
        stats["mean"],
        stats["std"],
        quantiles,
        cdf,
        edges,
        histogram,
        sampled=drawn,
    )
    return profile, seen


def _categorical_profile(
    feature: FeatureSchema, result: pl.DataFrame, rows: int, top: int, ref: FeatureProfile | None
) -> tuple[FeatureProfile, tuple[float, ...] | None]:
    name = feature.name
    count = int(result[f"{name}:count"][0])
    counts = result[f"{name}:values"][0].struct.unnest()
    value, freq = counts.columns[0], "count"
    counts = counts.with_columns(pl.col(value).cast(pl.String))
    # ties broken by value so that the kept categories never depend on hash order
    best = counts.top_k(top, by=[freq, value], reverse=[False, True]).sort(
        [freq, value], descending=[True, False]
    )
    drawn = int(counts[freq].sum())
    # sampled counts are scaled to the whole write (exact when nothing was sampled)
    scale = count / drawn if drawn else 0.0
    top_categories = tuple((str(v), round(int(c) * scale)) for v, c in best.iter_rows())
    seen = None
    if ref is not None and ref.kind == "categorical":
        wanted = [v for v, _ in ref.top_categories]
        found = dict(counts.filter(pl.col(value).is_in(wanted)).iter_rows())
        seen = tuple((found.get(v, 0) / drawn) if drawn else 0.0 for v in wanted)
    profile = FeatureProfile(
        name,
        "categorical",
        str(feature.spec),
        rows,
        count,
        top_categories=top_categories,
        distinct_count=counts.height,
        sampled=drawn,
    )
    return profile, seen


def _shares_at(ordered: pl.Series, points: pl.Series) -> tuple[float, ...]:
    """Return the share of ``ordered`` (sorted) values at or below each of ``points``."""
    total = len(ordered)
    if total == 0:
        return tuple(0.0 for _ in range(len(points)))
    return tuple(int(c) / total for c in ordered.search_sorted(points, side="right"))


def merge_profiles(profiles: Iterable[GroupProfile], *, top_categories: int = 20) -> GroupProfile:
    """Combine the profiles of several writes into one (e.g. a pinned time window).

    Counts, null rates, min, max, mean and std combine exactly. The CDF is the count-weighted
    mix of each profile's (interpolated) CDF, re-gridded at the usual levels; categories add
    up over each profile's top categories (a category outside some profile's top list is
    undercounted there). The histogram is rebuilt from the merged CDF.

    Raises:
        SchemaValidationError: If ``profiles`` is empty.
    """
    parts = list(profiles)
    if not parts:
        raise SchemaValidationError("cannot merge an empty list of profiles")
    if len(parts) == 1:
        return parts[0]
    names: list[str] = []
    for part in parts:
        names.extend(n for n in part.feature_names if n not in names)
    merged: list[FeatureProfile] = []
    for name in names:
        found = [(p.rows, p.find_feature(name)) for p in parts]
        present = [f for _, f in found if f is not None]
        rows = sum(r for r, _ in found)
        merged.append(_merge_feature(present, rows, top_categories))
    times_min = [p.event_time_min for p in parts if p.event_time_min is not None]
    times_max = [p.event_time_max for p in parts if p.event_time_max is not None]
    return GroupProfile(
        parts[-1].group,
        parts[-1].version,
        sum(p.rows for p in parts),
        tuple(merged),
        event_time_min=min(times_min) if times_min else None,
        event_time_max=max(times_max) if times_max else None,
    )


def _merge_feature(parts: list[FeatureProfile], rows: int, top: int) -> FeatureProfile:
    first = parts[0]
    count = sum(p.count for p in parts)
    if first.kind == "categorical":
        totals: dict[str, int] = {}
        for part in parts:
            for value, n in part.top_categories:
                totals[value] = totals.get(value, 0) + n
        best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top]
        return FeatureProfile(first.name, first.kind, first.dtype, rows, count, top_categories=tuple(best))
    if first.kind != "numeric":
        return FeatureProfile(first.name, first.kind, first.dtype, rows, count)
    filled = [p for p in parts if p.count > 0 and p.quantiles]
    if not filled:
        return FeatureProfile(first.name, first.kind, first.dtype, rows, count)
    weights = [p.count / count for p in filled]
    mean = sum(w * (p.mean or 0.0) for w, p in zip(weights, filled, strict=True))
    squares = sum((p.count - 1) * (p.std or 0.0) ** 2 + p.count * (p.mean or 0.0) ** 2 for p in filled)
    std = math.sqrt(max(squares - count * mean**2, 0.0) / (count - 1)) if count > 1 else None
    low = min(p.min for p in filled if p.min is not None)
    high = max(p.max for p in filled if p.max is not None)
    points = sorted({v for p in filled for v in p.quantiles})

    def mixed(x: float) -> float:
        return sum(w * p.cdf_at(x) for w, p in zip(weights, filled, strict=True))

    shares = [mixed(x) for x in points]
    quantiles, cdf = [], []
    for i in range(GRID_SIZE + 1):
        level = i / GRID_SIZE
        index = min(bisect.bisect_left(shares, level - 1e-12), len(points) - 1)
        quantiles.append(points[index])
        cdf.append(shares[index])
    edges: tuple[float, ...] = ()
    histogram: tuple[float, ...] = ()
    if math.isfinite(low) and math.isfinite(high):
        bins = HISTOGRAM_BINS if high > low else 1
        edges = (*(low + (high - low) * j / bins for j in range(bins)), high)
        cumulative = [0.0, *(mixed(e) for e in edges[1:])]
        histogram = tuple(b - a for a, b in itertools.pairwise(cumulative))
    return FeatureProfile(
        first.name,
        "numeric",
        first.dtype,
        rows,
        count,
        low,
        high,
        mean,
        std,
        tuple(quantiles),
        tuple(cdf),
        edges,
        histogram,
        sampled=sum(p.sampled for p in filled),
    )


def _float(value: Any) -> float | None:
    """Return ``value`` as a float; None for a missing or undefined (NaN) statistic."""
    if value is None or math.isnan(float(value)):
        return None
    return float(value)


def _json_float(value: float | None) -> float | str | None:
    """Return ``value`` as JSON-safe data (non-finite floats as strings)."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _from_json_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _as_utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
