"""Charts of a release that say what they show and what they cannot.

Drawn as the IOM/UNODC manual *Making each case count* advises for administrative data on
trafficking in persons (chapter 6, "Knowing your data", and annex 8):

* **relative values by default**: each bar is a share — of all the persons in the release, or of
  one year's persons in a year view — or the rate itself when the release's unit is a rate
  (``per 100,000 …``); counts only when asked (``counts=True``), since absolute numbers of
  detected cases reflect detection effort as much as trafficking;
* **no data is never drawn as a number**: a suppressed aggregate (or a share whose total is
  suppressed) is a hatched light-grey band across the whole value axis, marked ``suppressed``,
  with a legend entry saying what that means — never a zero or a small bar;
* **every chart carries** the title and period, what the bars are, how to read them, the caveat,
  the sources, the release's date and number, and the disclosure control with its k; a value
  rounded or perturbed by the disclosure control is marked ``≈``.

Views (:func:`chart_views`): one per dimension (``by_<dimension>``, its top-level categories, which
add up to the total: for age groups children ``0-17``, adults ``18+`` and ``Unknown``), one with the
detailed categories of a hierarchical dimension (``by_<dimension>_detail``), and for a release
broken down by ``year`` (two years or more), one small multiple per other dimension
(``<dimension>_by_year``: each category's share of each year's persons, the manual's "trends in
the share of forced labour").
A margin the release does not publish (a stream with cells and total only) is the sum of its
published cells, and no data when any of them is suppressed (rates are never added up: a rate
the release does not publish is not drawn).

A ``prevalence_estimate`` release is drawn by :mod:`consumers.estimate_chart` instead (detected
and estimated victims with the interval: ``NNNNNN.estimate.png`` and ``.svg``).

Files (:func:`write_charts`): ``NNNNNN.<view>.png`` and ``.svg`` (``NNNNNN.<view>.counts.*`` for
counts), written whole (temporary name, then rename); the same release gives the same files.
matplotlib is imported only when a chart is drawn (Agg renderer, no pyplot state).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from consumers.writers import atomic_write, is_cumulative, is_estimate, is_synthetic
from schemas.release import Aggregate, Release

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

Measure = Literal["share", "count", "rate"]
FORMATS: tuple[str, ...] = ("png", "svg")

#: The ``gid`` of the artists that draw no data, and of those that draw a published value: the
#: SVG carries them as element ids, and tests find the artists by them.
NO_DATA_GID = "no-data"
VALUE_GID = "value"

NO_DATA_FACE = "#eeeeee"
NO_DATA_EDGE = "#a0a0a0"
NO_DATA_HATCH = "////"
VALUE_FACE = "#1f5f8b"
SUPPRESSED_WORD = "suppressed"

_YEAR = "year"
_MAX_PANELS = 16


@dataclass(frozen=True)
class Bar:
    """One bar: a category's value in the view's measure, or no data (``value`` None, ``missing``
    saying why)."""

    category: str
    label: str
    value: float | None
    exact: bool
    missing: str = ""


@dataclass(frozen=True)
class Panel:
    """One set of bars (a one-way view has one panel; a year view one per category)."""

    title: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class ChartView:
    """What one chart shows: its file name part, heading, measure, panels and how to read it."""

    name: str
    heading: str
    measure: Measure
    panels: tuple[Panel, ...]
    reading: str
    horizontal: bool

    @property
    def has_no_data(self) -> bool:
        return any(b.value is None for p in self.panels for b in p.bars)

    @property
    def has_inexact(self) -> bool:
        return any(b.value is not None and not b.exact for p in self.panels for b in p.bars)


# --- what to draw (no matplotlib) -----------------------------------------------------------------


class _Numbers:
    """The release's aggregates by what they are broken down by, and margins derived from the
    cells where the release does not publish them."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.derive = not is_rate(release)  # counts add up; rates do not
        self.by_key: dict[tuple[tuple[str, ...], tuple[str, ...]], Aggregate] = {
            (a.dimensions, a.key): a for a in release.aggregates
        }
        self.categories: dict[str, list[str]] = {d: [] for d in release.dimensions}
        for a in release.aggregates:
            for d, c in zip(a.dimensions, a.key, strict=True):
                if d in self.categories and c not in self.categories[d]:
                    self.categories[d].append(c)

    def children(self, dimension: str) -> dict[str, tuple[str, ...]]:
        return {p: tuple(cs) for p, cs in self.release.hierarchies.get(dimension, {}).items()}

    def top_level(self, dimension: str) -> list[str]:
        """Categories that are nobody's child: they add up to the total."""
        inner = {c for cs in self.children(dimension).values() for c in cs}
        return [c for c in self._ordered(dimension) if c not in inner]

    def leaves(self, dimension: str) -> list[str]:
        """Categories that are nobody's parent: they add up to the total too."""
        parents = set(self.children(dimension))
        return [c for c in self._ordered(dimension) if c not in parents]

    def _ordered(self, dimension: str) -> list[str]:
        """The dimension's categories in the release's order, each parent just before its
        children and where its first child comes."""
        children = self.children(dimension)
        seen = list(self.categories[dimension]) + [
            p for p in children if p not in self.categories[dimension]
        ]
        inner = {c for cs in children.values() for c in cs}

        def first(c: str, depth: int = 0) -> int:
            here = seen.index(c) if c in seen else len(seen)
            if depth > len(seen):  # a cycle in a malformed hierarchy: stop descending
                return here
            return min([here, *(first(child, depth + 1) for child in children.get(c, ()))])

        out: list[str] = []

        def visit(c: str) -> None:
            if c in out:
                return
            out.append(c)
            for child in sorted(children.get(c, ()), key=first):
                visit(child)

        for c in sorted((c for c in seen if c not in inner), key=first):
            visit(c)
        return out + [c for c in seen if c not in out]

    def value(self, assignment: dict[str, str]) -> tuple[float | None, bool, bool]:
        """(value, exact, known) of the aggregate with these categories (the others: all).

        Published: as published. Not published: the sum over the dimensions' leaf categories of
        the finest published aggregates, None (no data) if any of those is suppressed; ``known``
        is False when the release has nothing to derive it from.
        """
        dims = tuple(d for d in self.release.dimensions if d in assignment)
        found = self.by_key.get((dims, tuple(assignment[d] for d in dims)))
        if found is not None:
            value = None if found.value is None else float(found.value)
            return value, found.exact, True
        if not self.derive:
            return None, False, False
        # not published: derive from the cells, never across a parent and its children
        split = next((d for d in self.release.dimensions if d not in assignment), None)
        if split is None:  # a cell the release does not hold; a parent: the sum of its children
            parent = next((d for d in dims if assignment[d] in self.children(d)), None)
            if parent is None:
                return None, False, False
            parts = [{**assignment, parent: c} for c in self.children(parent)[assignment[parent]]]
        else:
            parts = [{**assignment, split: c} for c in self.leaves(split)]
        total, exact = 0.0, True
        for part in parts:
            v, e, known = self.value(part)
            if not known:
                return None, False, False
            if v is None:
                return None, False, True
            total += v
            exact = exact and e
        return total, exact, True

    def label(self, dimension: str, code: str) -> str:
        return self.release.labels.get(dimension, {}).get(code, code)


def is_rate(release: Release) -> bool:
    """Whether the release's values are rates (its unit says ``per …``), not counts of persons."""
    return " per " in f" {release.unit.lower()} "


def chart_views(release: Release, *, counts: bool = False) -> list[ChartView]:
    """The charts of ``release`` (see the module docstring), in a stable order."""
    numbers = _Numbers(release)
    if is_cumulative(release):  # running totals: never shares, never added up
        return [_cumulative(numbers)]
    views: list[ChartView] = []
    for d in release.dimensions:
        top, leaves = numbers.top_level(d), numbers.leaves(d)
        views.append(_one_way(numbers, d, top, f"by_{d}", counts))
        if leaves != top:
            views.append(_one_way(numbers, d, leaves, f"by_{d}_detail", counts))
    if _YEAR in release.dimensions and len(numbers.top_level(_YEAR)) > 1:
        for d in release.dimensions:
            top = numbers.top_level(d)
            if d != _YEAR and 1 < len(top) <= _MAX_PANELS:
                views.append(_by_year(numbers, d, top, counts))
    return views


def _dim_words(dimension: str) -> str:
    return dimension.replace("_", " ")


def _measure(release: Release, counts: bool) -> Measure:
    if is_rate(release):
        return "rate"
    return "count" if counts else "share"


def _one_way(
    numbers: _Numbers, dimension: str, categories: list[str], name: str, counts: bool
) -> ChartView:
    release = numbers.release
    measure = _measure(release, counts)
    total, total_exact, _ = numbers.value({})
    note = ""
    if measure == "share" and not total:
        measure = "count"  # no published total to take shares of
        note = " Shares cannot be given: the total is suppressed, so these are counts."
    bars = []
    for c in categories:
        v, exact, known = numbers.value({dimension: c})
        if not known:
            continue
        if v is None:
            bars.append(Bar(c, numbers.label(dimension, c), None, False, SUPPRESSED_WORD))
        elif measure == "share" and total:
            bars.append(Bar(c, numbers.label(dimension, c), v / total, exact and total_exact))
        else:
            bars.append(Bar(c, numbers.label(dimension, c), v, exact))
    detail = name.endswith("_detail")
    words = _dim_words(dimension) + (" (detailed groups)" if detail else "")
    if measure == "share":
        n = _count_text(total, total_exact)
        heading = f"Share of {_persons(release)} by {words}"
        reading = (
            f"Each bar is the share of all {n} {_persons(release)} in this release whose "
            f"{_dim_words(dimension)} is that category; together with any suppressed ones, the "
            "bars add up to 100 %."
        )
    elif measure == "rate":
        heading = f"{release.unit[:1].upper()}{release.unit[1:]}, by {words}"
        reading = f"Each bar is the rate for that {_dim_words(dimension)} ({release.unit})."
    else:
        heading = f"Number of {_persons(release)} by {words}"
        reading = (
            f"Each bar is the number of {_persons(release)} whose {_dim_words(dimension)} is "
            "that category. Numbers of detected cases follow detection effort: compare shares, "
            "not counts, across years or places."
        )
    return ChartView(
        name=name,
        heading=heading,
        measure=measure,
        panels=(Panel("", tuple(bars)),),
        reading=reading + note,
        horizontal=True,
    )


def _cumulative(numbers: _Numbers) -> ChartView:
    """A cumulative series: one bar per month, the persons counted at its end."""
    release = numbers.release
    [dimension] = release.dimensions
    bars = []
    for c in numbers.leaves(dimension):
        v, exact, _ = numbers.value({dimension: c})
        label = numbers.label(dimension, c)
        bars.append(Bar(c, label, v, exact, "" if v is not None else SUPPRESSED_WORD))
    return ChartView(
        name=f"by_{dimension}",
        heading=f"{_persons(release)[:1].upper()}{_persons(release)[1:]} counted at the end of "
        f"each {_dim_words(dimension)}",
        measure="count",
        panels=(Panel("", tuple(bars)),),
        reading=(
            f"Each bar is the number of {_persons(release)} counted at the end of that "
            f"{_dim_words(dimension)}, everyone since the series began: a running total, so "
            "the bars are not added up. The values carry noise that never changes once drawn."
        ),
        horizontal=False,
    )


def _by_year(numbers: _Numbers, dimension: str, categories: list[str], counts: bool) -> ChartView:
    release = numbers.release
    measure = _measure(release, counts)
    years = numbers.top_level(_YEAR)
    panels = []
    for c in categories:
        bars = []
        for y in years:
            v, exact, known = numbers.value({_YEAR: y, dimension: c})
            if not known:
                continue
            label = y  # a year is its own label; 'Unknown' reads as it is
            if v is None:
                bars.append(Bar(y, label, None, False, SUPPRESSED_WORD))
            elif measure == "share":
                year_total, year_exact, _ = numbers.value({_YEAR: y})
                if not year_total:
                    bars.append(Bar(y, label, None, False, "year's total suppressed"))
                else:
                    bars.append(Bar(y, label, v / year_total, exact and year_exact))
            else:
                bars.append(Bar(y, label, v, exact))
        panels.append(Panel(numbers.label(dimension, c), tuple(bars)))
    words = _dim_words(dimension)
    if measure == "share":
        heading = f"Share of each year's {_persons(release)} by {words}"
        reading = (
            f"Each panel is one {words}; each bar is its share of that year's "
            f"{_persons(release)}, so a panel shows how that share changed over the years."
        )
    elif measure == "rate":
        heading = f"{release.unit[:1].upper()}{release.unit[1:]}, by year and {words}"
        reading = f"Each panel is one {words}; each bar is the rate in that year."
    else:
        heading = f"Number of {_persons(release)} by year and {words}"
        reading = (
            f"Each panel is one {words}; each bar is the number in that year. Numbers of "
            "detected cases follow detection effort: compare shares, not counts, over time."
        )
    return ChartView(
        name=f"{dimension}_by_year",
        heading=heading,
        measure=measure,
        panels=tuple(panels),
        reading=reading,
        horizontal=False,
    )


def _persons(release: Release) -> str:
    """What the release counts, in words (its unit's words in brackets, else the unit)."""
    unit = release.unit
    if "(" in unit and unit.endswith(")"):
        return unit[unit.index("(") + 1 : -1]
    return unit


def _count_text(value: float | None, exact: bool) -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return text if exact else f"≈{text}"


def _value_text(measure: Measure, value: float, exact: bool) -> str:
    if measure == "share":
        pct = value * 100
        text = f"{pct:.1f} %" if pct < 10 else f"{pct:.0f} %"
    else:
        text = _count_text(value, True)
    return text if exact else f"≈{text}"


# --- drawing --------------------------------------------------------------------------------------


def footer_lines(release: Release, view: ChartView) -> list[str]:
    """The text under every chart: how to read it, no data, caveat, source, date, method."""
    k = release.k
    sources = (
        f"{', '.join(release.sources)} ({release.source_count} contributing)"
        if release.sources
        else f"{release.source_count} contributing agencies, not named under their agreements"
    )
    issued = dt.datetime.fromtimestamp(release.issued_at_ms / 1000, tz=dt.UTC).date().isoformat()
    lines = [f"How to read: {view.reading}"]
    if view.has_no_data:
        lines.append(
            f"Hatched grey, '{SUPPRESSED_WORD}': no data — the number is withheld because it is "
            f"below k = {k} persons or would reveal one that is. It is not zero."
        )
    if view.has_inexact:
        lines.append("≈: rounded or perturbed by the disclosure control, close to the count.")
    lines += [
        f"Caveat: {release.caveat}",
        f"Source: {sources}, via the data trust. Release {release.sequence} of stream "
        f"{release.stream}, issued {issued}. Disclosure control: {release.method}, k = {k}.",
    ]
    return lines


def _period(release: Release) -> str:
    if release.period_start is None:
        return ""
    if release.period_start == release.period_end:
        return f", {release.period_start}"
    return f", {release.period_start} to {release.period_end}"


def draw_view(release: Release, view: ChartView) -> Figure:
    """The matplotlib figure of one view of ``release`` (not saved)."""
    from matplotlib.figure import Figure  # heavy: only when a chart is drawn
    from matplotlib.patches import Patch

    width = 8.0 if view.horizontal else max(8.0, 2.3 * min(4, len(view.panels)))
    wrap = int(width * 18)
    footer = [w for line in footer_lines(release, view) for w in textwrap.wrap(line, wrap)]
    if view.horizontal:
        n = max(1, len(view.panels[0].bars))
        plot_h, ncols, nrows = 0.45 + 0.34 * n, 1, 1
    else:
        ncols = min(4, len(view.panels))
        nrows = math.ceil(len(view.panels) / ncols)
        plot_h = 2.0 * nrows
    title_h, axis_h = 0.7, 0.45
    legend_h = 0.35 if view.horizontal else 0.6  # panels have titles above their axes
    foot_h = 0.16 * len(footer) + 0.2
    height = title_h + legend_h + plot_h + axis_h + foot_h
    fig = Figure(figsize=(width, height), dpi=100)
    longest = max((len(b.label) for p in view.panels for b in p.bars), default=4)
    left = min(0.45, (0.075 * longest + 0.35) / width) if view.horizontal else 0.08
    fig.subplots_adjust(
        left=left,
        right=0.97,
        top=1 - (title_h + legend_h) / height,
        bottom=(axis_h + foot_h) / height,
        hspace=0.55,
        wspace=0.12,
    )
    axes = fig.subplots(nrows, ncols, sharey=not view.horizontal, squeeze=False).ravel()
    top = _axis_top(view)
    for ax, panel in zip(axes, view.panels, strict=False):
        if view.horizontal:
            _draw_horizontal(ax, view, panel, top)
        else:
            _draw_vertical(ax, view, panel, top)
    for ax in axes[len(view.panels) :]:
        ax.set_visible(False)

    # a long title is set smaller rather than cut at the figure's edge
    size = min(12.0, 12.0 * 74 * width / 8.0 / max(len(release.title), 1))
    fig.text(0.01, 1 - 0.12 / height, release.title, fontsize=size, weight="bold", va="top")
    fig.text(0.01, 1 - 0.42 / height, view.heading + _period(release), fontsize=10, va="top")
    handles = [Patch(facecolor=VALUE_FACE, label=_measure_label(release, view))]
    if view.has_no_data:
        handles.append(
            Patch(
                facecolor=NO_DATA_FACE,
                edgecolor=NO_DATA_EDGE,
                hatch=NO_DATA_HATCH,
                label=f"No data: {SUPPRESSED_WORD} (below k = {release.k}, or would reveal "
                "a number that is)",
            )
        )
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.01, 1 - title_h / height),
        ncol=len(handles),
        frameon=False,
        fontsize=8.5,
    )
    fig.text(0.01, 0.1 / height, "\n".join(footer), fontsize=7.5, va="bottom", linespacing=1.4)
    return fig


def _measure_label(release: Release, view: ChartView) -> str:
    if view.measure == "share":
        return "Share (%)"
    if view.measure == "rate":
        return release.unit
    return f"Number of {_persons(release)}"


def _axis_top(view: ChartView) -> float:
    values = [b.value for p in view.panels for b in p.bars if b.value is not None]
    if view.measure == "share":
        return min(1.0, max(0.05, max(values, default=1.0) * 1.18))
    return max(1.0, max(values, default=1.0) * 1.18)


def _format_axis(axis: Axis, view: ChartView) -> None:
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    if view.measure == "share":
        axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    else:
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _draw_horizontal(ax: Axes, view: ChartView, panel: Panel, top: float) -> None:
    bars = panel.bars
    ys = list(range(len(bars)))
    for y, bar in zip(ys, bars, strict=True):
        if bar.value is None:
            _no_data(ax, y, top, horizontal=True)
            ax.text(
                top * 0.01,
                y,
                f" {bar.missing}",
                va="center",
                ha="left",
                fontsize=8,
                style="italic",
                color="#444444",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
            )
        else:
            ax.barh(y, bar.value, height=0.7, color=VALUE_FACE, gid=f"{VALUE_GID}-{y}")
            ax.text(
                bar.value + top * 0.01,
                y,
                _value_text(view.measure, bar.value, bar.exact),
                va="center",
                fontsize=8,
            )
    ax.set_yticks(ys, [b.label for b in bars], fontsize=9)
    ax.set_ylim(len(bars) - 0.5, -0.5)  # first category at the top
    ax.set_xlim(0, top)
    _format_axis(ax.xaxis, view)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="x", labelsize=8)


def _draw_vertical(ax: Axes, view: ChartView, panel: Panel, top: float) -> None:
    bars = panel.bars
    xs = list(range(len(bars)))
    for x, bar in zip(xs, bars, strict=True):
        if bar.value is None:
            _no_data(ax, x, top, horizontal=False)
            ax.text(
                x,
                top * 0.5,
                bar.missing,
                rotation=90,
                va="center",
                ha="center",
                fontsize=6.5,
                style="italic",
                color="#444444",
            )
        else:
            ax.bar(x, bar.value, width=0.75, color=VALUE_FACE, gid=f"{VALUE_GID}-{x}")
    ax.set_title("\n".join(textwrap.wrap(panel.title, 30)), fontsize=8.5)
    rotation = 45 if len(bars) > 5 else 0
    ax.set_xticks(xs, [b.label for b in bars], fontsize=7, rotation=rotation)
    ax.set_xlim(-0.6, max(len(bars), 1) - 0.4)
    ax.set_ylim(0, top)
    _format_axis(ax.yaxis, view)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="y", labelsize=7)


def _no_data(ax: Axes, position: float, top: float, *, horizontal: bool) -> None:
    """A hatched band across the whole value axis: visibly not a value."""
    style: dict[str, Any] = {
        "facecolor": NO_DATA_FACE,
        "edgecolor": NO_DATA_EDGE,
        "hatch": NO_DATA_HATCH,
        "linewidth": 0.0,
        "gid": f"{NO_DATA_GID}-{position}",
    }
    if horizontal:
        ax.barh(position, top, height=0.7, **style)
    else:
        ax.bar(position, top, width=0.75, **style)


# --- files ----------------------------------------------------------------------------------------


def chart_path(
    release: Release, folder: Path, view: ChartView, fmt: str, *, counts: bool = False
) -> Path:
    """Where a view's chart goes: ``NNNNNN.<view>[.counts].<fmt>`` in ``folder``."""
    return Path(folder) / f"{release.sequence:06d}.{view.name}{'.counts' if counts else ''}.{fmt}"


def render(release: Release, view: ChartView, formats: Iterable[str] = FORMATS) -> dict[str, bytes]:
    """One view drawn once and saved in each of ``formats`` (``png``, ``svg``): the bytes by
    format; the same release and view give the same bytes."""
    from matplotlib import rc_context

    salt = f"{release.release_id}.{view.name}"
    out = {}
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": salt, "hatch.linewidth": 0.8}):
        fig = draw_view(release, view)
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, metadata=_file_metadata(release, view, fmt))
            out[fmt] = buf.getvalue()
    return out


def _file_metadata(release: Release, view: ChartView, fmt: str) -> dict[str, str | None]:
    title = f"{release.title}: {view.heading}"
    if fmt == "svg":
        return {"Title": title, "Date": None, "Creator": "tiptrust"}
    return {"Title": title, "Software": "tiptrust"}


def write_charts(
    release: Release,
    folder: Path,
    *,
    counts: bool = False,
    formats: Iterable[str] = FORMATS,
    missing_only: bool = False,
) -> list[Path]:
    """Draw every view of ``release`` into ``folder`` (created if needed) as PNG and SVG; return
    the paths written. ``missing_only``: leave files already there as they are (a re-send)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if is_synthetic(release):  # records, not a table: nothing to draw
        return []
    if is_estimate(release):  # an estimate is drawn with its interval, never as shares
        from consumers.estimate_chart import write_release_chart

        done = [folder / f"{release.sequence:06d}.estimate.{fmt}" for fmt in formats]
        if missing_only and all(p.exists() for p in done):
            return []
        return write_release_chart(release, folder)
    written = []
    for view in chart_views(release, counts=counts):
        paths = {fmt: chart_path(release, folder, view, fmt, counts=counts) for fmt in formats}
        if missing_only:
            paths = {fmt: p for fmt, p in paths.items() if not p.exists()}
        if not paths:
            continue
        for fmt, data in render(release, view, paths).items():
            atomic_write(paths[fmt], data)
            written.append(paths[fmt])
    return written
