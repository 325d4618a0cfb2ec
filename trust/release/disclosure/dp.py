"""Differential privacy on a stream's counts through OpenDP (method note: ``noise.md``).

Every aggregate a release publishes — each cell, and for streams with margins each margin and the
total — gets noise from an OpenDP measurement on the vector of true values: the discrete Laplace
mechanism (pure ε-DP) or the discrete Gaussian (zero-concentrated DP, converted to (ε, δ)). One
person is in one cell and in every aggregate above it, so adding or removing a person changes
``sensitivity`` values by 1 each: the L1 distance is ``sensitivity``, the L2 distance its square
root (rounded up: OpenDP's integer metric). The noise scale is ``sensitivity / ε`` for Laplace
when OpenDP's privacy map accepts it, else the smallest scale OpenDP accepts for the release's ε
(and δ) at that distance (``binary_search_param``); no noise is drawn here.

Suppression on the true counts would void the guarantee (whether a cell is below k is itself a
property of the data), so a DP release replaces it: the noisy values are post-processed only —
a noisy value below k is suppressed — which costs no privacy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from trust.release.aggregate import CountTable
from trust.release.disclosure.suppression import SuppressedCell, SuppressedTable, TableAggregate
from trust.release.errors import ReleaseError

Mechanism = Literal["laplace", "gaussian"]


class InvalidPrivacyParameters(ReleaseError):
    """A differential-privacy method declared with an ε or δ OpenDP cannot meet."""

    code = "invalid_privacy_parameters"


@dataclass(frozen=True)
class PrivacyCost:
    """What one release spends of a privacy budget."""

    epsilon: float
    delta: float = 0.0


@dataclass(frozen=True)
class NoisyValues:
    values: tuple[int, ...]
    scale: float
    cost: PrivacyCost  # what OpenDP's privacy map says the measurement spends (<= declared)


def load_opendp() -> Any:
    """OpenDP's prelude with the ``contrib`` features on (the mechanisms used here need them)."""
    import opendp.prelude as dp  # heavy: loaded at the first DP release, not at CLI start

    dp.enable_features("contrib")
    return dp


def add_noise(
    values: Sequence[int], sensitivity: int, mechanism: Mechanism, cost: PrivacyCost
) -> NoisyValues:
    """``values`` with OpenDP noise calibrated so that a change of one person (``sensitivity``
    values moved by 1 each) costs at most ``cost``."""
    if sensitivity < 1 or not math.isfinite(cost.epsilon) or cost.epsilon <= 0:
        raise InvalidPrivacyParameters("a DP release needs sensitivity >= 1 and epsilon > 0")
    dp = load_opendp()
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    first_try: float | None = None
    if mechanism == "laplace":
        d_in: int = sensitivity
        target: Any = cost.epsilon
        first_try = sensitivity / cost.epsilon  # the textbook scale, if OpenDP's map accepts it

        def make(scale: float) -> Any:
            return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale)

    elif mechanism == "gaussian":
        if not 0 < cost.delta < 1:
            raise InvalidPrivacyParameters("Gaussian noise needs 0 < delta < 1")
        d_in = math.isqrt(sensitivity - 1) + 1  # ceil(sqrt(sensitivity))
        target = (cost.epsilon, cost.delta)

        def make(scale: float) -> Any:
            zcdp = dp.m.make_gaussian(domain, dp.l2_distance(T="i64"), scale)
            return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), cost.delta)

    else:  # pragma: no cover - Literal
        raise InvalidPrivacyParameters(f"unknown mechanism {mechanism!r}")
    if first_try is not None and make(first_try).check(d_in, target):
        scale = first_try
    else:
        scale = float(dp.binary_search_param(make, d_in=d_in, d_out=target))
    measurement = make(scale)
    spent = measurement.map(d_in)
    eps, delta = (spent, 0.0) if mechanism == "laplace" else spent
    if eps > cost.epsilon or delta > cost.delta:  # OpenDP's own accounting must agree
        raise InvalidPrivacyParameters("OpenDP's privacy map exceeds the declared cost")
    noisy = measurement([int(v) for v in values])
    return NoisyValues(tuple(int(v) for v in noisy), scale, PrivacyCost(float(eps), float(delta)))


MECHANISM_NAMES: dict[Mechanism, str] = {
    "laplace": "discrete Laplace",
    "gaussian": "discrete Gaussian",
}


def dp_table(
    counts: CountTable,
    k: int,
    mechanism: Mechanism,
    cost: PrivacyCost,
    *,
    margins: bool,
) -> SuppressedTable:
    """The release table of ``counts`` under differential privacy: every aggregate (cells and
    total; with ``margins`` every margin too) with OpenDP noise, noisy values below ``k``
    suppressed. Nothing in it is exact."""
    if margins:
        # numpy/scipy: loaded with the other disclosure steps, at the first release check
        from trust.release.disclosure.table import from_count_table, incidence

        table = from_count_table(counts)
        breakdowns = [table.breakdown(i) for i in range(table.size)]
        true_values = [int(v) for v in table.values]
        sensitivity = int(incidence(table).sum(axis=0).max())
        hierarchies = {
            d.name: {parent: tuple(children) for parent, children in d.hierarchy}
            for d in table.dimensions
            if d.hierarchy
        }
    else:
        cell_keys = list(counts.cell_keys())
        breakdowns = [(counts.dimensions, key) for key in cell_keys] + [((), ())]
        true_values = [counts.counts[key] for key in cell_keys] + [counts.total]
        sensitivity = 2  # a person is in one cell and the total
        hierarchies = {}
    noisy = add_noise(true_values, sensitivity, mechanism, cost)
    published = {b: (v if v >= k else None) for b, v in zip(breakdowns, noisy.values, strict=True)}
    dims = counts.dimensions
    cells = tuple(
        SuppressedCell(key, published[(dims, key)], published[(dims, key)] is None)
        for key in counts.cell_keys()
    )
    total = published[((), ())]
    method = (
        f"differential privacy: {MECHANISM_NAMES[mechanism]} noise from OpenDP on every "
        f"published value (epsilon {cost.epsilon:g}"
        + (f", delta {cost.delta:g}" if mechanism == "gaussian" else "")
        + f" per release, a person in at most {sensitivity} values, noise scale {noisy.scale:.4g});"
        " noisy values below k suppressed (values not exact)"
    )
    return SuppressedTable(
        stream=counts.stream,
        dimensions=dims,
        categories=counts.categories,
        cells=cells,
        total=total,
        total_suppressed=total is None,
        period_start=counts.period_start,
        period_end=counts.period_end,
        k=k,
        steps=(method,),
        aggregates=tuple(TableAggregate(d, key, v) for (d, key), v in published.items())
        if margins
        else (),
        hierarchies=hierarchies,
        exact=False,
        parameters={
            "method_name": f"dp_discrete_{mechanism}",
            "epsilon": f"{cost.epsilon:g}",
            "delta": f"{cost.delta:g}",
            "noise_scale": f"{noisy.scale:.6g}",
            "sensitivity": str(sensitivity),
        },
    )
