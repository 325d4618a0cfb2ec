"""The value rules of ICS-TIP records, declared once: both ends import them from here.

The producer's validator (before it seals anything), the trust's validator (after it decrypts),
the mapper and the release stage all read these tables, so a rule cannot say one thing on one side
and another on the other. Avro decides types and codes; these add what Avro cannot say:

- **ranges** of whole numbers (ages, years), and of dates (none before 1900, none in the future;
  an end date not before its start date);
- **source ids**: the syntax of a source's registered id, matched in full;
- **plausibility limits**: the longest id and text a field may hold (the store's columns are sized
  from them), no control characters (a NUL cannot be stored in PostgreSQL text and has no place in
  an id), the most victims or perpetrators one case record may list, and the largest message;
- **ages**: what a victim's exact age, age range and majority status may say together
  (:func:`age_conflict`), and the **age groups** of releases (ICS-TIP: 0-11, 12-17, 18-24,
  25-34, 35-44, 45+ and Unknown, with a leaf for a child or an adult of unknown band).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta

#: Whole-number ranges, inclusive, by field path.
RANGES: Mapping[str, tuple[int, int]] = {
    "$.victims[].age_at_identification": (0, 120),
    "$.victims[].age_range_lower": (0, 120),
    "$.victims[].age_range_upper": (0, 120),
    "$.victims[].age_first_trafficked": (0, 120),
    "$.event.year_of_exploitation": (1950, 2100),
}
#: What an Avro ``int`` and ``long`` can hold, for whole-number fields without a range.
AVRO_INT_BOUNDS: Mapping[str, tuple[int, int]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}


def int_range(path: str, kind: str = "int") -> tuple[int, int]:
    """The inclusive range of the whole-number field at ``path`` (Avro ``kind`` int or long)."""
    return RANGES.get(path) or AVRO_INT_BOUNDS[kind]


#: No date in a record may be earlier (dates of birth included).
EARLIEST_DATE = date(1900, 1, 1)
#: No date may be later than the day it is checked on; a checker on another machine (the trust)
#: allows this much more, because a source east of it may already be on tomorrow.
DATE_CLOCK_SKEW = timedelta(days=1)
#: Pairs of date fields of one record where the second may not be before the first.
DATE_ORDER: tuple[tuple[str, str], ...] = (("$.event.start_date", "$.event.end_date"),)


def date_in_range(value: date, today: date) -> bool:
    """Whether ``value`` is a plausible date when checked on ``today``."""
    return EARLIEST_DATE <= value <= today


def date_range_text(today: date | None = None) -> str:
    """What a date must be, for problems (``today=None``: 'today')."""
    last = "today" if today is None else today.isoformat()
    return f"a date from {EARLIEST_DATE.isoformat()} to {last}"


def date_order_text(first: str) -> str:
    return f"a date on or after {first}"


#: A source's registered id (also its topic names): a lowercase letter, then 1-62 lowercase
#: letters, digits, ``_`` or ``-``. Always matched in full (:func:`is_source_id`): ``re.match``
#: with ``$`` would let a trailing newline through.
SOURCE_ID_PATTERN = "[a-z][a-z0-9_-]{1,62}"
_SOURCE_ID = re.compile(SOURCE_ID_PATTERN)
#: Paths that hold a source id; they must satisfy :func:`is_source_id`.
SOURCE_ID_PATHS: frozenset[str] = frozenset({"$.reporting_entity.source_id"})


def is_source_id(value: object) -> bool:
    """Whether ``value`` is a valid source id (the whole text, no trailing newline)."""
    return isinstance(value, str) and _SOURCE_ID.fullmatch(value) is not None


#: The longest id a source may give a case, a victim or a perpetrator (characters).
MAX_ID_CHARS = 128
#: The longest any other text field may be (characters).
MAX_TEXT_CHARS = 1000
#: Paths that hold a source's own ids; they get :data:`MAX_ID_CHARS`.
ID_PATHS: frozenset[str] = frozenset(
    {
        "$.case_id",
        "$.victim_id",
        "$.victims[].victim_id",
        "$.perpetrators[].perpetrator_id",
        "$.reporting_entity.source_id",
    }
)

#: The most items a list field may hold, by path; other lists get :data:`MAX_LIST_ITEMS`.
LIST_LIMITS: Mapping[str, int] = {"$.victims": 200, "$.perpetrators": 200}
MAX_LIST_ITEMS = 64

#: The largest encoded payload (Avro bytes) of one event, and the largest inbound message
#: (an envelope: header, batch seal, Merkle proof and the encrypted payload).
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 16 * 1024

# C0 controls and DEL. Tab, line feed and carriage return are allowed in free text, not in ids.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_IN_ID = re.compile(r"[\x00-\x1f\x7f]")


def max_chars(path: str) -> int:
    """The longest value the string field at ``path`` may hold."""
    return MAX_ID_CHARS if path in ID_PATHS else MAX_TEXT_CHARS


def max_items(path: str) -> int:
    """The most items the list field at ``path`` may hold."""
    return LIST_LIMITS.get(path, MAX_LIST_ITEMS)


def has_control_characters(value: str, path: str) -> bool:
    """Whether ``value`` holds a character not allowed in the field at ``path``."""
    pattern = _CONTROL_IN_ID if path in ID_PATHS else _CONTROL_IN_TEXT
    return pattern.search(value) is not None


def control_character_search(path: str) -> Callable[[str], re.Match[str] | None]:
    """A search for the characters not allowed in the field at ``path`` (a match: one found);
    :func:`has_control_characters` with the field looked up once, for compiled checks."""
    return (_CONTROL_IN_ID if path in ID_PATHS else _CONTROL_IN_TEXT).search


# -- ages ---------------------------------------------------------------------------------------

#: A victim's majority status (the case record's ``MajorityStatus``): an adult (18 or over) or a
#: minor (under 18) at identification, when the exact age is not recorded.
ADULT, MINOR = "Adult", "Minor"
#: The first age of majority (ICS-TIP and the CRC: a child is a person under 18).
AGE_OF_MAJORITY = 18
AGE_PATH = "$.victims[].age_at_identification"
AGE_LOWER_PATH = "$.victims[].age_range_lower"
AGE_UPPER_PATH = "$.victims[].age_range_upper"
MAJORITY_PATH = "$.victims[].majority_status"


def age_bounds(
    lower: int | None, upper: int | None, status: str | None
) -> tuple[int | None, int | None]:
    """The age range a victim's range and majority status say together (None: open on that
    side): a minor is at most 17, an adult at least 18. Does not check that they agree
    (:func:`age_conflict` does)."""
    if status == MINOR:
        upper = AGE_OF_MAJORITY - 1 if upper is None else min(upper, AGE_OF_MAJORITY - 1)
    elif status == ADULT:
        lower = AGE_OF_MAJORITY if lower is None else max(lower, AGE_OF_MAJORITY)
    return lower, upper


def age_conflict(
    age: int | None, lower: int | None, upper: int | None, status: str | None
) -> tuple[str, str] | None:
    """Whether a victim's age facts contradict each other: ``(path, what was expected)`` for
    the first contradiction, None when they agree (or too few are given to disagree).

    The rules: the range's lower bound is not above its upper bound; an exact age lies within
    the range; a minor is under 18 and an adult 18 or over, by exact age or by range (a range
    that only overlaps the status, such as 15-20 for a minor, agrees: the status narrows it).
    A record that breaks one is refused, not repaired: which fact is wrong cannot be known,
    and a mapping that swapped two columns would otherwise publish quietly wrong ages.
    """
    if lower is not None and upper is not None and lower > upper:
        return AGE_UPPER_PATH, "an upper bound of the age range not below its lower bound"
    if age is not None:
        if (lower is not None and age < lower) or (upper is not None and age > upper):
            return AGE_PATH, "an age within the age range given"
        if status == MINOR and age >= AGE_OF_MAJORITY:
            return MAJORITY_PATH, f"Minor only with an age under {AGE_OF_MAJORITY}"
        if status == ADULT and age < AGE_OF_MAJORITY:
            return MAJORITY_PATH, f"Adult only with an age of {AGE_OF_MAJORITY} or over"
    if status == MINOR and lower is not None and lower >= AGE_OF_MAJORITY:
        return MAJORITY_PATH, f"Minor only with an age range reaching under {AGE_OF_MAJORITY}"
    if status == ADULT and upper is not None and upper < AGE_OF_MAJORITY:
        return MAJORITY_PATH, f"Adult only with an age range reaching {AGE_OF_MAJORITY} or over"
    return None


# -- age groups ---------------------------------------------------------------------------------

#: The age group of a person known to be a minor whose band is not known (majority status
#: ``Minor`` alone, a band such as ``9--17`` or ``<18``): a leaf of the children's group
#: ``0-17`` beside ``0-11`` and ``12-17``, so that children are counted in ``0-17`` even when
#: their band is not known.
MINOR_BAND_UNKNOWN = "0-17 band unknown"
#: Likewise for adults (``Adult`` alone, a band such as ``30--38``): a leaf of ``18+``.
ADULT_BAND_UNKNOWN = "18+ band unknown"
#: Every age group a person can be counted in, children's leaves first, then adults', then
#: ``Unknown`` (the ICS-TIP bands and the two leaves of unknown band).
AGE_GROUPS: tuple[str, ...] = (
    "0-11",
    "12-17",
    MINOR_BAND_UNKNOWN,
    "18-24",
    "25-34",
    "35-44",
    "45+",
    ADULT_BAND_UNKNOWN,
    "Unknown",
)
_AGE_BOUNDS = ((11, "0-11"), (17, "12-17"), (24, "18-24"), (34, "25-34"), (44, "35-44"))
_AGE_MIN, _AGE_MAX = RANGES["$.victims[].age_at_identification"]


def _band(age: int | None) -> str:
    """:func:`age_group` worked out from the bounds (any value, not only whole ages)."""
    if age is None or not _AGE_MIN <= age <= _AGE_MAX:
        return "Unknown"
    for upper, label in _AGE_BOUNDS:
        if age <= upper:
            return label
    return "45+"


# the group of every whole age a record may hold, worked out once: the store places every victim
# it accepts, and a lookup costs less than the walk over the bounds
_BAND_OF_AGE: tuple[str, ...] = tuple(_band(a) for a in range(_AGE_MIN, _AGE_MAX + 1))


def age_group(age: int | None) -> str:
    """The release age group of an age in years; ``Unknown`` when not recorded or outside the
    range a record may hold (which validation refuses anyway)."""
    if type(age) is int and _AGE_MIN <= age <= _AGE_MAX:
        return _BAND_OF_AGE[age - _AGE_MIN]
    return _band(age)


def age_group_of_range(youngest: int | None, oldest: int | None) -> str:
    """The release age group of a person known only to be between ``youngest`` and ``oldest``
    years old (inclusive; None: not known on that side): the band that holds the whole range,
    :data:`MINOR_BAND_UNKNOWN` when the range is inside 0-17 but spans two bands,
    :data:`ADULT_BAND_UNKNOWN` when it is inside 18+ but spans two bands, else ``Unknown`` (no
    bound known, a range across 18, or one outside what a record may hold). :func:`age_group`
    of an exact age is ``age_group_of_range(age, age)``.
    """
    if youngest is None and oldest is None:
        return "Unknown"
    low = _AGE_MIN if youngest is None else youngest
    high = _AGE_MAX if oldest is None else oldest
    if low > high or low < _AGE_MIN or high > _AGE_MAX:
        return "Unknown"
    first, last = age_group(low), age_group(high)
    if first == last:
        return first
    if high < AGE_OF_MAJORITY:
        return MINOR_BAND_UNKNOWN
    if low >= AGE_OF_MAJORITY:
        return ADULT_BAND_UNKNOWN
    return "Unknown"


def age_group_of(
    age: int | None,
    lower: int | None = None,
    upper: int | None = None,
    status: str | None = None,
) -> str:
    """The release age group of a victim from the best of what is known: the exact age if
    recorded; else the age range narrowed by the majority status (:func:`age_bounds`), placed
    by :func:`age_group_of_range` — a minor alone counts in ``0-17``, an adult alone in
    ``18+``; else ``Unknown``."""
    if age is not None:
        return age_group(age)
    return age_group_of_range(*age_bounds(lower, upper, status))
