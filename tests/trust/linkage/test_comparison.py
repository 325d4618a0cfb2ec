"""Comparison levels from rapidfuzz, per pair and over arrays of pairs alike."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.linkage.comparison import (
    BirthYearEstimateComparison,
    DateComparison,
    EditDistanceComparison,
    EventYearComparison,
    ExactComparison,
    FormsComparison,
    NameComparison,
    NameOrderComparison,
    compare_pairs,
    default_comparisons,
)
from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.record import LinkRecord, RecordTable, prepare


def level(comparison: object, a: LinkRecord, b: LinkRecord) -> str:
    table = RecordTable.of([prepare(a), prepare(b)])
    vectors = compare_pairs([comparison], table, np.array([0]), np.array([1]))  # type: ignore[list-item]
    k = int(vectors.levels[0, 0])
    return "no_data" if k == 0 else comparison.levels[k - 1]  # type: ignore[attr-defined]


def rec(**kw: str) -> LinkRecord:
    return LinkRecord(id=kw.pop("id", "x"), **kw)


def test_name_levels() -> None:
    given_name = NameComparison("given_name")
    surname = NameComparison("surname")
    assert level(given_name, rec(given_name="Maria"), rec(given_name="MARIA")) == "exact"
    assert level(given_name, rec(given_name="Mohammed"), rec(given_name="Muhammad")) == (
        "romanisation_variant"
    )
    assert level(surname, rec(surname="Garcia Lopez"), rec(surname="García")) == "compound_part"
    assert level(surname, rec(surname="Kowalski"), rec(surname="Kowalsmi")) == "jaro_winkler>=0.92"
    assert level(surname, rec(surname="Smith"), rec(surname="Okafor")) == "other"
    assert level(surname, rec(surname=""), rec(surname="Okafor")) == "no_data"


def test_swapped_names_are_compared_swapped() -> None:
    a = rec(given_name="Ioana", surname="Dumitru")
    b = rec(given_name="Dumitru", surname="Ioana")
    assert level(NameComparison("given_name"), a, b) == "exact"
    assert level(NameComparison("surname"), a, b) == "exact"
    assert level(NameOrderComparison(), a, b) == "swapped"
    assert level(NameOrderComparison(), a, a) == "as_recorded"


def test_date_levels() -> None:
    d = DateComparison()
    assert level(d, rec(date_of_birth="1990-03-08"), rec(date_of_birth="1990-03-08")) == "exact"
    assert level(d, rec(date_of_birth="1990-03-08"), rec(date_of_birth="1990-08-03")) == (
        "day_month_swapped"
    )
    assert level(d, rec(date_of_birth="1990-03-08"), rec(date_of_birth="1990-03-09")) == "one_edit"
    assert level(d, rec(date_of_birth="1990-03"), rec(date_of_birth="1990-03-08")) == (
        "agrees_where_known"
    )
    assert level(d, rec(date_of_birth="1990"), rec(date_of_birth="1991-03-08")) == "other"
    assert level(d, rec(date_of_birth=""), rec(date_of_birth="1991-03-08")) == "no_data"


def test_exact_and_edit_distance_levels() -> None:
    assert level(ExactComparison("sex"), rec(sex="female"), rec(sex="F")) == "exact"
    assert level(ExactComparison("nationality"), rec(nationality="RO"), rec(nationality="")) == (
        "no_data"
    )
    doc = EditDistanceComparison("document_number", (1, 2))
    assert level(doc, rec(document_number="AB 123456"), rec(document_number="ab123456")) == "exact"
    assert level(doc, rec(document_number="AB123456"), rec(document_number="AB123465")) == (
        "edits<=1"
    )
    assert level(doc, rec(document_number="AB123456"), rec(document_number="ZZ999999")) == "other"


names = st.sampled_from(["Maria", "Marya", "Ioana", "Dumitru", "Mohammed", "Muhammad", "", "Li Na"])
dates = st.sampled_from(["1990-03-08", "1990-08-03", "1990-03-09", "1990", "", "1985-12-01"])
records = st.builds(
    LinkRecord,
    id=st.just("x"),
    given_name=names,
    surname=names,
    date_of_birth=dates,
    sex=st.sampled_from(["F", "M", ""]),
    document_number=st.sampled_from(["", "AB1234", "AB1243"]),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(records, records), min_size=1, max_size=12))
def test_arrays_of_pairs_give_the_levels_of_each_pair_alone(
    pairs: list[tuple[LinkRecord, LinkRecord]],
) -> None:
    comparisons = default_comparisons()
    flat = [prepare(r) for pair in pairs for r in pair]
    table = RecordTable.of(flat)
    left = np.arange(0, len(flat), 2)
    together = compare_pairs(comparisons, table, left, left + 1).levels
    for k, (a, b) in enumerate(pairs):
        alone = compare_pairs(
            comparisons, RecordTable.of([prepare(a), prepare(b)]), np.array([0]), np.array([1])
        ).levels
        assert (together[k] == alone[0]).all()


def test_age_is_a_year_of_birth_within_a_year_where_a_date_is_missing() -> None:
    age = BirthYearEstimateComparison()
    at_24 = rec(age="24", age_year="2020")  # born 1996 or 1995
    assert level(age, at_24, rec(date_of_birth="1996-07-01")) == "within_1_year"
    assert level(age, at_24, rec(age="29", age_year="2022")) == "within_3_years"  # 1993 or so
    assert level(age, at_24, rec(date_of_birth="1980-01-01")) == "other"
    # both dates known: the date comparison weighs them, not this one
    dated = rec(date_of_birth="1996-07-01", age="24", age_year="2020")
    assert level(age, dated, rec(date_of_birth="1980-01-01")) == "no_data"
    assert level(age, at_24, rec()) == "no_data"
    assert level(age, rec(age="24"), at_24) == "no_data"  # an age without its year says nothing


def test_event_year_and_forms_levels() -> None:
    year, forms = EventYearComparison(), FormsComparison()
    assert level(year, rec(event_year="2021"), rec(event_year="2021")) == "exact"
    assert level(year, rec(event_year="2021"), rec(event_year="2022")) == "one_year_apart"
    assert level(year, rec(event_year="2021"), rec(event_year="2018")) == "other"
    assert level(year, rec(event_year="2021"), rec()) == "no_data"
    labour = rec(forms="ForcedLabour")
    assert level(forms, labour, rec(forms="ForcedLabour")) == "same"
    assert level(forms, labour, rec(forms="SexualExploitation;ForcedLabour")) == "overlap"
    assert level(forms, labour, rec(forms="SexualExploitation")) == "other"
    assert level(forms, labour, rec(forms="Unknown")) == "no_data"  # Unknown is no form


def test_forms_weigh_only_within_one_event() -> None:
    """Records of different years of exploitation (a repeat victim's, or two persons') are not
    compared on their forms: "another event" is weighed once, by the year."""
    forms = FormsComparison()
    labour_2018 = rec(forms="ForcedLabour", event_year="2018")
    sexual = "SexualExploitation"
    assert level(forms, labour_2018, rec(forms=sexual, event_year="2021")) == "no_data"
    assert level(forms, labour_2018, rec(forms="ForcedLabour", event_year="2019")) == "no_data"
    assert level(forms, labour_2018, rec(forms=sexual, event_year="2018")) == "other"
    assert level(forms, labour_2018, rec(forms="ForcedLabour", event_year="2018")) == "same"
    assert level(forms, labour_2018, rec(forms=sexual)) == "other"  # no year: compared


@given(st.lists(st.sets(st.sampled_from("ABCDEFGH"), max_size=4), min_size=2, max_size=12))
@settings(max_examples=60, deadline=None)
def test_forms_levels_agree_with_set_logic(sets: list[set[str]]) -> None:
    records = [prepare(rec(id=str(i), forms=";".join(sorted(s)))) for i, s in enumerate(sets)]
    table = RecordTable.of(records)
    n = len(sets)
    left = np.array([i for i in range(n) for j in range(n) if i < j], dtype=np.intp)
    right = np.array([j for i in range(n) for j in range(n) if i < j], dtype=np.intp)
    got = compare_pairs([FormsComparison()], table, left, right).levels[:, 0]
    for k, (i, j) in enumerate(zip(left, right, strict=True)):
        a, b = sets[i], sets[j]
        want = 0 if not a or not b else 1 if a == b else 2 if a & b else 3
        assert got[k] == want


def test_a_year_or_age_that_is_not_a_number_is_refused_by_column_without_its_value() -> None:
    with pytest.raises(LinkageError) as caught:
        prepare(rec(age="twenty-four"))
    assert caught.value.reason == LinkageReason.BAD_VALUE
    assert "column age" in str(caught.value) and "twenty" not in str(caught.value)
