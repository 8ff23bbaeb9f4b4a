"""Rich displays: golden HTML per result object, escaping, and no display ever raises.

Golden files live in tests/golden/displays/; regenerate them with TAURO_UPDATE_GOLDEN=1 after an
intended change and review the diff.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import polars as pl
import pytest

from tauro_workbench import displays
from tauro_workbench import html as h
from tauro_workbench.history import WriteRecord
from tauro_workbench.monitoring.drift import DriftReport
from tauro_workbench.stores.base import HealthReport
from tauro_workbench.workbench import Preview, TrainingSet
from tests import display_objects as objects

CASES = {
    "group": objects.users_schema,
    "drift_report": objects.drift_report,
    "write_record": objects.write_record,
    "preview": objects.preview,
    "route": objects.route,
    "promotion": objects.promotion,
    "training_set": objects.training_set,
    "health": objects.health,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_display_matches_its_golden_file(name: str) -> None:
    page = CASES[name]()._repr_html_()
    assert not page.startswith("<pre>"), page  # the rich display, not the text fallback
    objects.assert_golden(f"displays/{name}.html", page)


def test_every_display_carries_the_scoped_style_and_is_well_formed() -> None:
    for name, make in CASES.items():
        page = make()._repr_html_()
        assert page.startswith("<style>") and ".tauro-display table.tauro-table td" in page, name
        assert "padding:4px 12px" in page, name  # readable cells in Jupyter and marimo alike
        assert unclosed(page.split("</style>", 1)[1]) == [], name


class _Tags(HTMLParser):
    VOID = frozenset({"br", "img", "hr", "input", "meta", "link", "path", "rect", "line", "circle"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def unclosed(markup: str) -> list[str]:
    """Return the nesting errors of ``markup`` (empty when every tag is closed in order)."""
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser.errors + [f"<{t}> never closed" for t in parser.stack]


def test_group_display_shows_schema_keys_ttl_tags_and_escapes() -> None:
    page = objects.users_schema()._repr_html_()
    for text in (
        "user_features",
        "user_id",
        "updated_at",
        "30d",
        "team=growth",
        "min 0, max 150",
        "ISO code",
    ):
        assert text in page
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "<b>not bold" not in page
    card = displays.group_html(
        objects.users_schema(), {"rows": 2_050, "last_write": objects.T0, "drift": "drift"}
    )
    assert (
        "2,050" in card
        and "2026-06-01 12:00:00 UTC" in card
        and 'tauro-badge" style="background:#c62828' in card
    )


def test_write_record_display_summarizes_details_instead_of_dumping_them() -> None:
    record = objects.write_record()
    page = record._repr_html_()
    assert "{40 fields}" in page and "'39'" not in page and ">drift<" in page
    assert len(page) < 6_000 and len(repr(record)) < 200 and "drift='drift'" in repr(record)


def test_drift_display_has_a_psi_chart_and_the_verdict_table() -> None:
    page = objects.drift_report()._repr_html_()
    svg = re.search(r"<svg.*?</svg>", page, re.S)
    assert svg is not None and svg.group(0).count("<rect") == 3  # one bar per feature with a PSI
    assert "#c62828" in svg.group(0) and "#ef6c00" in svg.group(0) and "#2e7d32" in svg.group(0)
    assert "0.2811" in page and "&Delta;" not in page and "\u0394 null rate" in page


def test_preview_and_training_set_displays_show_what_they_were_built_from() -> None:
    page = objects.preview()._repr_html_()
    assert "FROM silver.purchases" in page and "virtual" in page and "12 ms" in page and "2 rows" in page
    training = objects.training_set()._repr_html_()
    assert "66.7%" in training and ">6<" in training and "user_features.age" in training


def test_frames_are_cut_at_the_display_limit() -> None:
    frame = pl.DataFrame({"x": list(range(100))})
    page = displays.frame_html(frame)
    assert page.count("<tr>") == 1 + displays.FRAME_ROWS and "80 more rows" in page
    lazy = displays.frame_html(frame.lazy(), limit=3)
    assert lazy.count("<tr>") == 4


class Exploding:
    """An object whose every attribute access fails."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")

    def __repr__(self) -> str:
        return "Exploding()"


BROKEN: list[Any] = [
    objects.users_schema(),
    replace(objects.drift_report(), features=(None,)),  # type: ignore[arg-type]
    DriftReport("g", 1, "no_reference", "nothing"),
    replace(objects.write_record(), details=None),  # type: ignore[arg-type]
    WriteRecord(1, "g", 1, "append", 0, None, objects.T0, {"drift": "not a dict"}),
    HealthReport(),
    Preview("g", None, None, "virtual", 0.0, "duckdb"),  # type: ignore[arg-type]
    Preview("g", pl.DataFrame(), "", "virtual", 0.0, "duckdb"),
    TrainingSet(pl.DataFrame(), (), {}, {}, 0.0),
    replace(objects.route(), facts=None),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("obj", BROKEN, ids=lambda o: type(o).__name__)
def test_displays_of_broken_or_empty_objects_do_not_raise(obj: Any) -> None:
    page = obj._repr_html_()
    assert isinstance(page, str) and page
    assert isinstance(repr(obj), str)


@pytest.mark.parametrize("renderer", [r for r in displays.__all__ if r.endswith("_html") and r != "html_of"])
def test_renderers_fall_back_to_text_through_render(renderer: str) -> None:
    page = h.render(getattr(displays, renderer), Exploding())  # type: ignore[arg-type]
    assert page.startswith("<pre>Exploding()") and "rich display failed" in page


def test_html_helpers_escape_everything_they_are_given() -> None:
    evil = '<script>alert("x")</script>'
    assert "<script>" not in h.table([evil], [[evil]])
    assert "<script>" not in h.keys_table({evil: evil})
    assert "<script>" not in h.badge(evil) + h.code(evil) + h.note(evil) + h.section(evil, "")
    assert "<script>" not in h.display(evil, evil, "")
    assert h.fmt(None) == "\u2013" and h.fmt(1234567) == "1,234,567" and h.fmt(timedelta(hours=12)) == "12h"
    assert h.fmt(float("nan")) == "NaN" and h.fmt("x" * 300).endswith("\u2026")
    assert displays.html_of(object()).startswith("<pre>")


def test_the_html_leaf_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import tauro_workbench.html;"
        "bad = [m for m in ('polars', 'pydantic', 'duckdb', 'altair', 'marimo', 'anywidget') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
