"""Release streams: what each one counts, by which dimensions, under which minimum cell size."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.rules import AGE_GROUPS, age_group
from transport.topics import validate_name
from trust.release.errors import InvalidThreshold, UnknownStream

__all__ = [
    "AGE_GROUPS",
    "REPEAT_VICTIMISATION",
    "STREAMS",
    "VICTIMS_BY_SEX_AGE_FORM",
    "VICTIMS_BY_YEAR_AGE_GROUP",
    "VICTIMS_BY_YEAR_FORM",
    "VICTIMS_BY_YEAR_SEX",
    "StreamSpec",
    "age_group",
    "stream",
]


@dataclass(frozen=True)
class StreamSpec:
    """A release stream: its name (``tip.release.<name>``), descriptive metadata and policy.

    ``k`` is the minimum published cell size; ``min_interval_s`` the least time between two
    releases of the stream (0: whenever the published cells change). ``margins``: the release
    publishes every cell, every margin and the total under primary and secondary suppression
    with the LP audit (``disclosure/secondary.md``); otherwise (tables too large for the
    secondary suppression at every release) only the cells and the total under primary
    suppression. ``method``: the disclosure method applied after suppression, by the name it is
    declared under in :mod:`trust.release.disclosure.methods` (``"suppression"``: suppression
    only, values exact).
    """

    name: str
    title: str
    unit: str
    dimensions: tuple[str, ...]
    k: int = 10
    min_interval_s: float = 0.0
    margins: bool = False
    method: str = "suppression"

    def __post_init__(self) -> None:
        validate_name(self.name)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InvalidThreshold(f"stream {self.name}: k must be an integer >= 1")
        if self.min_interval_s < 0:
            raise ValueError(f"stream {self.name}: min_interval_s must be >= 0")
        if not self.dimensions or len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"stream {self.name}: dimensions must be non-empty and distinct")


VICTIMS_BY_YEAR_SEX = StreamSpec(
    "victims_by_year_sex",
    "Detected victims by year of exploitation and sex",
    "persons (detected victims)",
    ("year", "sex"),
    margins=True,
)

VICTIMS_BY_YEAR_AGE_GROUP = StreamSpec(
    "victims_by_year_age_group",
    "Detected victims by year of exploitation and age group (children 0-17, adults 18+)",
    "persons (detected victims)",
    ("year", "age_group"),
    margins=True,
)

VICTIMS_BY_YEAR_FORM = StreamSpec(
    "victims_by_year_form",
    "Detected victims by year and form of exploitation",
    "persons (detected victims)",
    ("year", "form"),
    margins=True,
)

# year x sex x age group x form: secondary suppression of this table takes minutes (see
# benchmarks/disclosure.py), too slow for every release check, so it keeps cells and total
VICTIMS_BY_SEX_AGE_FORM = StreamSpec(
    "victims_by_sex_age_form",
    "Detected victims by sex, age group, form of exploitation and year",
    "persons (detected victims)",
    ("year", "sex", "age_group", "form"),
)

REPEAT_VICTIMISATION = StreamSpec(
    "repeat_victimisation",
    "Detected victims exploited in more than one year, by sex and first year of exploitation",
    "persons (detected victims, after linkage)",
    ("year", "sex", "victimisation"),
    margins=True,
)
"""A person is a repeat victim when their linked records name at least two different years of
exploitation (the manual's repeat victimisation: one person in separate events at different
times). Records of one event reported by several agencies share its year, so they never make a
person a repeat victim by themselves; a person whose records name no year is ``Unknown``."""

STREAMS: dict[str, StreamSpec] = {
    s.name: s
    for s in (
        VICTIMS_BY_YEAR_SEX,
        VICTIMS_BY_YEAR_AGE_GROUP,
        VICTIMS_BY_YEAR_FORM,
        VICTIMS_BY_SEX_AGE_FORM,
        REPEAT_VICTIMISATION,
    )
}


def stream(name: str) -> StreamSpec:
    """The declared stream called ``name``; :class:`UnknownStream` if there is none."""
    try:
        return STREAMS[name]
    except KeyError:
        raise UnknownStream(f"no release stream is declared as {name!r}") from None
