"""Stream declarations: the categories each stream publishes, grouped rare codes, structural
zeros carried in the count table, and the age hierarchy."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codelists import htcds_labels
from schemas.rules import ADULT_BAND_UNKNOWN, MINOR_BAND_UNKNOWN, age_group, age_group_of_range
from trust.release.aggregate import (
    ImpossibleCount,
    PersonFacts,
    aggregate,
    table_from_counts,
)
from trust.release.categories import (
    MOST_FREQUENT,
    REST,
    Category,
    Classification,
    Impossible,
    InvalidCategories,
    UnknownCode,
    structural_zeros,
)
from trust.release.disclosure.table import STANDARD_HIERARCHIES, build_table, standard_dimensions
from trust.release.errors import UnknownStream
from trust.release.streams import (
    AGE_GROUP,
    CITIZENSHIP,
    CLASSIFICATIONS,
    FORM,
    FORM_CODES,
    FORMS,
    REPEAT_VICTIMISATION,
    SDG_16_2_2,
    SEX,
    SEXES,
    STREAMS,
    VICTIMS_BY_SEX_AGE_FORM,
    VICTIMS_BY_YEAR_AGE_GROUP,
    VICTIMS_BY_YEAR_CITIZENSHIP,
    VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION,
    VICTIMS_BY_YEAR_FORM,
    VICTIMS_BY_YEAR_SEX,
    StreamSpec,
    stream,
)

PUBLISHED_SEXES = ("Feminine", "Masculine", "OtherGenderIdentity", "Unknown")
PUBLISHED_FORMS = (
    "SexualExploitation",
    "ForcedLabour",
    "ForcedCriminality",
    "OtherForms",
    "Multiple",
    "Unknown",
)
AGES = (
    "0-11",
    "12-17",
    "0-17 band unknown",
    "18-24",
    "25-34",
    "35-44",
    "45+",
    "18+ band unknown",
    "Unknown",
)


def person(pid: str, sex: str = "Feminine", age: int | None = 30, forms: tuple[str, ...] = (
    "ForcedLabour",
), year: int | None = 2022, years: tuple[int, ...] = ()) -> PersonFacts:  # fmt: skip
    return PersonFacts((pid,), sex, age, forms, year, years or ((year,) if year else ()))


def test_the_streams_people_ask_for_are_declared() -> None:
    assert list(STREAMS) == [
        "victims_by_year_sex",
        "victims_by_year_age_group",
        "victims_by_year_form",
        "victims_by_sex_age_form",
        "repeat_victimisation",
        "sdg_16_2_2",
        "victims_by_year_citizenship",
        "victims_by_year_country_of_exploitation",
        "perpetrators_by_role",
    ]
    assert stream("victims_by_year_sex") is VICTIMS_BY_YEAR_SEX
    with pytest.raises(UnknownStream):
        stream("victims_by_yaer_sex")
    for spec in STREAMS.values():
        assert spec.title and spec.unit and spec.k == 10 and spec.method == "suppression"
        assert spec.classifications()  # every dimension has a classification
    # every count stream publishes its margins and total (the four-way one too)
    assert all(s.margins for s in STREAMS.values())
    assert SDG_16_2_2.rate is not None and SDG_16_2_2.rate.per == 100_000


@pytest.mark.parametrize(
    ("spec", "published"),
    [
        (VICTIMS_BY_YEAR_SEX, (("2022",), PUBLISHED_SEXES)),
        (VICTIMS_BY_YEAR_AGE_GROUP, (("2022",), AGES)),
        (VICTIMS_BY_YEAR_FORM, (("2022",), PUBLISHED_FORMS)),
        (VICTIMS_BY_SEX_AGE_FORM, (("2022",), PUBLISHED_SEXES, AGES, PUBLISHED_FORMS)),
        (REPEAT_VICTIMISATION, (("2022",), PUBLISHED_SEXES, ("Repeated", "Once", "Unknown"))),
        (SDG_16_2_2, (("2022",), PUBLISHED_SEXES, AGES, PUBLISHED_FORMS)),
        (VICTIMS_BY_YEAR_CITIZENSHIP, (("2022",), ("Unknown",))),
        (VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION, (("2022",), ("Unknown",))),
    ],
)
def test_the_categories_each_stream_publishes(
    spec: StreamSpec, published: tuple[tuple[str, ...], ...]
) -> None:
    table = aggregate([person("p1")], spec)
    assert table.categories == published
    labels = spec.labels()
    for dim, cats in zip(spec.dimensions, table.categories, strict=True):
        if dim != "year":
            assert all(labels[dim].get(c) for c in cats), dim  # every category has a label


def test_grouping_shrinks_the_four_way_table() -> None:
    # per year: 4 x 9 x 6 = 216 cells, where every code of every list made 7 x 9 x 14 = 882
    table = aggregate([person("p1")], VICTIMS_BY_SEX_AGE_FORM)
    assert len(table.counts) == 216
    assert len(SEXES) * len(AGES) * len(FORMS) == 882


def test_every_code_of_a_list_is_in_exactly_one_category() -> None:
    for classification, codes in ((SEX, SEXES), (FORM, FORMS), (AGE_GROUP, AGES)):
        members = [m for c in classification.categories for m in c.codes()]
        assert sorted(members) == sorted(codes)
        for code in codes:
            assert classification.category_of(code) in {c.code for c in classification.categories}
    assert SEX.category_of("TransgenderFeminine") == "OtherGenderIdentity"
    assert SEX.category_of("NonSpecifiedUnknown") == "Unknown"
    assert FORM.category_of("Servitude") == FORM.category_of("Other") == "OtherForms"
    assert FORM.category_of("Multiple") == "Multiple"
    assert set(FORM_CODES) - {"Unknown"} <= set(FORMS)


def test_a_classification_must_partition_its_code_list() -> None:
    with pytest.raises(InvalidCategories):  # a code left out would go uncounted
        Classification("sex", categories=(Category("Feminine", "F"),), code_list=SEXES)
    with pytest.raises(InvalidCategories):  # a code in two categories
        Classification(
            "x",
            categories=(Category("A", "a", ("a", "b")), Category("B", "b", ("b",))),
        )
    with pytest.raises(InvalidCategories):  # Total names the margin
        Classification("x", categories=(Category("Total", "all"),))
    with pytest.raises(UnknownCode) as e:
        SEX.category_of("Secret-Value")
    assert "Secret-Value" not in str(e.value)


def test_labels_come_from_the_code_lists_and_name_the_groups() -> None:
    sex = SEX.labels()
    assert sex["Feminine"] == htcds_labels("prs_Gender")["Feminine"]
    assert "non-conforming" in sex["OtherGenderIdentity"]
    form = FORM.labels()
    assert form["SexualExploitation"] == "Sexual exploitation"
    assert form["OtherForms"] and "Servitude" in FORM.note and "OtherForms" in FORM.note
    assert AGE_GROUP.labels()["0-17"].startswith("Children")


def test_a_stream_may_declare_its_own_categories() -> None:
    coarse = Classification(
        "form",
        categories=(
            Category("SexualExploitation", "Sexual exploitation"),
            Category("Rest", "Any other form, several or none", tuple(
                c for c in FORMS if c != "SexualExploitation"
            )),
        ),
        code_list=FORMS,
    )  # fmt: skip
    spec = StreamSpec("by_form_coarse", "t", "u", ("form",), categories=(coarse,))
    table = aggregate([person("p1"), person("p2", forms=("SexualExploitation",))], spec)
    assert table.categories == (("SexualExploitation", "Rest"),)
    assert table.counts == {("SexualExploitation",): 1, ("Rest",): 1}
    with pytest.raises(ValueError):  # categories of a dimension the stream does not have
        StreamSpec("bad", "t", "u", ("year",), categories=(coarse,))


# -- structural zeros ---------------------------------------------------------------------------


def test_repeat_victimisation_declares_its_structural_zeros() -> None:
    table = aggregate(
        [
            person("p1", year=2021, years=(2021, 2023)),
            person("p2", year=2022),
            person("p3", year=None),
        ],
        REPEAT_VICTIMISATION,
    )
    years, sexes, _ = table.categories
    assert years == ("2021", "2022", "Unknown")
    expected = {
        *(("Unknown", s, v) for s in sexes for v in ("Repeated", "Once")),
        *((y, s, "Unknown") for y in ("2021", "2022") for s in sexes),
    }
    assert table.structural_zeros == expected
    assert all(table.counts[key] == 0 for key in table.structural_zeros)
    assert table.counts[("2021", "Feminine", "Repeated")] == 1
    assert table.counts[("Unknown", "Feminine", "Unknown")] == 1
    # the other streams declare none
    assert aggregate([person("p1")], VICTIMS_BY_YEAR_SEX).structural_zeros == frozenset()


def test_the_structural_zeros_reach_disclosure_control() -> None:
    table = aggregate(
        [person("p1", year=2021, years=(2021, 2023)), person("p2", year=None)],
        REPEAT_VICTIMISATION,
    )
    t = build_table(standard_dimensions(table), table.counts, table.structural_zeros)
    flagged = {t.key(i) for i in range(t.size) if t.structural[i] and t.is_cell[i]}
    assert flagged == set(table.structural_zeros)
    # a margin made only of structural zeros is one too: year Unknown has no Repeated/Once
    assert t.structural[t.index(("Unknown", "Total", "Repeated"))]
    assert t.structural[t.index(("2021", "Total", "Unknown"))]
    assert not t.structural[t.index(("Total", "Total", "Unknown"))]


def test_persons_counted_in_a_structural_zero_are_refused() -> None:
    with pytest.raises(ImpossibleCount) as e:
        table_from_counts(REPEAT_VICTIMISATION, {("Unknown", "Feminine", "Repeated"): 3})
    assert "3" not in str(e.value)


def test_structural_zero_rules() -> None:
    rule = Impossible("r", where=(("a", ("x",)),), other_than=(("b", ("y",)),))
    assert rule.matches(("a", "b"), ("x", "z")) and not rule.matches(("a", "b"), ("x", "y"))
    assert not rule.matches(("a",), ("x",))  # a rule over a missing dimension does not apply
    cats = (("x", "w"), ("y", "z"))
    assert structural_zeros([rule], ("a", "b"), cats) == {("x", "z")}
    with pytest.raises(InvalidCategories):
        Impossible("no dimension")
    with pytest.raises(InvalidCategories):
        Impossible(" ", where=(("a", ("x",)),))
    with pytest.raises(ValueError):
        StreamSpec("bad", "t", "u", ("year",), structural_zeros=(rule,))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(SEXES),
            st.lists(st.integers(2018, 2024), max_size=3),
        ),
        max_size=30,
    )
)
def test_combined_persons_never_land_in_a_structural_zero(
    people: list[tuple[str, list[int]]],
) -> None:
    persons = [
        PersonFacts((str(i),), sex, 30, (), min(ys) if ys else None, tuple(sorted(set(ys))))
        for i, (sex, ys) in enumerate(people)
    ]
    table = aggregate(persons, REPEAT_VICTIMISATION)  # raises ImpossibleCount if one does
    assert table.total == len(persons)


# -- the age hierarchy --------------------------------------------------------------------------


def test_age_groups_are_hierarchical() -> None:
    assert AGE_GROUP.hierarchy() == (
        ("0-17", ("0-11", "12-17", MINOR_BAND_UNKNOWN)),
        ("18+", ("18-24", "25-34", "35-44", "45+", ADULT_BAND_UNKNOWN)),
    )
    assert VICTIMS_BY_YEAR_AGE_GROUP.hierarchies() == {"age_group": AGE_GROUP.hierarchy()}
    assert VICTIMS_BY_YEAR_SEX.hierarchies() == {}


def test_disclosure_control_reads_the_declared_age_hierarchy() -> None:
    # one declaration: a child of unknown band is in 0-17 in every table disclosure controls
    assert STANDARD_HIERARCHIES["age_group"] == AGE_GROUP.hierarchy()


@pytest.mark.parametrize(
    ("youngest", "oldest", "group"),
    [
        (14, 14, "12-17"),
        (0, 11, "0-11"),
        (None, 17, MINOR_BAND_UNKNOWN),  # known only as a minor: a child of unknown band
        (10, 13, MINOR_BAND_UNKNOWN),
        (16, 19, "Unknown"),  # a minor or an adult
        (50, None, "45+"),
        (20, None, ADULT_BAND_UNKNOWN),  # an adult of unknown band
        (30, 38, ADULT_BAND_UNKNOWN),  # CTDC's 30--38 spans two adult bands
        (9, 17, MINOR_BAND_UNKNOWN),  # CTDC's 9--17
        (18, 20, "18-24"),
        (None, None, "Unknown"),
        (12, 11, "Unknown"),
        (-1, 3, "Unknown"),
    ],
)
def test_the_age_range_hook(youngest: int | None, oldest: int | None, group: str) -> None:
    assert age_group_of_range(youngest, oldest) == group


@given(st.integers(0, 120))
def test_an_exact_age_is_a_range_of_one_year(age: int) -> None:
    assert age_group_of_range(age, age) == age_group(age)


# -- most frequent categories and Rest (citizenship, country of exploitation) -------------------


def test_most_frequent_categories_then_rest_never_other() -> None:
    observed = {"RO": 40, "NG": 25, "VN": 25, "AL": 12, "GB": 9, "FR": 1, "Unknown": 7}
    observed["Multiple"] = 30  # persons with two or more are never a "most frequent" code
    small = Classification(
        "citizenship",
        kind=MOST_FREQUENT,
        categories=CITIZENSHIP.categories,
        code_list=CITIZENSHIP.code_list,
        top=3,
    )
    cats = small.table_categories(observed, k=10)
    # ties in code order; AL beyond top 3; the fixed categories in their declared order
    assert cats == ("RO", "NG", "VN", "Multiple", REST, "Unknown")
    assert small.group("AL", cats) == REST and small.group("RO", cats) == "RO"
    assert small.group("Multiple", cats) == "Multiple"
    assert "Other" not in cats
    # at least k persons to be named: with k=30 only RO is
    assert small.table_categories(observed, k=30) == ("RO", "Multiple", REST, "Unknown")
    assert small.table_categories({"RO": 12}, k=10) == ("RO",)  # no Rest when nothing is in it
    with pytest.raises(UnknownCode):
        small.category_of("XX")
    with pytest.raises(UnknownCode):
        small.category_of(REST)  # a person's value is never the residual itself
    with pytest.raises(InvalidCategories):  # the residual must be declared
        Classification("c", kind=MOST_FREQUENT, categories=(), code_list=("RO",), top=1)


def test_categories_published_before_stay() -> None:
    small = Classification(
        "citizenship",
        kind=MOST_FREQUENT,
        categories=CITIZENSHIP.categories,
        code_list=CITIZENSHIP.code_list,
        top=2,
    )
    before = ("RO", "GB", "Multiple", REST)
    # GB fell to 3, Multiple to 0: both stay (GB on its own, not in Rest); NG is among the two
    # most frequent now and joins them (most frequent first); VN and AL stay in Rest
    observed = {"RO": 40, "NG": 25, "VN": 25, "AL": 12, "GB": 3}
    cats = small.table_categories(observed, k=10, sticky=before)
    assert cats == ("RO", "NG", "GB", "Multiple", REST)
    assert small.group("GB", cats) == "GB" and small.group("VN", cats) == REST
    assert small.table_categories(observed, k=10) == ("RO", "NG", REST)  # without: GB in Rest
    with pytest.raises(UnknownCode):  # a category published before is a code or fixed one
        small.table_categories(observed, k=10, sticky=("XX",))
    assert CITIZENSHIP.labels()["RO"] == "Romania" and CITIZENSHIP.labels()[REST]


def test_every_standard_dimension_has_a_classification() -> None:
    assert set(CLASSIFICATIONS) == {
        "year",
        "month",
        "sex",
        "age_group",
        "form",
        "victimisation",
        "citizenship",
        "country_of_exploitation",
        "role",
    }
    for c in CLASSIFICATIONS.values():
        assert all(cat.code != "Total" for cat in c.categories)
    assert list(itertools.chain.from_iterable(s.dimensions for s in STREAMS.values()))
