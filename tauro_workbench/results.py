"""The nouns the Workbench's reads return: :class:`Preview` and :class:`TrainingSet`.

Both are frozen dataclasses with a text ``__repr__`` that never raises and a ``_repr_html_``
built by :mod:`tauro_workbench.displays` (stdlib HTML only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

__all__ = ["Preview", "TrainingSet"]


@dataclass(frozen=True)
class Preview:
    """The first rows of a group, where they came from, and how long it took.

    Attributes:
        group: The feature group.
        frame: The rows.
        sql: The query run for a virtual group (None for stored rows).
        route: ``"materialized"`` or ``"virtual"``.
        seconds: Wall time.
        engine: ``"delta"``/``"parquet"`` for stored rows, else the executor's name.
    """

    group: str
    frame: pl.DataFrame = field(repr=False)
    sql: str | None
    route: str
    seconds: float
    engine: str

    def to_polars(self) -> pl.DataFrame:
        """Return the rows."""
        return self.frame

    def __repr__(self) -> str:
        try:
            return (
                f"Preview({self.group!r} via {self.route} on {self.engine}: {self.frame.height} rows, "
                f"{self.seconds:.3f}s)\n{self.frame}"
            )
        except Exception:  # a repr must never raise
            return object.__repr__(self)

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)


@dataclass(frozen=True)
class TrainingSet:
    """A point-in-time-correct training set and what it was built from.

    Attributes:
        frame: The entity rows with the features joined on.
        features: The requested features (qualified).
        table_versions: Group -> offline table version when it was read (None: not stored).
        match_rate: Group -> share of entity rows that got at least one non-null feature.
        seconds: Wall time.
    """

    frame: pl.DataFrame = field(repr=False)
    features: tuple[str, ...]
    table_versions: dict[str, int | None]
    match_rate: dict[str, float]
    seconds: float

    def to_polars(self) -> pl.DataFrame:
        """Return the rows."""
        return self.frame

    def __repr__(self) -> str:
        try:
            rates = ", ".join(f"{g}={r:.0%}" for g, r in self.match_rate.items())
            return f"TrainingSet({self.frame.height} rows, {len(self.features)} features, match {rates})"
        except Exception:  # a repr must never raise
            return object.__repr__(self)

    def _repr_html_(self) -> str:
        from tauro_workbench.displays import html_of  # stdlib-only display leaf; never raises

        return html_of(self)
