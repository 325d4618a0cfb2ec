"""The operator's population CSV: parsed, checked by row, derived where it can be, kept on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.release.population import (
    MAX_POPULATION,
    PopulationError,
    load_population,
    parse_population,
    population_paths,
    save_population,
)

SOURCE = "National statistics office, mid-year population estimates"
LEAVES = ("0-11", "12-17", "18-24", "25-34", "35-44", "45+")


def csv_of(rows: list[tuple[object, ...]], header: str = "year,sex,age_group,population") -> bytes:
    return ("\n".join([header, *(",".join(str(v) for v in r) for r in rows)]) + "\n").encode()


def full_year(year: int = 2022) -> list[tuple[object, ...]]:
    return [
        (year, sex, age, 1000 * (i + 1) + (7 if sex == "Masculine" else 0))
        for sex in ("Feminine", "Masculine")
        for i, age in enumerate(LEAVES)
    ]


def test_a_population_by_year_sex_and_age_group() -> None:
    pop = parse_population(csv_of(full_year()), SOURCE)
    assert pop.source == SOURCE and pop.years() == ("2022",)
    assert pop.denominator("2022", "Feminine", "12-17") == 2000
    assert pop.denominator("2022", "Feminine", "0-17") == 3000  # derived: 0-11 + 12-17
    assert pop.denominator("2022", "Masculine", "18+") == 3000 + 4000 + 5000 + 6000 + 28
    assert pop.denominator("2022", "Total", "0-11") == 2007  # the sexes the file gives
    assert pop.denominator("2022", "Total", "Total") == 2 * 21000 + 42
    assert pop.denominator("2022", "Unknown", "0-11") is None
    assert pop.denominator("2022", "OtherGenderIdentity", "Total") is None  # not given
    assert pop.denominator("2023", "Feminine", "0-11") is None


def test_given_totals_are_used_and_must_agree_with_their_parts() -> None:
    only_totals = parse_population(csv_of([(2021, "Total", "Total", 5_000_000)]), SOURCE)
    assert only_totals.denominator("2021", "Total", "Total") == 5_000_000
    assert only_totals.denominator("2021", "Feminine", "Total") is None
    rows = [*full_year(), (2022, "Feminine", "0-17", 3001)]  # 0-11 + 12-17 is 3000
    with pytest.raises(PopulationError) as e:
        parse_population(csv_of(rows), SOURCE)
    [problem] = e.value.problems
    assert problem.row == 14 and problem.column == "population"
    agreeing = parse_population(csv_of([*full_year(), (2022, "Feminine", "0-17", 3000)]), SOURCE)
    assert agreeing.denominator("2022", "Feminine", "0-17") == 3000


def test_every_problem_is_reported_by_row_and_column_without_values() -> None:
    rows: list[tuple[object, ...]] = [
        (2022, "Feminine", "0-11", 100),
        (1800, "Female", "0-11", 100),  # row 3: year and sex
        (2022, "Masculine", "Unknown", "-5"),  # row 4: age group and population
        (2022, "Feminine", "0-11", 100),  # row 5: a duplicate of row 2
        (2022, "Feminine", "12-17", "12.5"),  # row 6: population
        (2022, "Feminine"),  # row 7: too few fields
    ]
    with pytest.raises(PopulationError) as e:
        parse_population(csv_of(rows), SOURCE)
    got = [(p.row, p.column) for p in e.value.problems]
    assert got == [
        (3, "sex"),
        (3, "year"),
        (4, "age_group"),
        (4, "population"),
        (5, ""),
        (6, "population"),
        (7, ""),
    ]
    assert e.value.code == "invalid_population"
    message = str(e.value)
    assert "row 3, column year" in message and "also row 2" in message
    assert "Female" not in message and "1800" not in message and "12.5" not in message


@pytest.mark.parametrize(
    ("data", "source", "expected"),
    [
        (b"", SOURCE, "a header row"),
        (b"year,sex,population\n2022,Feminine,1\n", SOURCE, "the columns"),
        (b"year,sex,age_group,population,extra\n", SOURCE, "the columns"),
        (b"year,sex,age_group,population\n", SOURCE, "at least one row"),
        (b"\xff\xfe", SOURCE, "UTF-8"),
        (csv_of(full_year()), "  ", "statement of source"),
        (csv_of(full_year()), "line one\nline two", "statement of source"),
    ],
)
def test_files_that_cannot_be_used(data: bytes, source: str, expected: str) -> None:
    with pytest.raises(PopulationError) as e:
        parse_population(data, source)
    assert expected in str(e.value)


def test_column_order_byte_order_mark_and_blank_lines() -> None:
    data = b"\xef\xbb\xbfpopulation, age_group ,sex,year\r\n120,0-11,Feminine,2020\r\n\r\n"
    pop = parse_population(data, SOURCE)
    assert pop.denominator("2020", "Feminine", "0-11") == 120


rows_strategy = st.lists(
    st.tuples(
        st.integers(1950, 2100),
        st.sampled_from(("Feminine", "Masculine", "OtherGenderIdentity")),
        st.sampled_from(LEAVES),
        st.integers(1, MAX_POPULATION),
    ),
    min_size=1,
    max_size=25,
    unique_by=lambda r: r[:3],
)


@settings(max_examples=40, deadline=None)
@given(rows_strategy)
def test_valid_leaf_rows_parse_to_exactly_their_numbers(
    rows: list[tuple[int, str, str, int]],
) -> None:
    pop = parse_population(csv_of(list(rows)), SOURCE)
    assert dict(pop.rows) == {(str(y), s, a): n for y, s, a, n in rows}
    for y, s, a, n in rows:
        assert pop.denominator(str(y), s, a) == n


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.text(max_size=40))
def test_any_bytes_parse_or_are_refused_with_problems(data: bytes, source: str) -> None:
    try:
        pop = parse_population(data, source)
    except PopulationError as exc:
        assert exc.problems and all(p.expected for p in exc.problems)
    else:
        assert pop.rows and all(n >= 1 for n in pop.rows.values())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(["2022", "Feminine", "0-11", "7", "", "x", '"', "Total", "18+"]),
            max_size=5,
        ),
        max_size=8,
    )
)
def test_near_miss_tables_parse_or_are_refused(cells: list[list[str]]) -> None:
    data = "\n".join(["year,sex,age_group,population", *(",".join(r) for r in cells)]).encode()
    try:
        parse_population(data, SOURCE)
    except PopulationError as exc:
        assert all(p.row >= 1 for p in exc.problems)


def test_save_checks_first_then_load_reads_it_back(tmp_path: Path) -> None:
    folder = tmp_path / "trust" / "population"
    assert load_population(folder) is None  # the operator gave none
    with pytest.raises(PopulationError):
        save_population(folder, b"year,sex\n", SOURCE)
    assert not folder.exists() or not any(folder.iterdir())  # nothing written
    saved = save_population(folder, csv_of(full_year()), SOURCE)
    loaded = load_population(folder)
    assert loaded is not None and loaded.digest == saved.digest and loaded.rows == saved.rows
    csv_path, source_path = population_paths(folder)
    assert source_path.read_text(encoding="utf-8").strip() == SOURCE
    other = save_population(folder, csv_of(full_year()), "Another census")
    assert other.digest != saved.digest  # the source is part of what was given
    csv_path.unlink()
    with pytest.raises(PopulationError):
        load_population(folder)  # a source without its file
