"""Aggregation counts persons, not records, into every cell of the cross-product."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.release.aggregate import (
    FORM_CODES,
    FORMS,
    SEXES,
    ConflictingPerson,
    PersonFacts,
    UnknownCode,
    UnknownDimension,
    aggregate,
    form_of,
)
from trust.release.streams import AGE_GROUPS, VICTIMS_BY_SEX_AGE_FORM, StreamSpec

SPEC = VICTIMS_BY_SEX_AGE_FORM


def person(
    pid: str,
    sex: str = "Feminine",
    age: int | None = 30,
    forms: tuple[str, ...] = ("ForcedLabour",),
    year: int | None = 2022,
) -> PersonFacts:
    return PersonFacts((pid,), sex, age, forms, year)


def test_code_lists_come_from_the_case_record_schema() -> None:
    assert SEXES[:2] == ("Feminine", "Masculine") and SEXES[-1] == "Unknown"
    assert "ForcedCriminality" in FORMS and FORMS[-2:] == ("Multiple", "Unknown")
    assert len(FORMS) == len(FORM_CODES) + 1


def test_rare_codes_are_counted_in_their_grouped_category() -> None:
    table = aggregate(
        [
            person("p1", sex="TransgenderMasculine"),
            person("p2", sex="NonConforming"),
            person("p3", sex="NonSpecifiedUnknown", forms=("ForcedBegging",)),
            person("p4", forms=("OrganRemoval", "ForcedBegging")),
            person("p5", forms=("Surrogacy", "Unknown")),
        ],
        SPEC,
    )
    nonzero = {k: n for k, n in table.counts.items() if n}
    assert nonzero == {
        ("2022", "OtherGenderIdentity", "25-34", "ForcedLabour"): 2,
        ("2022", "Unknown", "25-34", "OtherForms"): 1,
        ("2022", "Feminine", "25-34", "Multiple"): 1,  # the form rule first: two forms
        ("2022", "Feminine", "25-34", "OtherForms"): 1,
    }


def test_same_person_twice_is_counted_once() -> None:
    table = aggregate([person("p1"), person("p1"), person("p2")], SPEC)
    assert table.total == 2
    assert table.counts[("2022", "Feminine", "25-34", "ForcedLabour")] == 2
    assert sum(table.counts.values()) == 2


def test_same_person_with_different_facts_is_refused() -> None:
    with pytest.raises(ConflictingPerson):
        aggregate([person("p1"), person("p1", sex="Masculine")], SPEC)
    same = [
        person("p1", forms=("ForcedLabour", "Servitude")),
        person("p1", forms=("Servitude", "ForcedLabour")),
    ]
    assert aggregate(same, SPEC).total == 1


@pytest.mark.parametrize(
    ("forms", "cell"),
    [
        ((), "Unknown"),
        (("Unknown",), "Unknown"),
        (("SexualExploitation",), "SexualExploitation"),
        (("SexualExploitation", "SexualExploitation"), "SexualExploitation"),
        (("SexualExploitation", "Unknown"), "SexualExploitation"),
        (("SexualExploitation", "ForcedLabour"), "Multiple"),
    ],
)
def test_form_rule(forms: tuple[str, ...], cell: str) -> None:
    assert form_of(forms) == cell


def test_multi_form_person_is_in_multiple_only() -> None:
    table = aggregate([person("p1", forms=("ForcedLabour", "ForcedBegging"))], SPEC)
    nonzero = {k: n for k, n in table.counts.items() if n}
    assert nonzero == {("2022", "Feminine", "25-34", "Multiple"): 1}


def test_cross_product_is_complete_with_zeros() -> None:
    table = aggregate(
        [person("p1", year=2020), person("p2", year=None), person("p3", year=2023)], SPEC
    )
    years, sexes, ages, forms = table.categories
    assert years == ("2020", "2023", "Unknown")  # observed years only, then Unknown
    assert sexes == ("Feminine", "Masculine", "OtherGenderIdentity", "Unknown")
    assert ages == AGE_GROUPS
    assert forms == (
        "SexualExploitation",
        "ForcedLabour",
        "ForcedCriminality",
        "OtherForms",
        "Multiple",
        "Unknown",
    )
    assert list(table.counts) == list(itertools.product(*table.categories))
    assert len(table.counts) == 3 * 4 * len(AGE_GROUPS) * 6  # was 3 x 7 x 7 x 14 before grouping
    assert table.structural_zeros == frozenset()
    assert (table.period_start, table.period_end) == (2020, 2023)


def test_no_persons_gives_an_empty_period_and_no_year_cells() -> None:
    table = aggregate([], SPEC)
    assert table.total == 0 and table.period_start is None and table.period_end is None
    assert table.categories[0] == () and not table.counts


def test_unknown_codes_are_refused_without_their_value() -> None:
    with pytest.raises(UnknownCode) as e:
        aggregate([person("p1", sex="Secret-Value")], SPEC)
    assert "Secret-Value" not in str(e.value)
    with pytest.raises(UnknownCode):
        aggregate([person("p1", forms=("Bogus",))], SPEC)


def test_unknown_dimension_is_refused() -> None:
    spec = StreamSpec("odd_stream", "t", "u", ("year", "shoe_size"))
    with pytest.raises(UnknownDimension):
        aggregate([person("p1")], spec)


def test_a_stream_over_fewer_dimensions() -> None:
    spec = StreamSpec("by_sex", "t", "u", ("sex",))
    table = aggregate([person("p1"), person("p2", sex="Masculine")], spec)
    assert table.counts[("Feminine",)] == 1 and table.counts[("Masculine",)] == 1


persons = st.builds(
    PersonFacts,
    person_id=st.sampled_from([(f"p{i}",) for i in range(40)]),
    sex=st.sampled_from(SEXES),
    age=st.none() | st.integers(-5, 130),
    forms=st.lists(st.sampled_from(FORM_CODES), max_size=3).map(tuple),
    year=st.none() | st.integers(2015, 2025),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(persons, max_size=60))
def test_totals_equal_distinct_persons_and_sum_of_cells(people: list[PersonFacts]) -> None:
    # keep one set of facts per id: merging a person's records is the caller's job
    first: dict[tuple[str, ...], PersonFacts] = {}
    for p in people:
        first.setdefault(p.person_id, p)
    records = [first[p.person_id] for p in people]  # duplicates of the same person
    table = aggregate(records, SPEC)
    assert table.total == len(first)
    assert sum(table.counts.values()) == table.total
    assert list(table.counts) == list(table.cell_keys())


# -- persons known by an age band or an adult/minor status (issue #20) --------------------------


def banded(pid: str, lower: int | None, upper: int | None, year: int = 2022) -> PersonFacts:
    return PersonFacts(
        (pid,), "Feminine", None, ("ForcedLabour",), year, age_lower=lower, age_upper=upper
    )


def test_a_release_counts_band_only_and_minor_only_persons_in_children() -> None:
    from trust.release.disclosure.margins import protect_margins
    from trust.release.streams import VICTIMS_BY_YEAR_AGE_GROUP

    spec = VICTIMS_BY_YEAR_AGE_GROUP
    people = [
        *(person(f"z{i}", age=5) for i in range(10)),  # 0-11
        *(person(f"a{i}", age=14) for i in range(12)),  # 12-17
        *(banded(f"b{i}", 9, 17) for i in range(11)),  # CTDC 9--17: band unknown
        *(banded(f"m{i}", None, 17) for i in range(10)),  # Minor alone (narrowed to <=17)
        *(person(f"c{i}", age=30) for i in range(15)),  # 25-34
        *(banded(f"d{i}", 18, None) for i in range(13)),  # Adult alone
        *(banded(f"e{i}", 18, 20) for i in range(10)),  # CTDC 18--20: in 18-24
        *(person(f"f{i}", age=40) for i in range(10)),  # 35-44
        *(banded(f"g{i}", 48, None) for i in range(10)),  # CTDC 48+: in 45+
        *(banded(f"h{i}", None, None) for i in range(10)),  # nothing known: Unknown
    ]
    table = aggregate(people, spec)
    counts = {key: n for key, n in table.counts.items() if n}
    assert counts[("2022", "0-17 band unknown")] == 21
    assert counts[("2022", "18+ band unknown")] == 13
    protected = protect_margins(table, spec.k, hierarchies=spec.hierarchies())
    values = {(a.dimensions, a.key): a.value for a in protected.table.aggregates}
    # every child counts in 0-17: the exact ages and those known only by band or as minors
    assert values[(("year", "age_group"), ("2022", "0-17"))] == 43
    assert values[(("age_group",), ("0-17",))] == 43
    assert values[(("year", "age_group"), ("2022", "18+"))] == 58
    assert values[(("year", "age_group"), ("2022", "Unknown"))] == 10
    assert None not in values.values()  # every aggregate holds at least k persons
    # margins consistent: a published parent is the sum of its published children
    hierarchy = dict(spec.hierarchies()["age_group"])
    for (dims, key), value in values.items():
        if value is None or "age_group" not in dims:
            continue
        at = dims.index("age_group")
        children = hierarchy.get(key[at], ())
        parts = [values.get((dims, (*key[:at], c, *key[at + 1 :]))) for c in children]
        if children and all(v is not None for v in parts):
            assert value == sum(v for v in parts if v is not None)
    assert values[((), ())] == len(people)
