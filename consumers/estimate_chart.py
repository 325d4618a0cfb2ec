"""The annex 7 chart: detected victims beside the estimate of all victims, with its interval.

Each point is one estimate — a ``prevalence_estimate`` release a consumer holds, or the JSON of
``tiptrust mse estimate --json`` — placed in time order (releases by their issue date): the
detected count (grey), the estimate (blue) and its interval as a shaded band and a bar at each
point, so the estimate is never seen without its uncertainty. A point with no estimate shows
the detected count and the words "no estimate"; an interval with no upper limit is drawn to the
top of the axis and marked "no upper limit". Every chart carries the caveat, the assumptions the
estimate rests on, the sources and the date, as the other charts do (:mod:`consumers.charts`).

matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumers.writers import atomic_write, estimate_assumptions, is_estimate, read_release_file
from schemas.release import Release

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS: tuple[str, ...] = ("png", "svg")
OBSERVED_COLOUR = "#7f7f7f"
ESTIMATE_COLOUR = "#1f5f8b"
BAND_COLOUR = "#9ecae1"
#: the file name (before ``.png``/``.svg``) of the chart over every release in a folder
SERIES = "prevalence_estimate"
_RELEASE_FILE = re.compile(r"^\d{6}\.json$")

MSE_CAVEAT = (
    "An estimate from a statistical model (multiple-systems estimation), not a count: it holds "
    "only as far as its assumptions do (closed population, list dependence the model expresses, "
    "heterogeneity of capture, correct linkage). Use it only with its interval."
)


class NotAnEstimate(ValueError):
    """An input that is neither an estimate release nor an ``mse estimate --json`` output."""

    code = "not_an_estimate"


@dataclass(frozen=True)
class EstimatePoint:
    """One estimate to draw: its label on the time axis and the four numbers (None: none)."""

    label: str
    observed: float
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str = ""  # why there is no estimate, when there is none
    sources: tuple[str, ...] = ()
    issued: str = ""  # ISO date of the release (empty for a CLI output)
    assumptions: Mapping[str, str] = field(default_factory=dict)
    caveat: str = MSE_CAVEAT

    @property
    def exists(self) -> bool:
        return self.estimate is not None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def point_from_release(release: Release) -> EstimatePoint:
    """The point of a ``prevalence_estimate`` release (label: its issue date)."""
    if not is_estimate(release):
        raise NotAnEstimate(f"release {release.stream}/{release.sequence} is not an estimate")
    values = {a.key[0]: a.value for a in release.aggregates if len(a.key) == 1}
    observed = values.get("observed")
    if observed is None:
        raise NotAnEstimate(f"release {release.stream}/{release.sequence} has no detected count")
    issued = dt.datetime.fromtimestamp(release.issued_at_ms / 1000, tz=dt.UTC).date().isoformat()
    return EstimatePoint(
        label=f"{issued}\n#{release.sequence}",
        observed=float(observed),
        estimate=_number(values.get("estimate")),
        ci_low=_number(values.get("ci_low")),
        ci_high=_number(values.get("ci_high")),
        reason=release.metadata.get("no_estimate_reason", ""),
        sources=release.sources,
        issued=issued,
        assumptions=estimate_assumptions(release),
        caveat=release.caveat,
    )


def point_from_json(doc: Mapping[str, Any], label: str) -> EstimatePoint:
    """The point of one ``tiptrust mse estimate --json`` output."""
    try:
        observed = float(doc["observed"])
        exists = bool(doc["exists"])
    except (KeyError, TypeError, ValueError):
        raise NotAnEstimate(f"{label}: not the output of `tiptrust mse estimate --json`") from None
    return EstimatePoint(
        label=label,
        observed=observed,
        estimate=_number(doc.get("estimate")) if exists else None,
        ci_low=_number(doc.get("ci_low")) if exists else None,
        ci_high=_number(doc.get("ci_high")) if exists else None,
        reason=str(doc.get("reason") or ""),
        sources=tuple(str(s) for s in doc.get("sources") or doc.get("lists") or ()),
    )


def held_releases(folder: Path) -> list[Release]:
    """The estimate releases a consumer's stream folder holds (``NNNNNN.json``), in order."""
    releases = [
        read_release_file(path)
        for path in sorted(Path(folder).iterdir())
        if _RELEASE_FILE.match(path.name)
    ]
    return sorted((r for r in releases if is_estimate(r)), key=lambda r: r.sequence)


def footer_lines(points: Sequence[EstimatePoint]) -> list[str]:
    """The text under the chart: how to read it, the caveat, the assumptions, source and date."""
    last = points[-1]
    lines = [
        "How to read: grey, the victims the agencies detected; blue, the estimate of all "
        "victims, detected and not; the shaded band and bars, its interval. The estimate is "
        "only as good as its assumptions.",
        f"Caveat: {last.caveat}",
    ]
    lines += [f"Assumption: {text}" for text in last.assumptions.values()]
    if any(not p.exists for p in points):
        lines.append(
            "No estimate: the lists did not support one at that point; the reason is "
            "in the release's metadata. It is not zero."
        )
    if any(p.exists and p.ci_high is None for p in points):
        lines.append("No upper limit: the data put no upper bound on the total.")
    sources = ", ".join(last.sources) if last.sources else "not named"
    dated = f", issued {last.issued}" if last.issued else ""
    lines.append(f"Source: {sources}, via the data trust (multiple-systems estimation){dated}.")
    return lines


def draw(points: Sequence[EstimatePoint], title: str) -> Figure:
    """The figure of ``points`` in order (not saved)."""
    from matplotlib.figure import Figure  # heavy: only when a chart is drawn
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not points:
        raise NotAnEstimate("no estimate to draw")
    width = max(8.0, 1.1 * len(points) + 3)
    footer = [w for line in footer_lines(points) for w in textwrap.wrap(line, int(width * 18))]
    plot_h, title_h, foot_h = 3.6, 0.9, 0.16 * len(footer) + 0.25
    height = plot_h + title_h + foot_h + 0.6
    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(
        left=0.1, right=0.97, top=1 - title_h / height, bottom=(foot_h + 0.6) / height
    )
    ax = fig.subplots()
    xs = list(range(len(points)))
    tops = [p.ci_high or p.estimate or p.observed for p in points]
    top = max(tops) * 1.15
    highs = [p.ci_high if p.ci_high is not None else top for p in points]
    nan = float("nan")  # a point without an estimate breaks the band and the line
    lows = [(p.ci_low or p.observed) if p.exists else nan for p in points]
    highs = [(p.ci_high if p.ci_high is not None else top) if p.exists else nan for p in points]
    ax.fill_between(xs, lows, highs, color=BAND_COLOUR, alpha=0.6, linewidth=0, gid="interval-band")
    for x, p, low, high in zip(xs, points, lows, highs, strict=True):
        if p.exists:
            ax.vlines(x, low, high, color=ESTIMATE_COLOUR, linewidth=1.2)
            if p.ci_high is None:
                ax.text(x, top, " no upper limit", fontsize=7, va="top", rotation=90)
    estimates = [p.estimate if p.estimate is not None else nan for p in points]
    ax.plot(xs, estimates, "o-", color=ESTIMATE_COLOUR, gid="estimate")
    ax.plot(xs, [p.observed for p in points], "s--", color=OBSERVED_COLOUR, gid="observed")
    for i, p in enumerate(points):
        if not p.exists:
            ax.text(xs[i], p.observed, "  no estimate", fontsize=8, style="italic", va="bottom")
    ax.set_xticks(xs, [p.label for p in points], fontsize=8)
    ax.set_xlim(-0.6, len(points) - 0.4)
    ax.set_ylim(0, top)
    ax.set_ylabel("Persons")
    ax.spines[["top", "right"]].set_visible(False)
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    fig.text(0.01, 1 - 0.12 / height, title, fontsize=12, weight="bold", va="top")
    fig.legend(
        handles=[
            Line2D([], [], color=OBSERVED_COLOUR, marker="s", linestyle="--", label="Detected"),
            Line2D([], [], color=ESTIMATE_COLOUR, marker="o", label="Estimated (all victims)"),
            Patch(facecolor=BAND_COLOUR, label="Interval of the estimate"),
        ],
        loc="upper left",
        bbox_to_anchor=(0.01, 1 - 0.45 / height),
        ncol=3,
        frameon=False,
        fontsize=8.5,
    )
    fig.text(0.01, 0.1 / height, "\n".join(footer), fontsize=7.5, va="bottom", linespacing=1.4)
    return fig


def write_chart(
    points: Sequence[EstimatePoint],
    folder: Path,
    name: str = SERIES,
    *,
    title: str = "Detected and estimated victims of trafficking",
    formats: Iterable[str] = FORMATS,
) -> list[Path]:
    """Draw ``points`` into ``folder`` as ``<name>.png`` and ``.svg``; return the paths."""
    from matplotlib import rc_context

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig = draw(points, title)
        for fmt in formats:
            buf = io.BytesIO()
            metadata = {"Title": title, "Date": None} if fmt == "svg" else {"Title": title}
            fig.savefig(buf, format=fmt, metadata=metadata)
            path = folder / f"{name}.{fmt}"
            atomic_write(path, buf.getvalue())
            written.append(path)
    return written


def write_release_chart(release: Release, folder: Path) -> list[Path]:
    """The chart of one estimate release (``NNNNNN.estimate.png``/``.svg``)."""
    return write_chart(
        [point_from_release(release)],
        folder,
        f"{release.sequence:06d}.estimate",
        title=release.title,
    )


def write_folder_chart(stream_folder: Path, folder: Path) -> list[Path]:
    """The chart over every estimate release held in ``stream_folder`` (``SERIES``.png/.svg),
    or nothing when it holds none."""
    releases = held_releases(stream_folder)
    if not releases:
        return []
    points = [point_from_release(r) for r in releases]
    return write_chart(points, folder, SERIES, title=releases[-1].title)
