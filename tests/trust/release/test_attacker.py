"""The differencing attacker (``attacker.py``) is not blind: it pins what its LPs can pin, across
streams, and through perturbed values, and its model of each method covers every true count the
method could have published as a value, and no more."""

from __future__ import annotations

import dataclasses

import pytest

from schemas.release import Aggregate, Release
from tests.trust.release.attacker import Attacker, UnsupportedRelease, true_interval
from trust.release.disclosure.cellkey import KEY_COLUMNS, PerturbationTable
from trust.release.disclosure.rounding import random_round, round_down

K = 10
Values = dict[tuple[tuple[str, ...], tuple[str, ...]], int | None]


def release(
    stream: str,
    dims: tuple[str, ...],
    values: Values,
    *,
    seq: int = 1,
    method: str = "suppression",
    params: dict[str, str] | None = None,
) -> Release:
    exact = method == "suppression"
    aggregates = tuple(
        Aggregate(d, key, v, exact and v is not None) for (d, key), v in values.items()
    )
    return Release(
        stream, f"{stream}-{seq}", seq, 0, "t", "u", 2022, 2022, dims, aggregates, K, "m", 1,
        ("src-a",), metadata={"method_name": method, **(params or {})},
    )  # fmt: skip


YS = ("year", "sex")


def by_sex(f: int | None, m: int | None, year: int | None, total: int | None) -> Values:
    return {
        (YS, ("2022", "F")): f,
        (YS, ("2022", "M")): m,
        (("year",), ("2022",)): year,
        (("sex",), ("F",)): f,
        (("sex",), ("M",)): m,
        ((), ()): total,
    }


def test_it_pins_a_value_suppressed_in_one_stream_from_a_margin_another_publishes() -> None:
    # alone, the sex table hides M (5): year and total hidden too, M is only bounded below
    sexes = release("by_sex", YS, by_sex(20, None, None, None))
    forms = release(
        "by_form",
        ("year", "form"),
        {
            (("year", "form"), ("2022", "X")): 13,
            (("year", "form"), ("2022", "Y")): 12,
            (("year",), ("2022",)): 25,
            (("form",), ("X",)): 13,
            (("form",), ("Y",)): 12,
            ((), ()): 25,
        },
    )
    attacker = Attacker(K)
    assert attacker.observe([sexes]) == []
    # together (the same persons at the same time point): the total gives M = 25 - 20
    found = attacker.observe([forms])
    assert {f.aggregate for f in found} == {(YS, ("2022", "M")), (("sex",), ("M",))}
    assert all(f.kind == "pinned" and "[5, 5]" in f.detail for f in found)


def test_streams_of_other_sources_are_not_combined() -> None:
    sexes = release("by_sex", YS, by_sex(20, None, None, None))
    total = release("by_year", ("year",), {(("year",), ("2022",)): 25, ((), ()): 25})
    other = dataclasses.replace(total, sources=("src-b",))
    assert Attacker(K).observe([sexes, other]) == []
    assert len(Attacker(K).observe([sexes, total])) == 2


def test_it_undoes_cell_key_noise_through_additivity_and_then_sees_a_change_of_one() -> None:
    """Noise +2, +2 on the cells and -2 on their sum leave one table: every true count is
    recovered, and a later release of the same kind tells a change of one person."""
    ck = {"max_noise": "2"}
    attacker = Attacker(K)
    # true: F 20, M 15, total 35
    assert (
        attacker.observe([release("s", YS, by_sex(22, 17, 33, 33), method="cell_key", params=ck)])
        == []
    )
    assert attacker.report()["bounded"]["perturbed_recovered_exactly"] == 6
    # true: F 21, M 15, total 36
    found = attacker.observe(
        [release("s", YS, by_sex(23, 17, 34, 34), seq=2, method="cell_key", params=ck)]
    )
    assert {f.aggregate for f in found} == {
        (YS, ("2022", "F")),
        (("sex",), ("F",)),
        (("year",), ("2022",)),
        ((), ()),
    }
    assert {f.kind for f in found} == {"small_change"}


def test_unsupported_methods_are_refused() -> None:
    dp = release("s", YS, by_sex(20, 15, 35, 35), method="dp_discrete_laplace")
    with pytest.raises(UnsupportedRelease):
        Attacker(K).observe([dp])


def _interval(method: str, value: int, params: dict[str, str]) -> tuple[int, int]:
    r = release("s", ("sex",), {(("sex",), ("F",)): value}, method=method, params=params)
    out = true_interval(r, r.aggregates[0])
    assert out is not None
    return out


@pytest.mark.parametrize("max_noise", [1, 2, 3])
def test_the_cell_key_interval_is_every_count_that_can_give_the_value(max_noise: int) -> None:
    table = PerturbationTable(K, max_noise)
    gives: dict[int, set[int]] = {}
    for count in range(K, K + 40):
        for column in range(KEY_COLUMNS):
            gives.setdefault(count + table.noise(count, column), set()).add(count)
    for value in range(K, K + 30):
        lo, hi = _interval("cell_key", value, {"max_noise": str(max_noise)})
        assert set(range(lo, hi + 1)) == gives[value]


@pytest.mark.parametrize("method", ["round_down", "random_rounding"])
@pytest.mark.parametrize("base", [5, 10])
def test_the_rounding_interval_is_every_count_that_can_give_the_value(
    method: str, base: int
) -> None:
    gives: dict[int, set[int]] = {}
    for count in range(K, K + 60):
        if method == "round_down":
            outs = {round_down(count, base)}
        else:
            outs = {random_round(count, base, draw) for draw in range(base)}
        for v in outs:
            if v >= K:  # a value rounded below k is suppressed
                gives.setdefault(v, set()).add(count)
    for value in range(K, K + 40, base):
        lo, hi = _interval(method, value, {"rounding_base": str(base)})
        assert set(range(lo, hi + 1)) == gives[value]
