"""What the companion aggregate adds to what its reader holds beside it, and withholding it.

The release path's audit proves the companion's table safe from what that table publishes. But
the reader holds more. The same release carries the synthetic records, and the default mode
makes every attribute's count in them the persons' rounded down to a multiple of k: so a reader
knows each single attribute's count to within ``k - 1`` — also a margin the table hid — and
knows a value with no record is held by at most ``k - 1`` (the audit allowed it up to k more
than its value). And a researcher may also hold the count stream of the same table
(``victims_by_sex_age_form``), whose cells of k or more are published exactly, while the
companion's table hid some of them. Either, with the companion, can show a combination of
1 … k - 1 persons non-empty (measured in ``METHOD.md``).

:func:`companion_beside_records` therefore reads the release as such a reader would — a linear
programme over the table crossing every attribute: non-negative counts, each single count in
``floor_k … floor_k + k - 1``, every cell of k or more and the total exactly (at least what the
count stream publishes), each listed count ``c`` in ``c … c + k - 1`` — and for every combination
held by 1 … k - 1 persons asks whether its least possible count is 1 or more. A combination that
reader shows without the companion is not the companion's doing and does not count (the
records' own limit, ``METHOD.md``). For every other one shown, the listed counts whose bounds
hold its least count up (non-zero duals at the optimum) are withheld, and the reading starts
again: withholding only removes constraints, so it ends, at worst with an empty companion, and
what is left adds nothing to what the reader held without it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import linprog

from trust.release.aggregate import CountTable
from trust.release.disclosure.lp import INFEASIBLE, OPTIMAL, WarmLP
from trust.synthesize.aggregate import AggregateCount
from trust.synthesize.errors import SynthesisError

_EPS = 1e-6

Attribute = tuple[str, str]


class InconsistentReading(SynthesisError):
    """The records' single counts and the listed counts admit no table (a bug: the true table
    always fits them)."""

    code = "inconsistent_companion"


@dataclass(frozen=True)
class Beside:
    """The companion left after withholding: ``counts``; ``withheld``: how many listed counts
    were withheld; ``records_show``: combinations of 1 … k - 1 persons the records and the
    exact cells alone show non-empty (their own limit; stays in the trust); ``lps``: linear
    programmes solved."""

    counts: tuple[AggregateCount, ...]
    withheld: int
    records_show: int
    lps: int


class _Reading:
    """The reader's LP over the cells of ``counts``' table; true table as the first witness."""

    def __init__(self, counts: CountTable, k: int) -> None:
        self.dims = counts.dimensions
        self.k = k
        code = [{v: i for i, v in enumerate(c)} for c in counts.categories]
        self.code = code
        keys = list(itertools.product(*counts.categories))
        self.cells = np.array(
            [[code[j][v] for j, v in enumerate(key)] for key in keys], dtype=np.int64
        ).reshape(len(keys), len(self.dims))
        self.truth = np.array([counts.counts.get(key, 0) for key in keys], dtype=np.float64)
        self.lps = 0

    def mask(self, attributes: Sequence[Attribute]) -> npt.NDArray[np.float64]:
        hit = np.ones(len(self.cells), dtype=bool)
        for column, value in attributes:
            j = self.dims.index(column)
            hit &= self.cells[:, j] == self.code[j][value]
        return hit.astype(np.float64)

    def exact_cells(self) -> list[tuple[npt.NDArray[np.float64], float, float]]:
        """Every cell of k or more and the total, exactly: at most what the count stream of the
        same table (``victims_by_sex_age_form``, cells only) publishes to a consumer."""
        rows = []
        for i in np.flatnonzero(self.truth >= self.k):
            m = np.zeros(len(self.cells))
            m[i] = 1.0
            rows.append((m, float(self.truth[i]), float(self.truth[i])))
        total = float(self.truth.sum())
        return [*rows, (np.ones(len(self.cells)), total, total)]

    def singles(self) -> list[tuple[npt.NDArray[np.float64], float, float]]:
        rows = []
        for j, column in enumerate(self.dims):
            for value in self.code[j]:
                m = self.mask(((column, value),))
                n = int(m @ self.truth)
                rows.append((m, float(n - n % self.k), float(n - n % self.k + self.k - 1)))
        return rows

    def binding(
        self,
        known: list[tuple[npt.NDArray[np.float64], float, float]],
        first: int,
        target: npt.NDArray[np.float64],
    ) -> set[int]:
        self.lps += 1
        return _binding(known, first, target)

    def shown(
        self,
        known: list[tuple[npt.NDArray[np.float64], float, float]],
        targets: list[tuple[tuple[Attribute, ...], npt.NDArray[np.float64]]],
    ) -> set[tuple[Attribute, ...]]:
        """The targets whose least count, given ``known`` (rows with bounds), is 1 or more."""
        n = len(self.cells)
        a = sp.csr_matrix(np.array([m for m, _, _ in known]).reshape(len(known), n))
        lp = WarmLP(
            a,
            np.array([lo for _, lo, _ in known]),
            np.array([hi for _, _, hi in known]),
            np.zeros(n),
            np.full(n, math.inf),
            primal=True,
        )
        witnesses = [self.truth]
        out: set[tuple[Attribute, ...]] = set()
        for combination, m in targets:
            if any(float(m @ w) <= _EPS for w in witnesses):
                continue
            lp.set_costs(m)
            sol = lp.solve()
            self.lps += 1
            if sol.status == INFEASIBLE:
                raise InconsistentReading("the published counts admit no table")
            assert sol.status == OPTIMAL and sol.x is not None
            witnesses.append(np.asarray(sol.x))
            if math.ceil(float(m @ sol.x) - _EPS) >= 1:
                out.add(combination)
        return out


def _binding(
    known: list[tuple[npt.NDArray[np.float64], float, float]],
    first: int,
    target: npt.NDArray[np.float64],
) -> set[int]:
    """The rows from ``first`` on (the listed counts) whose bound holds the target's least
    count up: non-zero duals of the reader's LP at its optimum (SciPy's HiGHS, which reports
    them; a few such LPs per release at most)."""
    a = np.array([m for m, _, _ in known])
    lo = np.array([x for _, x, _ in known])
    hi = np.array([x for _, _, x in known])
    res = linprog(
        target,
        A_ub=np.vstack([a, -a]),
        b_ub=np.concatenate([hi, -lo]),
        bounds=(0, None),
        method="highs",
    )
    if res.status != 0:
        raise InconsistentReading("the published counts admit no table")
    duals = np.abs(res.ineqlin.marginals)
    n = len(known)
    return {i - first for i in range(first, n) if duals[i] > _EPS or duals[n + i] > _EPS}


def _small_combinations(
    reading: _Reading, counts: CountTable
) -> list[tuple[tuple[Attribute, ...], npt.NDArray[np.float64]]]:
    """Every combination of 1 … all attributes held by 1 … k - 1 persons, with its mask."""
    out = []
    dims = counts.dimensions
    for n in range(1, len(dims) + 1):
        for cols in itertools.combinations(range(len(dims)), n):
            for values in itertools.product(*(counts.categories[j] for j in cols)):
                combination = tuple((dims[j], v) for j, v in zip(cols, values, strict=True))
                m = reading.mask(combination)
                if 1 <= m @ reading.truth < reading.k:
                    out.append((combination, m))
    return out


def companion_beside_records(
    counts: CountTable, listed: Sequence[AggregateCount], k: int
) -> Beside:
    """``listed`` less what it must withhold so that, read beside the records' single counts
    and the four-way cells of k or more (exactly, as the count stream of the same table may
    publish them to the same consumer), it shows no combination of 1 … k - 1 persons non-empty
    that those alone do not."""
    reading = _Reading(counts, k)
    targets = _small_combinations(reading, counts)
    singles = reading.singles() + reading.exact_cells()
    by_records = reading.shown(singles, targets)
    targets = [t for t in targets if t[0] not in by_records]
    kept = list(listed)
    while kept and targets:
        known = singles + [
            (reading.mask(tuple(zip(a.columns, a.values, strict=True))), a.count, a.count + k - 1)
            for a in kept
        ]
        shown = reading.shown(known, targets)
        if not shown:
            break
        masks = dict(targets)
        binding: set[int] = set()
        for combination in sorted(shown):
            binding |= reading.binding(known, len(singles), masks[combination])
        left = [a for i, a in enumerate(kept) if i not in binding]
        kept = left if len(left) < len(kept) else []  # no listed count binds: withhold all
    return Beside(
        counts=tuple(kept),
        withheld=len(listed) - len(kept),
        records_show=len(by_records),
        lps=reading.lps,
    )
