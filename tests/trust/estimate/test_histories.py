"""Capture histories: from linked persons or a CSV, per stratum, and the lists worth modelling."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trust.estimate.errors import EstimateError, ReasonCode
from trust.estimate.histories import (
    CaptureHistories,
    from_persons,
    from_rows,
    informative,
    parse_csv,
    stratified,
)

LISTS = ("police", "ngo", "nrm")


def test_persons_become_counts_per_history_and_types_can_pool_agencies() -> None:
    persons = [{"police_a"}, {"police_b", "ngo_x"}, {"ngo_x"}, {"ngo_y", "police_a"}, set()]
    per_agency = from_persons(persons)
    assert per_agency.lists == ("ngo_x", "ngo_y", "police_a", "police_b")
    assert per_agency.observed == 4
    by_type = from_persons(
        persons,
        ["police", "ngo"],
        {"police_a": "police", "police_b": "police", "ngo_x": "ngo", "ngo_y": "ngo"},
    )
    assert by_type.exactly("police") == 1
    assert by_type.exactly("ngo") == 1
    assert by_type.exactly("police", "ngo") == 2
    assert by_type.on("police") == 3


def test_strata_get_one_table_each_over_the_same_lists() -> None:
    tables = stratified(
        [(("F",), {"police"}), (("M",), {"ngo"}), (("F",), {"police", "ngo"})], ["police", "ngo"]
    )
    assert set(tables) == {("F",), ("M",)}
    assert tables[("F",)].exactly("police", "ngo") == 1
    assert tables[("M",)].observed == 1


def test_csv_rows_add_up_and_strata_split_them() -> None:
    text = "police,ngo,sex,count\n1,0,F,3\n1,1,F,2\n1,0,F,1\n0,1,M,4\n"
    tables = parse_csv(text, strata=["sex"])
    assert tables[("F",)].exactly("police") == 4
    assert tables[("F",)].on("police") == 6
    assert tables[("M",)].exactly("ngo") == 4


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("police,ngo,n\n1,0,3\n", ReasonCode.NO_COUNT_COLUMN, None),
        ("police,ngo,count\n1,2,3\n", ReasonCode.NOT_BINARY, "row 2"),
        ("police,ngo,count\n1,0,3\nyes,0,1\n", ReasonCode.NOT_BINARY, "row 3"),
        ("police,ngo,count\n1,0,-3\n", ReasonCode.BAD_COUNT, "row 2"),
        ("police,ngo,count\n1,0,2.5\n", ReasonCode.BAD_COUNT, "row 2"),
        ("police,ngo,count\n0,0,3\n", ReasonCode.NOT_BINARY, "row 2"),
        ("police,count\n1,3\n", ReasonCode.TOO_FEW_LISTS, None),
        ("police,ngo,count\n", ReasonCode.NO_ROWS, None),
        ("", ReasonCode.NO_ROWS, None),
        ("police,police,count\n1,0,1\n", ReasonCode.DUPLICATE_COLUMN, None),
    ],
)
def test_bad_csv_is_refused_naming_the_row_not_the_value(
    text: str, code: ReasonCode, where: str | None
) -> None:
    with pytest.raises(EstimateError) as info:
        parse_csv(text)
    assert info.value.code is code
    assert info.value.where == where
    assert "yes" not in str(info.value) and "2.5" not in str(info.value)


histories = st.integers(2, 5).flatmap(
    lambda t: st.lists(st.integers(0, 30), min_size=2**t - 1, max_size=2**t - 1).map(
        lambda cells: CaptureHistories(tuple(f"l{i}" for i in range(t)), tuple(cells))
    )
)


@settings(max_examples=60, deadline=None)
@given(histories)
def test_a_table_written_as_csv_reads_back_the_same(h: CaptureHistories) -> None:
    lines = [",".join([*h.lists, "count"])]
    lines += [",".join(map(str, [*flags, count])) for flags, count in h.rows()]
    if len(lines) == 1:  # nobody observed: a header alone is refused
        return
    assert parse_csv("\n".join(lines) + "\n")[()] == h


@settings(max_examples=60, deadline=None)
@given(histories, st.data())
def test_removing_a_list_keeps_everyone_on_another_list(
    h: CaptureHistories, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(h.lists))
    rest = h.without(name)
    assert rest.observed == h.observed - h.exactly(name)
    for other in rest.lists:
        assert rest.on(other) == h.on(other)


def test_a_nested_list_is_merged_into_the_list_that_holds_it() -> None:
    h = from_rows(
        ["police", "ngo", "court"],
        [((1, 0, 0), 30), ((0, 1, 0), 20), ((1, 1, 0), 10), ((1, 0, 1), 8), ((1, 1, 1), 2)],
    )
    info = informative(h)
    assert info.merged == (("court", "police"),)
    assert info.histories.lists == ("police", "ngo")
    assert info.histories.observed == h.observed
    assert informative(h, merge_nested=False).histories == h


def test_empty_lists_are_dropped_and_a_list_holding_everyone_is_named() -> None:
    h = from_rows(LISTS, [((1, 0, 0), 5), ((1, 1, 0), 3)])
    info = informative(h)
    assert info.dropped == ("nrm",)
    assert info.covering == "police"
