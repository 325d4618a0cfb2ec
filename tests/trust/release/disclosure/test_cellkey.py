"""Cell-key perturbation: the same persons give the same value in every table and release; the
perturbation table is unbiased, bounded and never takes a published count below k."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from trust.release.disclosure.cellkey import (
    KEY_COLUMNS,
    KEY_MODULUS,
    PerturbationTable,
    roll_up,
)

HIER = {"age_group": {"0-17": ("0-11", "12-17")}}


@given(st.integers(1, 30), st.integers(0, 5), st.integers(0, 500))
def test_the_perturbation_table_is_unbiased_bounded_and_keeps_k(k: int, d: int, extra: int) -> None:
    table = PerturbationTable(k, d)
    count = k + extra
    row = table.row(count)
    assert len(row) == KEY_COLUMNS
    assert Fraction(sum(row), KEY_COLUMNS) == 0  # mean 0 over uniform cell keys
    assert all(abs(n) <= d and count + n >= k for n in row)
    if extra >= d and d > 0:
        assert set(row) == set(range(-d, d + 1))  # every noise value can occur


def test_the_table_id_names_its_content_and_counts_below_k_are_untouched() -> None:
    assert PerturbationTable(10, 2).table_id == PerturbationTable(10, 2).table_id
    assert PerturbationTable(10, 2).table_id != PerturbationTable(11, 2).table_id
    assert PerturbationTable(10, 2).row(3) == (0,) * KEY_COLUMNS


persons = st.lists(
    st.tuples(
        st.integers(0, KEY_MODULUS - 1),  # record key
        st.sampled_from(["2022", "2023", "Unknown"]),
        st.sampled_from(["Feminine", "Masculine"]),
        st.sampled_from(["0-11", "12-17", "18-24"]),
    ),
    max_size=40,
)


Rolled = dict[tuple[tuple[str, ...], tuple[str, ...]], int]


def keys_and_counts(
    people: list[tuple[int, str, str, str]], dims: tuple[str, ...]
) -> tuple[Rolled, Rolled]:
    pick = {"year": 1, "sex": 2, "age_group": 3}
    keys: dict[tuple[str, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    for key, *facts in people:
        cell = tuple(str(facts[pick[d] - 1]) for d in dims)
        keys[cell] = keys.get(cell, 0) + key
        counts[cell] = counts.get(cell, 0) + 1
    return roll_up(dims, HIER, keys, KEY_MODULUS), roll_up(dims, HIER, counts)


@given(persons, persons)
def test_the_same_persons_give_the_same_value_in_every_table_and_release(
    people: list[tuple[int, str, str, str]], others: list[tuple[int, str, str, str]]
) -> None:
    ptable = PerturbationTable(1, 3)
    by_sex = keys_and_counts(people, ("year", "sex"))
    by_age = keys_and_counts(people, ("year", "age_group"))
    for aggregate in by_sex[1]:
        if aggregate[0] in ((), ("year",)):  # in both tables: the same persons
            assert by_sex[0][aggregate] == by_age[0][aggregate]
            c = by_sex[1][aggregate]
            assert ptable.noise(c, by_sex[0][aggregate]) == ptable.noise(c, by_age[0][aggregate])
    # a later release adds persons of another year only: 2022's persons keep their values
    later = people + [(k, "2099", s, a) for k, _, s, a in others]
    again = keys_and_counts(later, ("year", "age_group"))
    for aggregate, key in by_age[0].items():
        if aggregate[0] and aggregate[0][0] == "year":
            assert again[0][aggregate] == key and again[1][aggregate] == by_age[1][aggregate]


def test_roll_up_sums_parents_margins_and_the_total() -> None:
    cells: dict[tuple[str, ...], int] = {
        ("2023", "0-11"): 3,
        ("2023", "12-17"): 4,
        ("2022", "18-24"): 5,
    }
    out = roll_up(("year", "age_group"), HIER, cells)
    assert out[(("year", "age_group"), ("2023", "0-17"))] == 7
    assert out[(("age_group",), ("0-17",))] == 7
    assert out[(("year",), ("2023",))] == 7
    assert out[((), ())] == 12
    assert (("age_group",), ("18+",)) not in out  # only parents the hierarchy declares
