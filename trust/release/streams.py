"""Release streams: what each one counts, by which dimensions, under which minimum cell size."""

from __future__ import annotations

from dataclasses import dataclass

from transport.topics import validate_name
from trust.release.errors import InvalidThreshold, UnknownStream

#: Victims' age groups in releases (ICS-TIP.md; children are 0-17 for SDG 16.2.2), in order.
AGE_GROUPS: tuple[str, ...] = ("0-11", "12-17", "18-24", "25-34", "35-44", "45+", "Unknown")

#: Ages outside 0..MAX_PLAUSIBLE_AGE are treated as not recorded, not as data.
MAX_PLAUSIBLE_AGE = 120

_AGE_BOUNDS: tuple[tuple[int, str], ...] = (
    (11, "0-11"),
    (17, "12-17"),
    (24, "18-24"),
    (34, "25-34"),
    (44, "35-44"),
)


@dataclass(frozen=True)
class StreamSpec:
    """A release stream: its name (``tip.release.<name>``), descriptive metadata and policy.

    ``k`` is the minimum published cell size; ``min_interval_s`` the least time between two
    releases of the stream (0: whenever the published cells change).
    """

    name: str
    title: str
    unit: str
    dimensions: tuple[str, ...]
    k: int = 10
    min_interval_s: float = 0.0

    def __post_init__(self) -> None:
        validate_name(self.name)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InvalidThreshold(f"stream {self.name}: k must be an integer >= 1")
        if self.min_interval_s < 0:
            raise ValueError(f"stream {self.name}: min_interval_s must be >= 0")
        if not self.dimensions or len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"stream {self.name}: dimensions must be non-empty and distinct")


VICTIMS_BY_SEX_AGE_FORM = StreamSpec(
    "victims_by_sex_age_form",
    "Detected victims by sex, age group, form of exploitation and year",
    "persons (detected victims)",
    ("year", "sex", "age_group", "form"),
)

STREAMS: dict[str, StreamSpec] = {s.name: s for s in (VICTIMS_BY_SEX_AGE_FORM,)}


def stream(name: str) -> StreamSpec:
    """The declared stream called ``name``; :class:`UnknownStream` if there is none."""
    try:
        return STREAMS[name]
    except KeyError:
        raise UnknownStream(f"no release stream is declared as {name!r}") from None


def age_group(age: int | None) -> str:
    """The release age group of an age in years at identification; ``"Unknown"`` if unrecorded.

    A negative or implausible age (over :data:`MAX_PLAUSIBLE_AGE`) is counted as Unknown.
    """
    if age is None or age < 0 or age > MAX_PLAUSIBLE_AGE:
        return "Unknown"
    for upper, label in _AGE_BOUNDS:
        if age <= upper:
            return label
    return "45+"
