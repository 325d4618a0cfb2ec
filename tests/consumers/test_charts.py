"""Charts of a release: shares (or rates) by default, no data drawn as no data, caveat, source and
date on every chart; PNG and SVG files. Releases are made by hand (a consumer draws whatever the
trust signed)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from consumers.charts import (
    NO_DATA_GID,
    NO_DATA_HATCH,
    VALUE_GID,
    ChartView,
    chart_views,
    draw_view,
    footer_lines,
    write_charts,
)
from schemas.release import Aggregate, Release

from .conftest import make_release, release_with_margins

SEX_LABELS = {"sex": {"Feminine": "Female", "Masculine": "Male", "Unknown": "Sex not recorded"}}
# 2021 x Unknown (3) is below k: suppressed, and so is the Unknown margin (3 + 4); Masculine 2020
# is exactly k, the smallest number a release can publish
COUNTS: dict[tuple[str, ...], int] = {
    ("2020", "Feminine"): 40,
    ("2020", "Masculine"): 10,
    ("2020", "Unknown"): 4,
    ("2021", "Feminine"): 55,
    ("2021", "Masculine"): 21,
    ("2021", "Unknown"): 3,
}
AGES = ("0-11", "12-17", "18-24", "25-34", "Unknown")
AGE_HIERARCHY: dict[str, dict[str, tuple[str, ...]]] = {
    "age_group": {"0-17": ("0-11", "12-17"), "18+": ("18-24", "25-34")}
}


@pytest.fixture(scope="module")
def by_year_sex() -> Release:
    return release_with_margins(("year", "sex"), COUNTS, labels=SEX_LABELS)


def view(release: Release, name: str, *, counts: bool = False) -> ChartView:
    return next(v for v in chart_views(release, counts=counts) if v.name == name)


def values(v: ChartView) -> dict[str, float | None]:
    return {b.category: b.value for b in v.panels[0].bars}


# --- what is drawn --------------------------------------------------------------------------------


def test_views_are_each_dimension_and_each_dimension_by_year(by_year_sex: Release) -> None:
    assert [v.name for v in chart_views(by_year_sex)] == ["by_year", "by_sex", "sex_by_year"]


def test_shares_of_the_total_by_default_and_counts_on_request(by_year_sex: Release) -> None:
    total = sum(COUNTS.values())  # 133
    by_sex = view(by_year_sex, "by_sex")
    assert by_sex.measure == "share"
    assert values(by_sex) == {"Feminine": 95 / total, "Masculine": 31 / total, "Unknown": None}
    assert [b.label for b in by_sex.panels[0].bars] == ["Female", "Male", "Sex not recorded"]
    assert "133" in by_sex.reading
    counted = view(by_year_sex, "by_sex", counts=True)
    assert counted.measure == "count"
    assert values(counted) == {"Feminine": 95, "Masculine": 31, "Unknown": None}


def test_the_year_view_gives_shares_of_each_year(by_year_sex: Release) -> None:
    v = view(by_year_sex, "sex_by_year")
    assert not v.horizontal and [p.title for p in v.panels] == list(SEX_LABELS["sex"].values())
    masculine = {b.category: b.value for b in v.panels[1].bars}
    assert masculine == {"2020": 10 / 54, "2021": 21 / 79}
    unknown = v.panels[2].bars
    assert [(b.value, b.missing) for b in unknown] == [(None, "suppressed"), (None, "suppressed")]


def test_a_hierarchy_is_drawn_at_its_top_level_and_in_detail() -> None:
    counts: dict[tuple[str, ...], int] = {
        (year, a): n
        for year in ("2020", "2021")
        for a, n in zip(AGES, (12, 15, 30, 41, 11), strict=True)
    }
    release = release_with_margins(("year", "age_group"), counts, hierarchies=AGE_HIERARCHY)
    top = view(release, "by_age_group")
    assert list(values(top)) == ["0-17", "18+", "Unknown"]  # they add up to the total
    assert sum(v for v in values(top).values() if v is not None) == pytest.approx(1.0)
    assert list(values(view(release, "by_age_group_detail"))) == list(AGES)
    assert [p.title for p in view(release, "age_group_by_year").panels] == [
        "0-17",
        "18+",
        "Unknown",
    ]
    # one year only: no year view (it would repeat the one-way chart)
    one_year = release_with_margins(
        ("year", "age_group"), {k: n for k, n in counts.items() if k[0] == "2020"}
    )
    assert [v.name for v in chart_views(one_year)] == ["by_year", "by_age_group"]


def test_rates_stay_rates_and_are_never_added_up() -> None:
    # (the helper adds the cells up into margins; for rates the trust publishes each rate)
    rates: dict[tuple[str, ...], int] = {
        ("2020", "Feminine"): 12,
        ("2020", "Masculine"): 30,
        ("2021", "Feminine"): 14,
    }
    release = release_with_margins(
        ("year", "sex"), rates, unit="detected victims per 100,000 population", k=1
    )
    cells_only = _cells_and_total(release)
    by_sex = view(release, "by_sex")
    assert by_sex.measure == "rate" and values(by_sex) == {"Feminine": 26, "Masculine": 30}
    # a margin the release does not publish is not made up by adding rates
    assert values(view(cells_only, "by_sex")) == {}


def test_margins_a_release_does_not_publish_are_summed_from_its_cells() -> None:
    release = make_release(1, (12, None, 30))  # cells by year and the total only
    by_year = view(release, "by_year")
    assert values(by_year) == {"2020": 12 / 42, "2021": None, "2022": 30 / 42}
    full = release_with_margins(("year", "sex"), COUNTS)
    derived = _cells_and_total(full)
    assert values(view(derived, "by_year")) == {"2020": None, "2021": None}  # Unknown: < k
    assert values(view(derived, "by_sex")) == values(view(full, "by_sex"))


def test_without_a_published_total_the_chart_gives_counts_and_says_so() -> None:
    release = release_with_margins(("sex",), {("Feminine",): 12, ("Masculine",): 2}, k=10)
    no_total = _replace_total(release, None)
    v = view(no_total, "by_sex")
    assert v.measure == "count" and "total is suppressed" in v.reading
    assert values(v) == {"Feminine": 12, "Masculine": None}


# --- how it is drawn ------------------------------------------------------------------------------


def _patches(ax: Axes, gid: str) -> list[Rectangle]:
    return [
        p
        for p in ax.patches
        if isinstance(p, Rectangle) and (p.get_gid() or "").startswith(f"{gid}-")
    ]


def _figure_text(fig: Figure) -> str:
    texts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [t.get_text() for t in legend.get_texts()]
    for legend in fig.legends:
        texts += [t.get_text() for t in legend.get_texts()]
    return "\n".join(texts)


def test_no_data_is_drawn_distinctly_from_the_smallest_published_value(
    by_year_sex: Release,
) -> None:
    v = view(by_year_sex, "by_sex")
    fig = draw_view(by_year_sex, v)
    ax = fig.axes[0]
    top = ax.get_xlim()[1]
    published, missing = _patches(ax, VALUE_GID), _patches(ax, NO_DATA_GID)
    assert len(published) == 2 and len(missing) == 1
    band = missing[0]
    # across the whole value axis, hatched, another colour: not a bar of some value
    assert band.get_x() == 0 and band.get_width() == pytest.approx(top)
    assert band.get_hatch() == NO_DATA_HATCH
    assert all(p.get_hatch() is None for p in published)
    assert to_rgba(band.get_facecolor()) != to_rgba(published[0].get_facecolor())
    # at the suppressed category's place, and no value bar there (not a zero)
    ys = {b.category: i for i, b in enumerate(v.panels[0].bars)}
    assert band.get_y() + band.get_height() / 2 == pytest.approx(ys["Unknown"])
    assert all(abs(p.get_y() + p.get_height() / 2 - ys["Unknown"]) > 0.5 for p in published)
    # the smallest published share is a real bar of its size
    smallest = min(published, key=lambda p: p.get_width())
    assert smallest.get_width() == pytest.approx(31 / 133) and smallest.get_width() > 0
    text = _figure_text(fig)
    assert "suppressed" in [t.get_text().strip() for t in ax.texts]
    assert "No data: suppressed (below k = 10" in text


def test_no_data_in_the_year_panels_is_a_hatched_column(by_year_sex: Release) -> None:
    v = view(by_year_sex, "sex_by_year")
    fig = draw_view(by_year_sex, v)
    masculine, unknown = fig.axes[1], fig.axes[2]
    assert not _patches(masculine, NO_DATA_GID)
    smallest = min(_patches(masculine, VALUE_GID), key=lambda p: p.get_height())
    assert smallest.get_height() == pytest.approx(10 / 54)
    bands = _patches(unknown, NO_DATA_GID)
    assert len(bands) == 2 and not _patches(unknown, VALUE_GID)
    assert all(b.get_hatch() == NO_DATA_HATCH for b in bands)
    assert all(b.get_height() == pytest.approx(unknown.get_ylim()[1]) for b in bands)


def test_every_chart_carries_title_caveat_source_date_and_k(by_year_sex: Release) -> None:
    for v in chart_views(by_year_sex):
        text = " ".join(_figure_text(draw_view(by_year_sex, v)).split())
        assert by_year_sex.title in text and v.heading in text
        assert " ".join(by_year_sex.caveat.split()) in text
        assert "Source: src-a, src-b (2 contributing)" in text
        assert "issued 2025-10-09" in text and "Release 1 of stream" in text
        assert "k = 10" in text and "How to read:" in text


def test_unnamed_sources_and_inexact_values_are_said(by_year_sex: Release) -> None:
    from dataclasses import replace

    rounded = frozenset({("2020", "Feminine"), ("Feminine",)})
    anonymous = replace(release_with_margins(("year", "sex"), COUNTS, inexact=rounded), sources=())
    by_sex = view(anonymous, "by_sex")
    lines = " ".join(footer_lines(anonymous, by_sex))
    assert "2 contributing agencies, not named under their agreements" in lines
    assert "≈: rounded or perturbed" in lines
    labels = [t.get_text() for t in draw_view(anonymous, by_sex).axes[0].texts]
    assert labels[0] == f"≈{95 / 133 * 100:.0f} %" and labels[1] == "23 %"
    assert not view(by_year_sex, "by_sex").has_inexact


# --- files ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(by_year_sex: Release, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_charts(by_year_sex, tmp_path_factory.mktemp("charts"))


def test_charts_are_written_as_png_and_svg(written: list[Path]) -> None:
    names = sorted(p.name for p in written)
    assert names == sorted(
        f"000001.{view}.{fmt}"
        for view, fmt in itertools.product(("by_year", "by_sex", "sex_by_year"), ("png", "svg"))
    )
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000
        else:
            root = ET.fromstring(data)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert not list(written[0].parent.glob(".*"))  # no temporary files left


def test_the_svg_holds_its_text_and_marks_no_data(
    written: list[Path], by_year_sex: Release
) -> None:
    svg = next(p for p in written if p.name == "000001.by_sex.svg")
    root = ET.fromstring(svg.read_bytes())
    text = " ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "Caveat:" in text and "suppressed" in text and "src-a" in text
    ids = {e.get("id", "") for e in root.iter()}
    assert any(i.startswith(f"{NO_DATA_GID}-") for i in ids)


def test_writing_again_only_completes_missing_charts(
    written: list[Path], by_year_sex: Release
) -> None:
    folder = written[0].parent
    before = {p.name: p.stat().st_mtime_ns for p in written}
    assert write_charts(by_year_sex, folder, missing_only=True) == []
    assert {p.name: p.stat().st_mtime_ns for p in written} == before


# --- helpers --------------------------------------------------------------------------------------


def _cells_and_total(release: Release) -> Release:
    from dataclasses import replace

    kept = tuple(a for a in release.aggregates if a.dimensions in (release.dimensions, ()))
    return replace(release, aggregates=kept)


def _replace_total(release: Release, value: int | None) -> Release:
    from dataclasses import replace

    aggregates = tuple(
        Aggregate((), (), value, value is not None) if not a.dimensions else a
        for a in release.aggregates
    )
    return replace(release, aggregates=aggregates)
