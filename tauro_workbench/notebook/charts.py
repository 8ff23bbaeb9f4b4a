"""Drift charts (Altair; the ``notebook`` extra): overview, distributions, PSI over time.

Each function returns an Altair chart object: display it in marimo or Jupyter, or export it
offline with :func:`to_svg` / :func:`to_png` (rendered by ``vl-convert``, no CDN). Altair is
imported when a chart is built, never by ``import tauro_workbench``. Data is embedded in the
chart as inline values, so a chart renders without access to any file or URL.

Example:
    >>> chart = drift_overview(report)              # doctest: +SKIP
    >>> svg = to_svg(chart)                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from tauro_workbench.config import DriftThresholds
from tauro_workbench.exceptions import ConfigurationError, FeatureNotFoundError, MissingExtraError
from tauro_workbench.monitoring.drift import DriftReport
from tauro_workbench.monitoring.monitor import drift_history
from tauro_workbench.registry import FeatureStoreMetadata

if TYPE_CHECKING:
    import altair as alt

__all__ = ["distribution", "drift_overview", "feature_over_time", "psi_over_time", "to_png", "to_svg"]

# Colours mean one thing each: green/orange/red are verdicts only; statistics get blue (PSI) and
# purple (KS); thresholds are grey marks named in their tooltip and label.
_VERDICT_COLORS = {"domain": ["ok", "warning", "drift"], "range": ["#2e7d32", "#ef6c00", "#c62828"]}
_STATISTIC_COLORS = {"domain": ["PSI", "KS"], "range": ["#1565c0", "#6a1b9a"]}
_THRESHOLD_GREYS = {"domain": ["warning", "drift"], "range": ["#9e9e9e", "#424242"]}
_LABEL_LIMIT = 160


def _altair() -> Any:
    try:
        import altair
    except ImportError as err:
        raise MissingExtraError("altair", extra="notebook") from err
    return altair


def drift_overview(report: DriftReport, *, width: int = 420) -> alt.LayerChart:
    """Chart the PSI of every feature of a report as bars, with its warning and drift thresholds.

    Bars are coloured by verdict; ticks mark each feature's own thresholds (they can differ
    per feature). Features without a PSI (complex types) are left out.

    Example:
        >>> drift_overview(report).properties(title="transactions")  # doctest: +SKIP
    """
    alt = _altair()
    rows = [
        {
            "feature": f.feature,
            "psi": f.psi,
            "verdict": f.verdict,
            "ks": f.ks,
            "psi_warning": f.psi_warning,
            "psi_drift": f.psi_drift,
        }
        for f in report.features
        if f.psi is not None
    ]
    data = alt.Data(values=rows)
    height = max(60, 22 * len(rows))
    base = alt.Chart(data).encode(
        y=alt.Y("feature:N", sort=None, title=None, axis=alt.Axis(labelLimit=_LABEL_LIMIT))
    )
    bars = base.mark_bar().encode(
        x=alt.X("psi:Q", title="PSI"),
        color=alt.Color("verdict:N", scale=alt.Scale(**_VERDICT_COLORS), title="verdict"),
        tooltip=[
            "feature:N",
            alt.Tooltip("psi:Q", format=".4f"),
            alt.Tooltip("ks:Q", format=".4f"),
            "verdict:N",
        ],
    )
    warning = base.mark_tick(color=_THRESHOLD_GREYS["range"][0], thickness=2).encode(
        x="psi_warning:Q", tooltip=[alt.Tooltip("psi_warning:Q", title="warning threshold")]
    )
    drift = base.mark_tick(color=_THRESHOLD_GREYS["range"][1], thickness=2).encode(
        x="psi_drift:Q", tooltip=[alt.Tooltip("psi_drift:Q", title="drift threshold")]
    )
    title = f"Drift of {report.group} v{report.version} vs {report.reference}: {report.verdict}"
    return alt.layer(bars, warning, drift).properties(width=width, height=height, title=title)


def distribution(report: DriftReport, feature: str, *, width: int = 420) -> alt.Chart:
    """Chart the reference and current share of one feature per PSI bin, side by side.

    Numeric bins are the reference quantile bins; categorical bins are the reference's top
    categories and "(other)".

    Raises:
        FeatureNotFoundError: If the report has no binned result for ``feature``.

    Example:
        >>> distribution(report, "amount")  # doctest: +SKIP
    """
    alt = _altair()
    found = next((f for f in report.features if f.feature == feature and f.bins), None)
    if found is None:
        raise FeatureNotFoundError(
            f"{report.group}.{feature}",
            candidates=[f"{report.group}.{f.feature}" for f in report.features if f.bins],
            reason=f"The drift report of {report.group!r} has no distribution for {feature!r}.",
        )
    rows: list[dict[str, Any]] = []
    for order, (label, ref, cur) in enumerate(
        zip(found.bins, found.reference_share, found.current_share, strict=True)
    ):
        rows.append({"bin": label, "order": order, "side": "reference", "share": ref})
        rows.append({"bin": label, "order": order, "side": "current", "share": cur})
    psi_text = "-" if found.psi is None else f"{found.psi:.3f}"
    return (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            x=alt.X(
                "bin:N",
                sort=list(found.bins),
                title="reference quantile bin" if found.kind == "numeric" else "category",
                # bin labels such as "(12.5, 48.3]" overlap when horizontal
                axis=alt.Axis(labelAngle=-35, labelLimit=_LABEL_LIMIT, labelOverlap=False),
            ),
            xOffset=alt.XOffset("side:N", sort=["reference", "current"]),
            y=alt.Y("share:Q", title="share of values", axis=alt.Axis(format="%")),
            color=alt.Color(
                "side:N", sort=["reference", "current"], scale=alt.Scale(range=["#9e9e9e", "#1565c0"])
            ),
            tooltip=["bin:N", "side:N", alt.Tooltip("share:Q", format=".2%")],
        )
        .properties(
            width=width,
            title=f"{report.group}.{feature}: reference vs current (PSI {psi_text}, {found.verdict})",
        )
    )


def psi_over_time(
    history: pl.DataFrame | FeatureStoreMetadata,
    group: str | None = None,
    *,
    features: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    width: int = 480,
) -> alt.LayerChart:
    """Chart the PSI of each feature of a group write after write, with threshold rules.

    Args:
        history: A frame from :func:`~tauro_workbench.monitoring.drift_history`, or the
            registry (then ``group`` is required).
        group: The feature group, when ``history`` is the registry.
        features: Only these features (default: all with a PSI).
        thresholds: Where to draw the warning and drift rules (default 0.1 and 0.25).
        width: Chart width in pixels.

    Raises:
        ConfigurationError: If ``history`` is the registry and ``group`` is missing.

    Example:
        >>> psi_over_time(store.metadata, "transactions")  # doctest: +SKIP
    """
    alt = _altair()
    if isinstance(history, FeatureStoreMetadata):
        if group is None:
            raise ConfigurationError("psi_over_time needs group= when history is the registry.")
        history = drift_history(history, group)
    frame = history.filter(pl.col("psi").is_not_null())
    if features is not None:
        frame = frame.filter(pl.col("feature").is_in(list(features)))
    limits = thresholds or DriftThresholds()
    rows = [
        {**row, "written_at": row["written_at"].isoformat() if row["written_at"] is not None else None}
        for row in frame.select("write_id", "written_at", "feature", "psi", "verdict").iter_rows(named=True)
    ]
    lines = (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=True)
        .encode(
            x=alt.X("write_id:O", title="write", axis=alt.Axis(labelAngle=0, labelOverlap="parity")),
            y=alt.Y("psi:Q", title="PSI"),
            color=alt.Color("feature:N"),
            tooltip=[
                "write_id:O",
                "written_at:T",
                "feature:N",
                alt.Tooltip("psi:Q", format=".4f"),
                "verdict:N",
            ],
        )
    )
    rules = (
        alt.Chart(
            alt.Data(
                values=[
                    {"level": "warning", "psi": limits.psi_warning},
                    {"level": "drift", "psi": limits.psi_drift},
                ]
            )
        )
        .mark_rule(strokeDash=[4, 4])
        .encode(
            y="psi:Q",
            color=alt.Color("level:N", scale=alt.Scale(**_THRESHOLD_GREYS), legend=None),
            tooltip=["level:N", alt.Tooltip("psi:Q", title="threshold")],
        )
    )
    title = f"PSI over time{'' if group is None else f' of {group}'}"
    return alt.layer(lines, rules).resolve_scale(color="independent").properties(width=width, title=title)


def feature_over_time(
    history: pl.DataFrame | FeatureStoreMetadata,
    group: str | None = None,
    feature: str | None = None,
    *,
    thresholds: DriftThresholds | None = None,
    width: int = 420,
) -> alt.VConcatChart:
    """Chart one feature's drift write after write: PSI (with its thresholds) above KS.

    PSI and KS have their own panel, axis and colour (blue and purple), so neither is read on
    the other's scale; each point is coloured by the write's verdict for that feature.

    Args:
        history: A frame from :func:`~tauro_workbench.monitoring.drift_history`, or the registry.
        group: The feature group, when ``history`` is the registry.
        feature: The feature to chart.
        thresholds: Where to draw the PSI warning and drift rules (default 0.1 and 0.25).
        width: Chart width in pixels.

    Raises:
        ConfigurationError: If ``feature`` is missing, or ``group`` is when ``history`` is the registry.
        FeatureNotFoundError: If the history has no drift values for ``feature``.

    Example:
        >>> feature_over_time(wb.metadata, "card_transactions", "amount")  # doctest: +SKIP
    """
    alt = _altair()
    if feature is None:
        raise ConfigurationError("feature_over_time needs feature=, the feature to chart.")
    if isinstance(history, FeatureStoreMetadata):
        if group is None:
            raise ConfigurationError("feature_over_time needs group= when history is the registry.")
        history = drift_history(history, group)
    frame = history.filter((pl.col("feature") == feature) & pl.col("psi").is_not_null())
    if frame.height == 0:
        known = sorted(set(history.filter(pl.col("psi").is_not_null())["feature"].to_list()))
        raise FeatureNotFoundError(
            f"{group or 'group'}.{feature}",
            candidates=known,
            reason=f"No drift values for {feature!r} in this history.",
        )
    limits = thresholds or DriftThresholds()
    rows = [
        {"write": int(r["write_id"]), "statistic": stat, "value": r[column], "verdict": r["verdict"]}
        for r in frame.select("write_id", "psi", "ks", "verdict").iter_rows(named=True)
        for stat, column in (("PSI", "psi"), ("KS", "ks"))
        if r[column] is not None
    ]
    x = alt.X("write:O", title="write", axis=alt.Axis(labelAngle=0, labelOverlap="parity"))

    def panel(stat: str, *extra: Any) -> Any:
        base = alt.Chart(alt.Data(values=[r for r in rows if r["statistic"] == stat]))
        colour = _STATISTIC_COLORS["range"][_STATISTIC_COLORS["domain"].index(stat)]
        line = base.mark_line(color=colour).encode(x=x, y=alt.Y("value:Q", title=stat))
        points = base.mark_point(filled=True, size=60).encode(
            x=x,
            y="value:Q",
            color=alt.Color("verdict:N", scale=alt.Scale(**_VERDICT_COLORS), title="verdict"),
            tooltip=["write:O", alt.Tooltip("value:Q", title=stat, format=".4f"), "verdict:N"],
        )
        return alt.layer(line, points, *extra).properties(width=width, height=120, title=f"{feature}: {stat}")

    def rule(level: str, value: float) -> Any:
        grey = _THRESHOLD_GREYS["range"][_THRESHOLD_GREYS["domain"].index(level)]
        return (
            alt.Chart(alt.Data(values=[{"level": level, "value": value}]))
            .mark_rule(strokeDash=[4, 4], color=grey)
            .encode(y="value:Q", tooltip=["level:N", alt.Tooltip("value:Q", title="threshold")])
        )

    psi_panel = panel("PSI", rule("warning", limits.psi_warning), rule("drift", limits.psi_drift))
    return alt.vconcat(psi_panel, panel("KS")).properties(
        title=f"Drift of {group + '.' if group else ''}{feature} over time"
    )


def to_svg(chart: alt.TopLevelMixin) -> str:
    """Render ``chart`` to an SVG string offline (vl-convert; no network).

    Raises:
        MissingExtraError: If ``vl-convert-python`` is not installed.
    """
    return str(_vl_convert().vegalite_to_svg(chart.to_json()))


def to_png(chart: alt.TopLevelMixin, *, scale: float = 1.0) -> bytes:
    """Render ``chart`` to PNG bytes offline (vl-convert; no network).

    Raises:
        MissingExtraError: If ``vl-convert-python`` is not installed.
    """
    return bytes(_vl_convert().vegalite_to_png(chart.to_json(), scale=scale))


def _vl_convert() -> Any:
    try:
        import vl_convert
    except ImportError as err:
        raise MissingExtraError("vl-convert-python", extra="notebook") from err
    return vl_convert
