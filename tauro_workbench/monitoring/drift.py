"""Drift statistics and the :class:`DriftReport` comparing a write with its reference.

Statistics, per feature (reference = the profile compared against):

- **PSI** (population stability index) ``sum((c_i - r_i) * ln(c_i / r_i))`` over bins, with
  ``r_i``/``c_i`` the reference/current share of non-null values in bin ``i``. An empty bin
  would make the log infinite, so every share is floored at ``PSI_EPSILON`` (1e-4) before the
  sum (no renormalisation; a bin empty on both sides adds 0). Numeric bins come from the
  reference quantiles: ``bins`` (config, default 10) bins cut at the reference grid values at
  levels ``j / bins`` (equal values merged), open-ended at both sides, right-closed.
  Categorical bins are the reference's top categories plus one "other" bin for the rest.
- **KS** (two-sample Kolmogorov-Smirnov statistic, numeric only) ``max |F_cur(x) - F_ref(x)|``
  evaluated at the reference's 101 quantile-grid values, where both CDFs are known (exactly
  up to sampling; see :mod:`.profile`). This is a lower bound of the exact statistic and at
  most the largest reference mass between two neighbouring grid values below it, i.e. within
  about 0.01 for continuous data (scipy's ``ks_2samp`` is the test oracle).
- **null-rate change**: ``current null rate - reference null rate`` (signed).

A feature's verdict is ``"drift"`` when PSI >= ``psi_drift``, KS >= ``ks_drift`` or the absolute
null-rate change >= ``null_rate_change``; else ``"warning"`` when PSI >= ``psi_warning``; else
``"ok"`` (thresholds from :meth:`DriftConfig.thresholds_for`, per group and per feature). The
report's verdict is the worst feature verdict, ``"no_reference"`` on a group's first write,
or ``"insufficient_data"`` when either side has fewer than ``min_rows`` rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from tauro_workbench.config import DriftConfig
from tauro_workbench.monitoring.profile import GRID_SIZE, FeatureProfile, GroupProfile

__all__ = ["PSI_EPSILON", "DriftReport", "FeatureDrift", "compare_profiles", "ks_statistic", "psi"]

PSI_EPSILON = 1e-4
"""Floor of every bin share in PSI, so that empty bins give a large but finite value."""
OTHER = "(other)"
"""Label of the categorical bin holding every category outside the reference's top list."""

FeatureVerdict = Literal["ok", "warning", "drift"]
ReportVerdict = Literal["ok", "warning", "drift", "no_reference", "insufficient_data"]
_RANK = {"ok": 0, "warning": 1, "drift": 2}


def psi(reference: Sequence[float], current: Sequence[float], *, epsilon: float = PSI_EPSILON) -> float:
    """Return the population stability index of two aligned share vectors.

    Shares are floored at ``epsilon`` so that empty bins stay finite.

    Example:
        >>> round(psi([0.5, 0.5], [0.25, 0.75]), 4)
        0.2747
    """
    if len(reference) != len(current):
        raise ValueError(f"psi needs aligned bins, got {len(reference)} and {len(current)} shares")
    total = 0.0
    for r, c in zip(reference, current, strict=True):
        r, c = max(r, epsilon), max(c, epsilon)
        total += (c - r) * math.log(c / r)
    return total


def ks_statistic(reference_cdf: Sequence[float], current_cdf: Sequence[float]) -> float:
    """Return ``max |F_ref - F_cur|`` over CDF values taken at the same points (0 when empty)."""
    return max((abs(r - c) for r, c in zip(reference_cdf, current_cdf, strict=True)), default=0.0)


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature against the reference.

    Attributes:
        feature: Feature name.
        kind: ``numeric``, ``categorical`` or ``other`` (null-rate change only).
        psi: Population stability index (None for ``other``).
        ks: Kolmogorov-Smirnov statistic (numeric features only).
        null_rate_change: Current minus reference null rate.
        verdict: ``ok``, ``warning`` or ``drift``.
        reasons: The thresholds crossed, e.g. ``"psi 0.31 >= 0.25"``.
        bins: Bin labels used by PSI.
        reference_share: Reference share per bin.
        current_share: Current share per bin.
        psi_warning, psi_drift: The PSI thresholds that applied.
    """

    feature: str
    kind: str
    psi: float | None
    ks: float | None
    null_rate_change: float
    verdict: FeatureVerdict
    reasons: tuple[str, ...] = ()
    bins: tuple[str, ...] = ()
    reference_share: tuple[float, ...] = ()
    current_share: tuple[float, ...] = ()
    psi_warning: float = 0.1
    psi_drift: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        """Return the feature drift as JSON-ready data."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "psi": self.psi,
            "ks": self.ks,
            "null_rate_change": self.null_rate_change,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "bins": list(self.bins),
            "reference_share": list(self.reference_share),
            "current_share": list(self.current_share),
            "psi_warning": self.psi_warning,
            "psi_drift": self.psi_drift,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDrift:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            feature=str(data["feature"]),
            kind=str(data["kind"]),
            psi=None if data.get("psi") is None else float(data["psi"]),
            ks=None if data.get("ks") is None else float(data["ks"]),
            null_rate_change=float(data.get("null_rate_change", 0.0)),
            verdict=data["verdict"],
            reasons=tuple(data.get("reasons", ())),
            bins=tuple(str(b) for b in data.get("bins", ())),
            reference_share=tuple(float(v) for v in data.get("reference_share", ())),
            current_share=tuple(float(v) for v in data.get("current_share", ())),
            psi_warning=float(data.get("psi_warning", 0.1)),
            psi_drift=float(data.get("psi_drift", 0.25)),
        )


@dataclass(frozen=True)
class DriftReport:
    """The drift check of one write against its reference.

    Attributes:
        group: Feature group name.
        version: Feature group version.
        verdict: ``ok``, ``warning``, ``drift``, ``no_reference`` (first write) or
            ``insufficient_data`` (fewer rows than ``min_rows`` on either side).
        reference: What the write was compared with, e.g. ``"previous write #4"``.
        features: Per-feature results (empty without a reference).
        rows: Rows in the write.
        reference_rows: Rows in the reference (0 without one).
        reference_write_ids: Write ids the reference profile comes from.
        on_drift: The gate that applied: ``warn``, ``block`` or ``ignore``.
        write_id: Id of the recorded write (None before the write, or when blocked).
        created_at: When the check ran (UTC).
        profile: The profile of the write (not part of :meth:`to_dict`; stored separately).
    """

    group: str
    version: int
    verdict: ReportVerdict
    reference: str
    features: tuple[FeatureDrift, ...] = ()
    rows: int = 0
    reference_rows: int = 0
    reference_write_ids: tuple[int, ...] = ()
    on_drift: str = "warn"
    write_id: int | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    profile: GroupProfile | None = field(default=None, compare=False, repr=False)

    @property
    def drifted(self) -> list[str]:
        """Names of the features whose verdict is ``drift``."""
        return [f.feature for f in self.features if f.verdict == "drift"]

    @property
    def warned(self) -> list[str]:
        """Names of the features whose verdict is ``warning``."""
        return [f.feature for f in self.features if f.verdict == "warning"]

    @property
    def max_psi(self) -> float | None:
        """The largest PSI over the features, or None."""
        values = [f.psi for f in self.features if f.psi is not None]
        return max(values) if values else None

    def feature(self, name: str) -> FeatureDrift:
        """Return the result of feature ``name``.

        Raises:
            KeyError: If the report has no such feature (the valid names are listed).
        """
        for item in self.features:
            if item.feature == name:
                return item
        raise KeyError(
            f"the drift report of {self.group!r} has no feature {name!r}; features: {[f.feature for f in self.features]}"
        )

    def to_polars(self) -> pl.DataFrame:
        """Return one row per feature: feature, kind, psi, ks, null_rate_change, verdict, reasons."""
        return pl.DataFrame(
            [
                {
                    "feature": f.feature,
                    "kind": f.kind,
                    "psi": f.psi,
                    "ks": f.ks,
                    "null_rate_change": f.null_rate_change,
                    "verdict": f.verdict,
                    "reasons": "; ".join(f.reasons),
                }
                for f in self.features
            ],
            schema={
                "feature": pl.String,
                "kind": pl.String,
                "psi": pl.Float64,
                "ks": pl.Float64,
                "null_rate_change": pl.Float64,
                "verdict": pl.String,
                "reasons": pl.String,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the report (without the profile) as JSON-ready data."""
        return {
            "group": self.group,
            "version": self.version,
            "verdict": self.verdict,
            "reference": self.reference,
            "features": [f.to_dict() for f in self.features],
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "reference_write_ids": list(self.reference_write_ids),
            "on_drift": self.on_drift,
            "write_id": self.write_id,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """Rebuild a report from :meth:`to_dict` output."""
        created = data.get("created_at")
        return cls(
            group=str(data["group"]),
            version=int(data["version"]),
            verdict=data["verdict"],
            reference=str(data.get("reference", "")),
            features=tuple(FeatureDrift.from_dict(f) for f in data.get("features", ())),
            rows=int(data.get("rows", 0)),
            reference_rows=int(data.get("reference_rows", 0)),
            reference_write_ids=tuple(int(i) for i in data.get("reference_write_ids", ())),
            on_drift=str(data.get("on_drift", "warn")),
            write_id=None if data.get("write_id") is None else int(data["write_id"]),
            created_at=datetime.fromisoformat(created) if created else datetime.now(UTC),
        )

    def __repr__(self) -> str:
        try:
            worst = ", ".join(self.drifted or self.warned) or "-"
            return (
                f"DriftReport(group={self.group!r}, version={self.version}, verdict={self.verdict!r}, "
                f"reference={self.reference!r}, features={len(self.features)}, flagged=[{worst}])"
            )
        except Exception:  # a repr must never raise
            return object.__repr__(self)

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)

    def _display_(self) -> Any:
        # marimo only (it calls _display_): the verdict table with an interactive Altair chart,
        # resolved lazily so the core never imports the notebook extra.
        from tauro_workbench.notebook.display import drift_view

        return drift_view(self)


def compare_profiles(
    reference: GroupProfile,
    current: GroupProfile,
    config: DriftConfig,
    *,
    observed: Mapping[str, Sequence[float]] | None = None,
    reference_label: str = "reference",
    reference_write_ids: Sequence[int] = (),
    on_drift: str = "warn",
) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature and return the report.

    Args:
        reference: The profile compared against.
        current: The profile of the new data.
        config: Thresholds (per group and feature), PSI bins and ``min_rows``.
        observed: From :func:`~tauro_workbench.monitoring.profile.profile_frame` with this
            reference: the new data's shares on the reference grid and categories, measured
            on the data itself. Without it they are read off ``current`` (numeric CDF
            interpolated between its grid values; categories outside its top list count 0).
        reference_label: How the reference is described in the report.
        reference_write_ids: Writes the reference comes from.
        on_drift: The gate recorded in the report.

    Returns:
        The report; features missing on either side are left out.

    Example:
        >>> from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
        >>> from tauro_workbench.monitoring.profile import profile_frame
        >>> schema = FeatureGroupSchema("g", entity_keys=["id"], features=[FeatureSchema("x", DataType.DOUBLE)])
        >>> ref, _ = profile_frame(schema, pl.DataFrame({"id": range(100), "x": [float(i) for i in range(100)]}))
        >>> cur, seen = profile_frame(schema, pl.DataFrame({"id": range(100), "x": [float(i) for i in range(100)]}), reference=ref)
        >>> compare_profiles(ref, cur, DriftConfig(), observed=seen).verdict
        'ok'
    """
    observed = observed or {}
    common = dict(
        group=current.group,
        version=current.version,
        reference=reference_label,
        rows=current.rows,
        reference_rows=reference.rows,
        reference_write_ids=tuple(reference_write_ids),
        on_drift=on_drift,
        profile=current,
    )
    if current.rows < config.min_rows or reference.rows < config.min_rows:
        return DriftReport(verdict="insufficient_data", **common)  # type: ignore[arg-type]
    results: list[FeatureDrift] = []
    for feature in current.features:
        ref = reference.find_feature(feature.name)
        if ref is None:
            continue
        results.append(_feature_drift(ref, feature, config, current.group, observed.get(feature.name)))
    worst = max((f.verdict for f in results), key=_RANK.__getitem__, default="ok")
    return DriftReport(verdict=worst, features=tuple(results), **common)  # type: ignore[arg-type]


def _feature_drift(
    ref: FeatureProfile, cur: FeatureProfile, config: DriftConfig, group: str, seen: Sequence[float] | None
) -> FeatureDrift:
    limits = config.thresholds_for(group, cur.name)
    null_change = cur.null_rate - ref.null_rate
    value_psi: float | None = None
    value_ks: float | None = None
    labels: tuple[str, ...] = ()
    ref_share: tuple[float, ...] = ()
    cur_share: tuple[float, ...] = ()
    both_have_values = ref.count > 0 and cur.count > 0
    if ref.kind == cur.kind == "numeric" and both_have_values and ref.quantiles:
        cur_cdf = tuple(seen) if seen is not None else tuple(cur.cdf_at(x) for x in ref.quantiles)
        value_ks = ks_statistic(ref.cdf, cur_cdf)
        labels, ref_share, cur_share = _numeric_bins(ref, cur_cdf, config.bins)
        value_psi = psi(ref_share, cur_share)
    elif ref.kind == cur.kind == "categorical" and both_have_values:
        labels, ref_share, cur_share = _categorical_bins(ref, cur, seen)
        value_psi = psi(ref_share, cur_share)
    reasons: list[str] = []
    verdict: FeatureVerdict = "ok"
    if value_psi is not None and value_psi >= limits.psi_drift:
        reasons.append(f"psi {value_psi:.3f} >= {limits.psi_drift}")
    if value_ks is not None and value_ks >= limits.ks_drift:
        reasons.append(f"ks {value_ks:.3f} >= {limits.ks_drift}")
    if abs(null_change) >= limits.null_rate_change and abs(null_change) > 0:
        reasons.append(f"null rate {ref.null_rate:.3f} -> {cur.null_rate:.3f}")
    if reasons:
        verdict = "drift"
    elif value_psi is not None and value_psi >= limits.psi_warning:
        reasons.append(f"psi {value_psi:.3f} >= {limits.psi_warning}")
        verdict = "warning"
    return FeatureDrift(
        cur.name,
        cur.kind,
        value_psi,
        value_ks,
        null_change,
        verdict,
        tuple(reasons),
        labels,
        ref_share,
        cur_share,
        limits.psi_warning,
        limits.psi_drift,
    )


def _numeric_bins(
    ref: FeatureProfile, cur_cdf: Sequence[float], bins: int
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """Cut at the reference grid values at levels ``j / bins``; return labels and shares."""
    cuts: list[int] = []
    for j in range(1, bins):
        index = round(j * GRID_SIZE / bins)
        # equal grid values have equal CDFs and would give empty bins: cut once per value
        if cuts and ref.quantiles[cuts[-1]] == ref.quantiles[index]:
            continue
        cuts.append(index)
    ref_cum = [0.0, *(ref.cdf[i] for i in cuts), 1.0]
    cur_cum = [0.0, *(cur_cdf[i] for i in cuts), 1.0]
    ref_share = tuple(max(b - a, 0.0) for a, b in itertools.pairwise(ref_cum))
    cur_share = tuple(max(b - a, 0.0) for a, b in itertools.pairwise(cur_cum))
    edges = [f"{ref.quantiles[i]:.4g}" for i in cuts]
    labels = (
        tuple(
            f"<= {edges[0]}"
            if k == 0
            else f"> {edges[-1]}"
            if k == len(edges)
            else f"({edges[k - 1]}, {edges[k]}]"
            for k in range(len(edges) + 1)
        )
        if edges
        else ("all",)
    )
    return labels, ref_share, cur_share


def _categorical_bins(
    ref: FeatureProfile, cur: FeatureProfile, seen: Sequence[float] | None
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    names = [v for v, _ in ref.top_categories]
    ref_share = [n / ref.count for _, n in ref.top_categories]
    if seen is None:
        mine = dict(cur.top_categories)
        cur_share = [mine.get(v, 0) / cur.count for v in names]
    else:
        cur_share = list(seen)
    labels = (*names, OTHER)
    ref_rest = max(1.0 - sum(ref_share), 0.0)
    cur_rest = max(1.0 - sum(cur_share), 0.0)
    return labels, (*ref_share, ref_rest), (*cur_share, cur_rest)
