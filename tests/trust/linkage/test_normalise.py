"""Names fold to one script and key across romanisations; dates are read leniently."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.normalise import (
    PartialDate,
    fold,
    normalise_name,
    normalise_sex,
    parse_date,
    romanisation_key,
)

VARIANTS = [
    ["Mohammed", "Muhammad", "Mohamed", "Mohammad", "محمد"],
    ["Oleksandr", "Aleksandr", "Alexander", "Олександр", "Александр"],
    ["Serhii", "Sergey", "Serhiy", "Сергій"],
    ["Al-Hassan", "Alhassan", "El Hassan"],
    ["De la Cruz", "Delacruz", "Dela Cruz"],
    ["Nguyễn", "Nguyen"],
    ["Łukasz", "Lukasz"],
    ["Yusuf", "Youssef", "Yousef", "يوسف"],
    ["Osman", "Othman", "Usman"],
]


@pytest.mark.parametrize("group", VARIANTS, ids=lambda g: g[0])
def test_romanisation_variants_share_a_key(group: list[str]) -> None:
    keys = {n.key for n in map(normalise_name, group) if n is not None}
    assert len(keys) == 1, keys


def test_different_names_keep_different_keys() -> None:
    names = ["Maria", "Ioana", "Fatima", "Oleksandr", "Nguyen", "Jones"]
    keys = [normalise_name(n).key for n in names]  # type: ignore[union-attr]
    assert len(set(keys)) == len(keys)


def test_name_order_within_a_field_gives_one_ordered_key() -> None:
    a, b = normalise_name("Li Na"), normalise_name("Na Li")
    assert a is not None and b is not None
    assert a.ordered_key == b.ordered_key and a.parts == ("li", "na")


def test_compound_surnames_keep_their_parts() -> None:
    n = normalise_name("García-López")
    assert n is not None and n.text == "garcia lopez" and n.parts == ("garcia", "lopez")


@given(st.text(max_size=40))
def test_fold_gives_lowercase_latin_words(text: str) -> None:
    folded = fold(text)
    assert re.fullmatch(r"([a-z]+( [a-z]+)*)?", folded)
    assert fold(folded) == folded


@given(st.text(max_size=20))
def test_romanisation_key_is_lowercase_and_stable(text: str) -> None:
    key = romanisation_key(fold(text).replace(" ", ""))
    assert re.fullmatch(r"[a-z]*", key)
    assert key == romanisation_key(fold(text).replace(" ", ""))


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_iso_compact_and_day_first_dates_read_alike(day: dt.date) -> None:
    expected = PartialDate(day.year, day.month, day.day)
    assert parse_date(day.isoformat()) == expected
    assert parse_date(day.strftime("%Y%m%d")) == expected
    assert parse_date(day.strftime("%d/%m/%Y")) == expected
    assert expected.digits() == day.strftime("%Y%m%d")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1990", PartialDate(1990)),
        ("1990-03", PartialDate(1990, 3)),
        ("1990-00-00", PartialDate(1990)),
        ("1990-??-12", PartialDate(1990, None, 12)),
        ("1990-XX-XX", PartialDate(1990)),
        ("1990-13-05", PartialDate(1990, 13, 5)),  # kept: a keying error to compare, not reject
        ("", None),
        ("   ", None),
        ("0000-00-00", None),
    ],
)
def test_missing_parts_stay_missing(text: str, expected: PartialDate | None) -> None:
    assert parse_date(text) == expected


@given(st.text(alphabet="qxzjkw ", min_size=3, max_size=12).filter(lambda t: len(t.strip()) >= 3))
def test_an_unreadable_date_is_refused_without_its_value(text: str) -> None:
    with pytest.raises(LinkageError) as caught:
        parse_date(text)
    assert caught.value.reason is LinkageReason.BAD_DATE
    assert text.strip() not in str(caught.value)


def test_sex_codes_and_words() -> None:
    assert [normalise_sex(s) for s in ("F", "female", "Feminine", "2", "M", "1", "U", "")] == [
        "F", "F", "F", "F", "M", "M", "", "",
    ]  # fmt: skip
