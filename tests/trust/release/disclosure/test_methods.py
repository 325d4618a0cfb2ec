"""The registry of disclosure methods: every name resolves, an unknown one says what is known."""

from __future__ import annotations

import pytest

from trust.release.aggregate import CountTable
from trust.release.disclosure.methods import (
    METHODS,
    ContinualPrivacy,
    DifferentialPrivacy,
    UnknownMethod,
    method,
)
from trust.release.disclosure.suppression import DisclosurePolicy, apply_step


def test_every_declared_method_resolves_and_perturbing_steps_run() -> None:
    assert {"suppression", "round_down", "random_rounding", "cell_key"} <= set(METHODS)
    assert {"dp_discrete_laplace", "dp_discrete_gaussian", "dp_continual"} <= set(METHODS)
    counts: dict[tuple[str, ...], int] = {("2022",): 14, ("2023",): 3}
    table = DisclosurePolicy(10).apply(
        CountTable("s", ("year",), (("2022", "2023"),), counts, 17, 2022, 2023)
    )
    keys = {(("year",), ("2022",)): 12345, ((), ()): 999}
    for name, m in METHODS.items():
        assert method(name) is m
        if isinstance(m, DifferentialPrivacy | ContinualPrivacy):
            assert m.cost.epsilon > 0
            continue
        step = m.step(10, keys)
        if step is None:
            assert name == "suppression"
            continue
        out = apply_step(table, step)
        assert out.exact is False and out.cells[1].count is None  # 3 stays suppressed
        assert out.parameters["method_name"] == name


def test_an_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(UnknownMethod) as info:
        method("blur")
    assert info.value.code == "unknown_method" and "cell_key" in str(info.value)
