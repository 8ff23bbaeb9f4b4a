"""WriteMonitor: profiles every write, compares it with a reference, and gates it on drift.

The materialized store calls :meth:`WriteMonitor.before_write` once the data is validated and
before anything is written, and :meth:`WriteMonitor.after_write` once the write is committed
and recorded. Where things are kept in the registry:

- the profile and the drift report of a write go into that write's details
  (``details["profile"]``: :meth:`GroupProfile.to_dict`, ``details["drift"]``:
  :meth:`DriftReport.to_dict`), so they live and die with the write history;
- a pinned baseline is the registry document of kind ``"drift_baseline"`` named after the group.

The reference of a write is the pinned baseline of its group when there is one, else the
previous profiled write of the same group and version. A group's first write has no reference:
its report has the verdict ``"no_reference"`` (and is stored, so the write becomes the next
reference).

Gate (``on_drift`` argument, else ``config.drift.on_drift``): ``"block"`` raises
:class:`~tauro_workbench.exceptions.DriftDetectedError` from :meth:`before_write` when the
verdict is ``"drift"`` (a :class:`DriftDetected` event with ``blocked=True`` is published first);
``"warn"`` logs a WARNING and publishes :class:`DriftDetected` after the write for a ``drift``
or ``warning`` verdict, and a ``drift`` verdict also emits a Python
:class:`~tauro_workbench.exceptions.DriftWarning` (visible in notebooks while loguru stays off);
``"ignore"`` only stores the report. Writes or references with fewer than ``drift.min_rows``
rows (default 100) are profiled but judged ``"insufficient_data"``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from loguru import logger

from tauro_workbench.config import DriftConfig
from tauro_workbench.exceptions import (
    ConfigurationError,
    DriftDetectedError,
    DriftWarning,
    FeatureGroupNotFoundError,
)
from tauro_workbench.frames import FrameLike, to_dataframe
from tauro_workbench.monitoring.drift import DriftReport, compare_profiles
from tauro_workbench.monitoring.events import DriftDetected, EventBus
from tauro_workbench.monitoring.profile import GroupProfile, merge_profiles, profile_frame
from tauro_workbench.registry import FeatureStoreMetadata, WriteRecord
from tauro_workbench.schema import FeatureGroupSchema

__all__ = ["BASELINE_KIND", "Reference", "WriteMonitor", "drift_history", "list_reports"]

BASELINE_KIND = "drift_baseline"
"""Registry document kind of pinned baselines (one document per group, named after it)."""
_LOOKBACK = 50
_GATES = ("warn", "block", "ignore")


@dataclass(frozen=True)
class Reference:
    """What a write is compared with: a profile, how to describe it, and its write ids."""

    profile: GroupProfile
    label: str
    write_ids: tuple[int, ...] = ()


class WriteMonitor:
    """Profiles writes, checks them for drift, and gates them.

    Args:
        metadata: The registry holding write history, profiles and baselines.
        config: Drift options (thresholds, bins, gate, sampling).
        bus: Where :class:`DriftDetected` events are published.

    Example:
        >>> import polars as pl
        >>> from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema
        >>> from tauro_workbench.config import DriftConfig
        >>> metadata = FeatureStoreMetadata()
        >>> monitor = WriteMonitor(metadata, DriftConfig(), EventBus(metadata))
        >>> schema = FeatureGroupSchema("g", entity_keys=["id"], features=[FeatureSchema("x", DataType.DOUBLE)])
        >>> report = monitor.before_write(schema, pl.DataFrame({"id": [1], "x": [1.0]}))
        >>> report.verdict
        'no_reference'
    """

    def __init__(self, metadata: FeatureStoreMetadata, config: DriftConfig, bus: EventBus) -> None:
        self.metadata = metadata
        self.config = config
        self.bus = bus

    # -- the write hooks ------------------------------------------------------------------
    def before_write(
        self, schema: FeatureGroupSchema, data: FrameLike, *, on_drift: str | None = None
    ) -> DriftReport | None:
        """Profile ``data``, compare it with the reference, and apply the gate.

        Args:
            schema: The group written.
            data: The validated frame about to be written.
            on_drift: ``"warn"``, ``"block"`` or ``"ignore"``; None uses ``config.on_drift``.

        Returns:
            The report (carrying the profile, for :meth:`after_write`), or None when drift
            monitoring is disabled.

        Raises:
            DriftDetectedError: With ``on_drift="block"`` when the verdict is ``"drift"``.
            ConfigurationError: If ``on_drift`` is not a known gate.
        """
        if not self.config.enabled:
            return None
        gate = self._gate(on_drift)
        reference = self.reference_for(schema)
        profile, observed = profile_frame(
            schema,
            to_dataframe(data),
            reference=None if reference is None else reference.profile,
            sample_rows=self.config.sample_rows,
            top_categories=self.config.top_categories,
        )
        if reference is None:
            report = DriftReport(
                schema.name,
                schema.version,
                "no_reference",
                "nothing (first write)",
                rows=profile.rows,
                on_drift=gate,
                profile=profile,
            )
        else:
            report = compare_profiles(
                reference.profile,
                profile,
                self.config,
                observed=observed,
                reference_label=reference.label,
                reference_write_ids=reference.write_ids,
                on_drift=gate,
            )
        logger.debug(
            "drift check of {} v{}: {} against {}",
            schema.name,
            schema.version,
            report.verdict,
            report.reference,
        )
        if gate == "block" and report.verdict == "drift":
            self._publish(report, blocked=True)
            reasons = "; ".join(
                f"{f.feature}: {', '.join(f.reasons)}" for f in report.features if f.verdict == "drift"
            )
            raise DriftDetectedError(
                f"Write to feature group {schema.name!r} v{schema.version} was blocked: it drifted from "
                f"{report.reference} ({reasons}). Nothing was written.",
                report=report,
            )
        return report

    def after_write(
        self, schema: FeatureGroupSchema, record: WriteRecord, report: DriftReport | None
    ) -> DriftReport | None:
        """Store the profile and report with the write record and publish drift events.

        Returns:
            The report with its ``write_id`` set (None when monitoring was disabled).
        """
        if report is None:
            return None
        report = dataclasses.replace(report, write_id=record.id)
        details: dict[str, Any] = {"drift": report.to_dict()}
        if report.profile is not None:
            details["profile"] = report.profile.to_dict()
        self.metadata.update_write(record.id, details)
        if report.verdict in ("warning", "drift") and report.on_drift != "ignore":
            flagged = report.drifted or report.warned
            logger.warning(
                "write #{} to {} v{}: {} in {} against {} (max PSI {})",
                record.id,
                schema.name,
                schema.version,
                report.verdict,
                flagged,
                report.reference,
                None if report.max_psi is None else round(report.max_psi, 4),
            )
            self._publish(report, blocked=False)
            if report.verdict == "drift":
                warnings.warn(
                    f"Feature group {schema.name!r} v{schema.version}: write #{record.id} drifted in "
                    f"{report.drifted} against {report.reference} (max PSI "
                    f"{None if report.max_psi is None else round(report.max_psi, 3)}); it was written. "
                    "Inspect it with store.monitor.reports(group)[-1], or pass on_drift='block' to "
                    "reject drifting writes.",
                    DriftWarning,
                    stacklevel=2,
                )
        return report

    def _gate(self, on_drift: str | None) -> str:
        gate = self.config.on_drift if on_drift is None else on_drift
        if gate not in _GATES:
            raise ConfigurationError(f"on_drift must be one of {list(_GATES)}, got {on_drift!r}.")
        return gate

    def _publish(self, report: DriftReport, *, blocked: bool) -> None:
        self.bus.publish(
            DriftDetected(
                group=report.group,
                version=report.version,
                severity=report.verdict,
                features=tuple(report.drifted or report.warned),
                blocked=blocked,
                write_id=report.write_id,
                max_psi=report.max_psi,
                reference=report.reference,
            )
        )

    # -- references -----------------------------------------------------------------------
    def reference_for(self, schema: FeatureGroupSchema) -> Reference | None:
        """Return what a new write to ``schema`` is compared with, or None (first write).

        The pinned baseline of the group wins; otherwise the latest profiled write of the same
        group and version (among the last 50 writes).
        """
        pinned = self.metadata.find_document(BASELINE_KIND, schema.name)
        if pinned is not None:
            return self._resolve_baseline(schema.name, pinned)
        for record in reversed(self.metadata.list_writes(schema.name, schema.version, limit=_LOOKBACK)):
            profile = _stored_profile(record)
            if profile is not None:
                return Reference(
                    profile, f"previous write #{record.id} ({_stamp(record.written_at)})", (record.id,)
                )
        return None

    def pin_baseline(
        self,
        group: str,
        *,
        write_id: int | None = None,
        table_version: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        profile: GroupProfile | None = None,
    ) -> Reference:
        """Compare every later write of ``group`` with a fixed baseline instead of the previous write.

        Give exactly one of: ``write_id`` (a recorded write), ``table_version`` (the write that
        produced that Delta table version), a time window ``start``/``end`` (the profiled writes
        whose event-time range overlaps ``[start, end)``, merged; the write time is used for
        groups without an event time; either bound may be open), or a ready ``profile`` (e.g.
        from :func:`~tauro_workbench.monitoring.profile.profile_frame` on a frame you chose).
        The baseline is stored as a registry document and replaces any earlier one.

        Returns:
            The baseline as it resolves now.

        Raises:
            FeatureGroupNotFoundError: If the group is not registered.
            ConfigurationError: If not exactly one kind of baseline is given, or it matches no
                profiled write of the group.

        Example:
            >>> monitor.pin_baseline("transactions", start=datetime(2026, 1, 1), end=datetime(2026, 2, 1))  # doctest: +SKIP
        """
        if self.metadata.find_feature_group(group) is None:
            raise FeatureGroupNotFoundError(group, available=self.metadata.list_feature_groups())
        chosen = [
            k
            for k, v in (("write_id", write_id), ("table_version", table_version), ("profile", profile))
            if v is not None
        ]
        if start is not None or end is not None:
            chosen.append("start/end")
        if len(chosen) != 1:
            raise ConfigurationError(
                f"pin_baseline needs exactly one of write_id, table_version, start/end or profile; got {chosen or 'none'}."
            )
        payload: dict[str, Any]
        if profile is not None:
            payload = {"profile": profile.to_dict()}
        elif write_id is not None or table_version is not None:
            record = self._find_write(group, write_id=write_id, table_version=table_version)
            payload = {"write_id": record.id}
        else:
            payload = {"start": _iso(start), "end": _iso(end)}
        reference = self._resolve_baseline(group, payload)
        if reference is None:
            raise ConfigurationError(
                f"No profiled write of {group!r} overlaps the window [{_iso(start)}, {_iso(end)}).",
                hint="List the writes with metadata.list_writes(group) and pick a window that covers some.",
            )
        self.metadata.put_document(BASELINE_KIND, group, {**payload, "pinned_at": _iso(datetime.now(UTC))})
        logger.info("pinned the drift baseline of {} to {}", group, reference.label)
        return reference

    def unpin_baseline(self, group: str) -> bool:
        """Go back to comparing with the previous write; return whether a baseline was pinned."""
        return self.metadata.delete_document(BASELINE_KIND, group)

    def _find_write(self, group: str, *, write_id: int | None, table_version: int | None) -> WriteRecord:
        writes = self.metadata.list_writes(group)
        for record in reversed(writes):
            if (write_id is not None and record.id == write_id) or (
                table_version is not None and record.table_version == table_version
            ):
                if _stored_profile(record) is None:
                    raise ConfigurationError(
                        f"Write #{record.id} of {group!r} has no stored profile (drift monitoring was off).",
                        hint="Pin another write, or a profile computed with profile_frame().",
                    )
                return record
        what = f"write id {write_id}" if write_id is not None else f"table version {table_version}"
        raise ConfigurationError(
            f"Feature group {group!r} has no {what}. Recorded writes: "
            f"{[(r.id, r.table_version) for r in writes[-20:]]} (id, table version)."
        )

    def _resolve_baseline(self, group: str, payload: dict[str, Any]) -> Reference | None:
        if "profile" in payload:
            return Reference(GroupProfile.from_dict(payload["profile"]), "pinned profile")
        if "write_id" in payload:
            for record in self.metadata.list_writes(group):
                profile = _stored_profile(record) if record.id == payload["write_id"] else None
                if profile is not None:
                    return Reference(
                        profile, f"pinned write #{record.id} ({_stamp(record.written_at)})", (record.id,)
                    )
            return None
        start = _parse(payload.get("start"))
        end = _parse(payload.get("end"))
        chosen: list[tuple[int, GroupProfile]] = []
        for record in self.metadata.list_writes(group):
            profile = _stored_profile(record)
            if profile is not None and _overlaps(record, profile, start, end):
                chosen.append((record.id, profile))
        if not chosen:
            return None
        merged = merge_profiles([p for _, p in chosen], top_categories=self.config.top_categories)
        label = f"pinned window [{_stamp(start) if start else '-inf'}, {_stamp(end) if end else '+inf'}) ({len(chosen)} writes)"
        return Reference(merged, label, tuple(i for i, _ in chosen))

    # -- history --------------------------------------------------------------------------
    def reports(self, group: str, *, version: int | None = None) -> list[DriftReport]:
        """Return the stored drift reports of ``group``, oldest first."""
        return list_reports(self.metadata, group, version=version)

    def drift_history(self, group: str, *, version: int | None = None) -> pl.DataFrame:
        """Return one row per write and feature of ``group`` (see :func:`drift_history`)."""
        return drift_history(self.metadata, group, version=version)


def list_reports(
    metadata: FeatureStoreMetadata, group: str, *, version: int | None = None
) -> list[DriftReport]:
    """Return the drift reports stored with the writes of ``group``, oldest first."""
    return [
        DriftReport.from_dict(record.details["drift"])
        for record in metadata.list_writes(group, version)
        if isinstance(record.details.get("drift"), dict)
    ]


def drift_history(metadata: FeatureStoreMetadata, group: str, *, version: int | None = None) -> pl.DataFrame:
    """Return the drift of every stored write of ``group``: one row per write and feature.

    Columns: ``write_id``, ``written_at`` (UTC), ``version``, ``report_verdict``, ``feature``,
    ``kind``, ``psi``, ``ks``, ``null_rate_change``, ``verdict``. Writes without a reference
    (first writes) have no feature rows.

    Example:
        >>> drift_history(FeatureStoreMetadata(), "transactions").height
        0
    """
    rows: list[dict[str, Any]] = []
    for record in metadata.list_writes(group, version):
        stored = record.details.get("drift")
        if not isinstance(stored, dict):
            continue
        report = DriftReport.from_dict(stored)
        for item in report.features:
            rows.append(
                {
                    "write_id": record.id,
                    "written_at": record.written_at,
                    "version": record.version,
                    "report_verdict": report.verdict,
                    "feature": item.feature,
                    "kind": item.kind,
                    "psi": item.psi,
                    "ks": item.ks,
                    "null_rate_change": item.null_rate_change,
                    "verdict": item.verdict,
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "write_id": pl.Int64,
            "written_at": pl.Datetime("us", "UTC"),
            "version": pl.Int64,
            "report_verdict": pl.String,
            "feature": pl.String,
            "kind": pl.String,
            "psi": pl.Float64,
            "ks": pl.Float64,
            "null_rate_change": pl.Float64,
            "verdict": pl.String,
        },
    )


def _stored_profile(record: WriteRecord) -> GroupProfile | None:
    stored = record.details.get("profile")
    return GroupProfile.from_dict(stored) if isinstance(stored, dict) else None


def _overlaps(
    record: WriteRecord, profile: GroupProfile, start: datetime | None, end: datetime | None
) -> bool:
    first = profile.event_time_min or _utc(record.written_at)
    last = profile.event_time_max or _utc(record.written_at)
    return (end is None or first < end) and (start is None or last >= start)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat()


def _parse(value: Any) -> datetime | None:
    return None if value is None else _utc(datetime.fromisoformat(str(value)))


def _stamp(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")
