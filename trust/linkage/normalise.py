"""Names and dates as linkage compares them: folded to Latin letters, keyed across romanisations,
dates read leniently with missing parts.

Agencies write the same person's name in different scripts and romanisations (Олександр,
Oleksandr, Aleksandr, Alexander; محمد, Mohammed, Muhammad), with or without diacritics (Nguyễn,
Nguyen), hyphens and particles (Al-Hassan, Alhassan, El Hassan; De la Cruz, Delacruz) and, now and
then, given name and surname swapped. Normalisation makes each form comparable:

- :func:`fold` — one script (Latin, lower case, no diacritics, no punctuation);
- :func:`romanisation_key` — a consonant skeleton on which romanisation variants of a name agree,
  after mapping well-known cross-language variants (Serhii/Sergey) to one spelling;
- :func:`normalise_name` — all of that for one name field, with its parts for compound names.

Dates: :func:`parse_date` reads ISO dates with missing parts (``1990``, ``1990-03``,
``1990-00-00``, ``1990-??-12``), compact ``19900308`` and day-first ``08/03/1990``; a part that is
missing stays ``None`` rather than being guessed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from schemas.names import fold_name
from trust.linkage.errors import LinkageError, LinkageReason

# Names whose romanisations differ in more than vowels and digraphs: the Ukrainian and Russian
# forms of one given name, Turkish and Arabic forms, and so on. Each group maps to its first
# spelling; the consonant skeleton does the rest (Mohammed/Muhammad, Oleksandr/Aleksandr).
_EQUIVALENT_NAMES = (
    ("sergei", "sergey", "sergiy", "serhii", "serhiy", "sergii", "serguei"),
    ("nikolai", "nikolay", "mykola", "mikola", "nicolai"),
    ("mikhail", "mykhailo", "mychajlo", "michail"),
    ("yuri", "yurii", "yuriy", "iurii", "jurij", "yury"),
    ("aleksei", "oleksii", "oleksiy", "alexey", "aleksey", "alexei", "alexej"),
    ("olga", "olha"),
    ("ekaterina", "kateryna", "katerina", "yekaterina", "katarina"),
    ("evgeny", "yevhen", "yevgeny", "evgenii", "ievgen", "yevgeniy", "evgenij"),
    ("grigory", "hryhorii", "hryhoriy", "grigori", "grigorij"),
    ("vladimir", "volodymyr", "wladimir"),
    ("galina", "halyna", "halina"),
    ("anna", "hanna", "ganna"),
    ("pavel", "pavlo"),
    ("pyotr", "petro", "petr", "piotr"),
    ("georgy", "heorhii", "georgii", "heorhiy"),
    ("muhammad", "mehmet", "mehmed", "mahomed"),
    ("osman", "othman", "usman", "uthman"),
    ("aisha", "aicha", "ayse", "aysha"),
    ("hussein", "huseyin"),
    ("xhesika", "jessica", "jesika"),
    ("ibrahim", "ebrahim", "ibragim"),
)
_CANONICAL = {variant: group[0] for group in _EQUIVALENT_NAMES for variant in group}

# Digraph and letter rewrites, in order: Wade-Giles and Albanian spellings, then sounds that
# romanisation systems spell differently (kh/h, ts/c, w/v, y/i, j/i, x/ks, q/k, c/k).
_REWRITES = (
    ("hs", "x"), ("xh", "j"), ("kh", "h"), ("gh", "g"), ("dh", "d"), ("th", "t"), ("ph", "f"),
    ("ch", "h"), ("zh", "z"), ("ts", "c"), ("tz", "c"), ("ck", "k"), ("q", "k"), ("x", "ks"),
    ("c", "k"), ("w", "v"), ("y", "i"), ("j", "i"),
)  # fmt: skip
_VOWELS = frozenset("aeiou")


def fold(text: str) -> str:
    """Lower-case Latin letters and single spaces: scripts transliterated, diacritics dropped,
    punctuation (hyphens, apostrophes, dots) read as a space (:func:`schemas.names.fold_name`,
    the rule a CLK producer folds by too)."""
    return fold_name(text)


# Names and dates repeat across records (a batch of a million holds some thousands of distinct
# names): the pure functions below remember their latest distinct arguments.
CACHED = 1 << 16


@lru_cache(maxsize=CACHED)
def romanisation_key(text: str) -> str:
    """The consonant skeleton of a folded name part, shared by its romanisation variants.

    Known cross-language variants map to one spelling first; then digraphs are unified, vowels
    after the first letter dropped (a leading vowel becomes ``a``: Omar/Umar, Elena/Olena), a
    trailing ``h`` after a vowel dropped (Fatimah/Fatima) and doubled letters collapsed.
    """
    word = _CANONICAL.get(text, text).replace(" ", "")
    if not word:
        return ""
    if len(word) > 2 and word[-1] == "h" and word[-2] in _VOWELS:
        word = word[:-1]
    for old, new in _REWRITES:
        word = word.replace(old, new)
    head = "a" if word[0] in _VOWELS else word[0]
    out = [head]
    for ch in word[1:]:
        if ch not in _VOWELS and ch != out[-1]:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class NormalisedName:
    """One name field, ready to compare.

    ``text``: folded, parts separated by one space; ``parts``: those parts; ``key``: the
    romanisation key of the whole name with its parts joined (Al-Hassan, Alhassan and El Hassan
    agree); ``ordered_key``: the parts' keys sorted (Li Na and Na Li agree).
    """

    text: str
    parts: tuple[str, ...]
    key: str
    ordered_key: str


@lru_cache(maxsize=CACHED)
def normalise_name(text: str | None) -> NormalisedName | None:
    """``None`` for an empty or letterless name, else its :class:`NormalisedName`."""
    if not text:
        return None
    folded = fold(text)
    if not folded:
        return None
    parts = tuple(folded.split(" "))
    joined = "".join(_CANONICAL.get(p, p) for p in parts)
    return NormalisedName(
        text=folded,
        parts=parts,
        key=romanisation_key(joined),
        ordered_key=" ".join(sorted(romanisation_key(p) for p in parts)),
    )


@dataclass(frozen=True, slots=True)
class PartialDate:
    """A date whose parts may be missing. Parts are kept as written (a month of 13 is a keying
    error that a comparison can still recognise), only a zero or unknown part is ``None``."""

    year: int
    month: int | None = None
    day: int | None = None

    @property
    def complete(self) -> bool:
        return self.month is not None and self.day is not None

    def digits(self) -> str:
        """``YYYYMMDD`` with ``??`` for a missing part: what typo levels compare."""
        month = "??" if self.month is None else f"{self.month:02d}"
        day = "??" if self.day is None else f"{self.day:02d}"
        return f"{self.year:04d}{month}{day}"


_UNKNOWN = r"(?:\d{1,2}|\?\?|[xX]{2}|-{1,2}|_{1,2}|[uU]{2})"
_ISO = re.compile(rf"(\d{{4}})(?:[-/.]({_UNKNOWN})(?:[-/.]({_UNKNOWN}))?)?(?:[T ].*)?")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})?")
_DAY_FIRST = re.compile(rf"({_UNKNOWN})[./-]({_UNKNOWN})[./-](\d{{4}})")


def _part(text: str | None) -> int | None:
    if text is None or not text.isdigit():
        return None
    value = int(text)
    return value or None


@lru_cache(maxsize=CACHED)
def parse_date(text: str | None) -> PartialDate | None:
    """Read a date leniently; ``None`` if empty. Raises :class:`LinkageError` (``BAD_DATE``,
    without the value) when no reading applies."""
    if text is None:
        return None
    value = text.strip()
    if not value:
        return None
    if (m := _ISO.fullmatch(value)) or (m := _COMPACT.fullmatch(value)):
        year, month, day = m.group(1), m.group(2), m.group(3)
    elif m := _DAY_FIRST.fullmatch(value):
        day, month, year = m.group(1), m.group(2), m.group(3)
    else:
        raise LinkageError(
            LinkageReason.BAD_DATE,
            "not a date (expected YYYY-MM-DD, YYYY-MM, YYYY, YYYYMMDD or DD/MM/YYYY)",
        )
    if int(year) == 0:
        return None
    return PartialDate(int(year), _part(month), _part(day))


_SEXES = {
    "f": "F", "female": "F", "feminine": "F", "w": "F", "woman": "F", "2": "F",
    "m": "M", "male": "M", "masculine": "M", "man": "M", "1": "M",
    "x": "X", "nonconforming": "X", "non-conforming": "X", "other": "X", "9": "X",
}  # fmt: skip


def normalise_sex(text: str | None) -> str:
    """``F``, ``M``, ``X`` or ``""`` for unknown/empty (ISO/IEC 5218 digits are read too)."""
    return _SEXES.get((text or "").strip().lower(), "")


def normalise_code(text: str | None) -> str:
    """A code (nationality, postcode): upper case without spaces or punctuation."""
    return re.sub(r"[^0-9A-Z]", "", fold_code(text))


def fold_code(text: str | None) -> str:
    return unicodedata.normalize("NFKC", text or "").upper()


def normalise_document(text: str | None) -> str:
    """A document number: letters and digits only, upper case (``AB 12-345`` = ``AB12345``)."""
    return normalise_code(text)
