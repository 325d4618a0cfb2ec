"""Age bands as agencies write them, read into an age range (lower and upper bound in years).

Exports that do not record an exact age often give a band: the CTDC global dataset's
``ageBroad`` (``18--20``, ``9--17``, ``30--38``, ``-99`` for missing), a registry's ``18-24``,
a survey's ``18 to 24``, ``45+`` or ``<18``. :func:`parse_age_band` reads one cell into an
:class:`AgeBand`, both bounds inclusive, either open (None):

==========================================  ================
cell                                        band
==========================================  ================
``18--20``, ``18-20``, ``18 to 20``,        18 to 20
``18_20`` (an en dash too)
``45+``, ``>=45``, ``45 and over``          45 or over
``>44``                                     45 or over
``<18``, ``under 18``                       17 or under
``<=17``                                    17 or under
``17``                                      17 (a band of one year)
empty, ``-99``                              missing (None)
==========================================  ================

Bounds are whole numbers (``18.0`` as a spreadsheet writes it is 18) within what a record may
hold (:data:`schemas.rules.RANGES`); anything else raises :class:`AgeBandError`, whose message
says what was expected and never quotes the cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.errors import ReasonCode
from schemas.rules import AGE_LOWER_PATH, RANGES

__all__ = ["MISSING_BANDS", "AgeBand", "AgeBandError", "parse_age_band"]

#: Cells that mean "not recorded" in a band column (compared after trimming, case-blind).
MISSING_BANDS = frozenset({"", "-99", "-99.0"})
_MIN, _MAX = RANGES[AGE_LOWER_PATH]
EXPECTED = "an age band such as 18-20, 18--20, 18 to 20, 45+ or <18"

_NUMBER = r"(\d{1,3})(?:\.0+)?"
_BETWEEN = re.compile(rf"{_NUMBER}\s*(?:-{{1,2}}|\u2013|\u2014|_|to)\s*{_NUMBER}", re.IGNORECASE)
_AT_LEAST = re.compile(
    rf"(?:>=|≥)\s*{_NUMBER}|{_NUMBER}\s*(?:\+|and\s+over|and\s+older|or\s+over|or\s+older)",
    re.IGNORECASE,
)
_ABOVE = re.compile(rf">\s*{_NUMBER}")
_BELOW = re.compile(rf"(?:<|under)\s*{_NUMBER}", re.IGNORECASE)
_AT_MOST = re.compile(rf"(?:<=|≤)\s*{_NUMBER}")
_ONE = re.compile(_NUMBER)


class AgeBandError(ValueError):
    """A cell that is not an age band, or one outside the ages a record may hold. The message
    is what was expected, never the cell."""

    def __init__(self, code: ReasonCode, expected: str) -> None:
        super().__init__(expected)
        self.code = code
        self.expected = expected


@dataclass(frozen=True, slots=True)
class AgeBand:
    """An age range in whole years, both bounds inclusive (None: open on that side; never both)."""

    lower: int | None
    upper: int | None


def parse_age_band(cell: str) -> AgeBand | None:
    """The age band a cell states; None when it says the age is not recorded (empty, ``-99``).

    Raises:
        AgeBandError: ``bad_format`` for text that is not a band, ``out_of_range`` for a band
            outside 0-120 or whose lower bound is above its upper bound.
    """
    s = cell.strip()
    if s.lower() in MISSING_BANDS:
        return None
    if m := _BETWEEN.fullmatch(s):
        band = AgeBand(int(m.group(1)), int(m.group(2)))
    elif m := _AT_LEAST.fullmatch(s):
        band = AgeBand(int(m.group(1) or m.group(2)), None)
    elif m := _ABOVE.fullmatch(s):
        band = AgeBand(int(m.group(1)) + 1, None)
    elif m := _AT_MOST.fullmatch(s):
        band = AgeBand(None, int(m.group(1)))
    elif m := _BELOW.fullmatch(s):
        band = AgeBand(None, int(m.group(1)) - 1)
    elif m := _ONE.fullmatch(s):
        band = AgeBand(int(m.group(1)), int(m.group(1)))
    else:
        raise AgeBandError(ReasonCode.BAD_FORMAT, EXPECTED)
    lo, hi = band.lower, band.upper
    if any(b is not None and not _MIN <= b <= _MAX for b in (lo, hi)) or (
        lo is not None and hi is not None and lo > hi
    ):
        raise AgeBandError(
            ReasonCode.OUT_OF_RANGE, f"an age band within {_MIN} to {_MAX}, lower bound first"
        )
    return band
