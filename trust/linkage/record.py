"""The record linkage sees: a person's identifying fields as given, then as prepared to compare.

:class:`LinkRecord` is the boundary type (the batch CSV's columns; the store follower builds one
from a stored victim). :func:`prepare` normalises it once; :class:`RecordTable` holds many prepared
records column-wise, so comparisons run over arrays of pairs rather than pair by pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.normalise import (
    NormalisedName,
    PartialDate,
    fold,
    normalise_code,
    normalise_document,
    normalise_name,
    normalise_sex,
    parse_date,
)

Strings = npt.NDArray[np.object_]
Ints = npt.NDArray[np.int32]
Mask = npt.NDArray[np.bool_]
# A romanisation key this short (``al`` for Yulia) agrees by chance too often to count alone.
SHORT_KEY = 3


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """One record of a person as a source gave it; any field may be empty.

    ``date_of_birth`` is text (ISO, possibly with missing parts); ``sex`` a code such as ``F``,
    ``M``, ``X`` or a word; ``nationality`` a country code. The ``id`` is unique within a linkage
    run and says nothing about the person.

    The last four fields are the record's context, not identifiers: ``age`` (whole years, as
    recorded) and ``age_year``, the year that age was recorded in (together an estimate of the
    year of birth where the date of birth is missing); ``event_year``, the year of exploitation;
    ``forms``, the forms of exploitation recorded, ``;``-separated. Records of one person from
    several agencies mostly describe the same event, so these tell apart two persons with the
    same given name when nothing else is known of them (agencies that meet a victim briefly often
    record a given name only).
    """

    id: str
    given_name: str = ""
    surname: str = ""
    date_of_birth: str = ""
    sex: str = ""
    nationality: str = ""
    document_number: str = ""
    address: str = ""
    postcode: str = ""
    age: str = ""
    age_year: str = ""
    event_year: str = ""
    forms: str = ""


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LinkRecord))


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A :class:`LinkRecord` normalised for comparison and blocking (empty string = unknown)."""

    id: str
    given: NormalisedName | None
    surname: NormalisedName | None
    birth: PartialDate | None
    sex: str
    nationality: str
    document: str
    address: str
    postcode: str
    #: the year of birth from the date of birth, else estimated as ``age_year - age`` (-1: unknown)
    birth_year_estimate: int = -1
    #: whether :attr:`birth_year_estimate` comes from an age (an estimate within a year)
    birth_year_from_age: bool = False
    event_year: int = -1
    forms: frozenset[str] = frozenset()
    #: the record's values in :class:`RecordTable`'s column order, taken once: the resolver
    #: builds a table from the same stored records for every new record that meets them
    row: tuple[Any, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "row", _table_row(self))


def _name_parts(n: NormalisedName | None) -> tuple[str, str, str, bool, bool]:
    """text, key, ordered key, several parts, key long enough (see :class:`RecordTable`)."""
    if n is None:
        return "", "", "", False, False
    key = str(n.key)
    return str(n.text), key, str(n.ordered_key), len(n.parts) > 1, len(key) >= SHORT_KEY


def _table_row(r: PreparedRecord) -> tuple[Any, ...]:
    g_text, g_key, g_ordered, g_multi, g_long = _name_parts(r.given)
    s_text, s_key, s_ordered, s_multi, s_long = _name_parts(r.surname)
    b = r.birth
    year = -1 if b is None or b.year is None else b.year
    month = -1 if b is None or b.month is None else b.month
    day = -1 if b is None or b.day is None else b.day
    return (
        g_text, s_text, g_key, s_key, g_ordered, s_ordered, g_multi, s_multi, g_long, s_long,
        year, month, day, "" if b is None else b.digits(),
        r.sex, r.nationality, r.document, r.address, r.postcode,
        r.birth_year_estimate, r.birth_year_from_age, r.event_year,
    )  # fmt: skip


def _year(text: str, column: str) -> int:
    """A year (or a whole number of years) from text; -1 if empty. Raises
    :class:`LinkageError` located at the column (without the value) when it is not one."""
    value = text.strip()
    if not value:
        return -1
    try:
        number = int(value)
    except ValueError:
        raise LinkageError(LinkageReason.BAD_VALUE, "not a whole number").at(
            f"column {column}"
        ) from None
    if not 0 <= number <= 9999:
        raise LinkageError(LinkageReason.BAD_VALUE, "out of range").at(f"column {column}")
    return number


def prepare(record: LinkRecord) -> PreparedRecord:
    """Normalise one record; a date no lenient reading understands raises :class:`LinkageError`
    located at its column (the value is not in the message)."""
    try:
        birth = parse_date(record.date_of_birth)
    except LinkageError as exc:
        raise exc.at("column date_of_birth") from None
    age, age_year = _year(record.age, "age"), _year(record.age_year, "age_year")
    if birth is not None:
        estimate, from_age = birth.year, False
    elif age >= 0 and age_year > 0 and age <= 130:
        estimate, from_age = age_year - age, True
    else:
        estimate, from_age = -1, False
    forms = frozenset(
        f for f in (part.strip() for part in record.forms.split(";")) if f and f != "Unknown"
    )
    return PreparedRecord(
        id=record.id,
        given=normalise_name(record.given_name),
        surname=normalise_name(record.surname),
        birth=birth,
        sex=normalise_sex(record.sex),
        nationality=normalise_code(record.nationality),
        document=normalise_document(record.document_number),
        address=fold(record.address),
        postcode=normalise_code(record.postcode),
        birth_year_estimate=estimate,
        birth_year_from_age=from_age,
        event_year=_year(record.event_year, "event_year"),
        forms=forms,
    )


def _strings(values: Sequence[str]) -> Strings:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _mask(values: Sequence[bool]) -> Mask:
    return np.array(values, dtype=np.bool_)


# How many distinct form codes a table tells apart: one bit each in an int64 (codes past the
# 63rd share the last bit: a table of records with so many compares them coarsely).
FORM_CODES = 63


def _form_bits(records: Sequence[PreparedRecord]) -> npt.NDArray[np.int64]:
    """Each record's forms as bits over this table's codes (see :data:`FORM_CODES`)."""
    codes: dict[str, int] = {}
    for r in records:
        for f in sorted(r.forms):
            codes.setdefault(f, min(len(codes), FORM_CODES - 1))
    return np.array([sum(1 << codes[f] for f in set(r.forms)) for r in records], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class RecordTable:
    """Prepared records column by column; row ``i`` is ``records[i]``. Unknown text is ``""``,
    an unknown date part ``-1``."""

    ids: tuple[str, ...]
    given: Strings
    surname: Strings
    given_key: Strings
    surname_key: Strings
    given_ordered: Strings
    surname_ordered: Strings
    given_multi: Mask  # the name has more than one part
    surname_multi: Mask
    given_key_long: Mask  # the romanisation key has at least SHORT_KEY letters
    surname_key_long: Mask
    birth_year: Ints
    birth_month: Ints
    birth_day: Ints
    birth_digits: Strings
    sex: Strings
    nationality: Strings
    document: Strings
    address: Strings
    postcode: Strings
    birth_estimate: Ints
    birth_from_age: Mask
    event_year: Ints
    forms: npt.NDArray[np.int64]  # a bit per form code of this table; 0: none recorded

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, records: Sequence[PreparedRecord]) -> RecordTable:
        columns: list[tuple[Any, ...]] = (
            list(zip(*(r.row for r in records), strict=True)) if records else [()] * 22
        )
        (
            given, surname, given_key, surname_key, given_ordered, surname_ordered,
            given_multi, surname_multi, given_long, surname_long,
            year, month, day, digits, sex, nationality, document, address, postcode,
            estimate, from_age, event_year,
        ) = columns  # fmt: skip
        return cls(
            ids=tuple(r.id for r in records),
            given=_strings(given),
            surname=_strings(surname),
            given_key=_strings(given_key),
            surname_key=_strings(surname_key),
            given_ordered=_strings(given_ordered),
            surname_ordered=_strings(surname_ordered),
            given_multi=_mask(given_multi),
            surname_multi=_mask(surname_multi),
            given_key_long=_mask(given_long),
            surname_key_long=_mask(surname_long),
            birth_year=np.array(year, dtype=np.int32),
            birth_month=np.array(month, dtype=np.int32),
            birth_day=np.array(day, dtype=np.int32),
            birth_digits=_strings(digits),
            sex=_strings(sex),
            nationality=_strings(nationality),
            document=_strings(document),
            address=_strings(address),
            postcode=_strings(postcode),
            birth_estimate=np.array(estimate, dtype=np.int32),
            birth_from_age=_mask(from_age),
            event_year=np.array(event_year, dtype=np.int32),
            forms=_form_bits(records),
        )
