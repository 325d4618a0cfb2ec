"""Fitting pair (and triple) counts: a linear programme over the rows a release may contain.

The rows a k-anonymous synthetic table may contain are the combinations held by at least ``k``
sensitive rows (a *kind* here). Choose how many rows of each kind to write, ``x[t] >= 0``, so that

- every attribute occurs exactly its sensitive count rounded down to a multiple of ``k`` times
  (one equality per attribute held by >= ``k`` rows), and
- the pair counts are as close as possible to the sensitive ones: ``sum |syn_q - c_q| / c_q`` over
  the pairs held by >= ``k`` rows is minimal (a pair held by fewer can never occur anyway; each
  absolute value is two slack columns costing ``1/c_q``); optionally the triples' too, at a
  lower weight, and with kinds of :data:`CAP_LENGTH` or more attributes written at most a
  multiple of their own sensitive count (:class:`FitWeights`: the pair fit alone leaves triples
  and quadruples far off, see ``METHOD.md``, *Higher-order utility*).

With pairs alone this is the relaxation of the best table the promises allow for the mean
relative error of lengths 1 and 2 (the benchmark's floor is its optimum over every kind); the
default mode's weights trade a little of that for triples and quadruples. There is one column per
kind: tens of thousands at 10^5 rows, of which an optimum uses a few per cent. :func:`fit_kinds`
starts from the single attributes (always feasible) and the kinds the caller proposes, and solves
by the interior point method with crossover (seconds, where the simplex from a slack basis takes
minutes), which ends at a vertex: few kinds are fractional. With ``max_rounds > 1`` it goes on by
*column generation*: every kind of every distinct record is priced at once with the row duals (a
kind's reduced cost is minus the sum of the duals of its attributes, pairs (and triples),
summed over all column masks of all records by the subset recursion of the partition's pair
weights), the most
negative are added and the programme is solved again, until no kind prices out (a cap is an
upper bound, which does not change the price of a kind not yet in the programme). The tests check
that this reaches the optimum of the programme over every kind, with either mode's weights.

Nothing here decides what is safe to release: only kinds with ``support >= k`` are ever columns,
and the caller writes rows of those kinds only (see ``METHOD.md``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from trust.synthesize.combinations import Ints, SubCombinations
from trust.synthesize.errors import InvalidFitWeights, SynthesisError

Floats = npt.NDArray[np.float64]
_HIGHS: Any = highspy  # the binding is untyped

PRICE_TOLERANCE = 1e-9
COLUMNS_PER_ROUND = 4000
# one solve from the proposed kinds: a priced round more gains about 0.002 of mean relative error
# at 10^5 rows and k = 5 (less at larger k) and doubles the time (METHOD.md)
MAX_ROUNDS = 1
# kinds of this many attributes or more are the ones a cap (FitWeights.long_cap) bounds
CAP_LENGTH = 4


class FitFailed(SynthesisError):
    """The solver ended the pair-fitting programme without an optimum."""

    code = "pair_fit_failed"


@dataclass(frozen=True)
class FitWeights:
    """What the programme weighs beside the pairs.

    ``triple``: the weight of each triple's relative error, ``|syn - c| / c`` over the triples
    held by >= ``k`` rows (0: pairs only; each triple is then no row of the programme).
    ``long_cap``: a kind of :data:`CAP_LENGTH` or more attributes is written at most
    ``long_cap`` times its own sensitive count (``inf``: no cap; a bound on a column, free).
    """

    triple: float = 0.0
    long_cap: float = float("inf")

    def __post_init__(self) -> None:
        if not (self.triple >= 0 and self.long_cap > 0):
            raise InvalidFitWeights("a triple weight must be >= 0 and a cap above 0")


# the `pairs` mode: pairs alone, the programme's best at lengths <= 2 (METHOD.md)
PAIRS_ONLY = FitWeights()
# the default mode: at 10^5 rows and k = 10 (one run, METHOD.md) lengths <= 2 at 0.349 where
# pairs alone reach 0.332, triples at 0.60 (pairs alone 0.99, the rounding 0.60), quadruples at
# 0.81 (1.26, 0.65); triples at 0.1 cost 0.03 at lengths <= 2, a cap of 1 cost 0.02
BALANCED = FitWeights(triple=0.02, long_cap=4.0)


@dataclass(frozen=True)
class FittedKinds:
    """The programme's solution: kind ``t`` is record ``origin[t]``'s attributes on the columns of
    ``masks[t]``, written ``x[t]`` times (fractional: the caller rounds)."""

    origin: Ints
    masks: Ints
    x: Floats
    rounds: int
    objective: float


class _Rows:
    """The programme's rows: one per attribute held by ≥ k rows, then one per such combination of
    each fitted column set (every pair; every triple when ``triple_weight > 0``); per distinct
    record and column (column set), the index of its row, -1 when there is none."""

    def __init__(self, sub: SubCombinations, k: int, triple_weight: float) -> None:
        m = sub.patterns.shape[1]
        self.m = m
        sets: list[tuple[int, ...]] = list(itertools.combinations(range(m), 2))
        if triple_weight > 0:
            sets += list(itertools.combinations(range(m), 3))
        self.sets = sets
        self.set_masks = [sum(1 << j for j in c) for c in sets]
        singles = [1 << j for j in range(m)]
        s_key = sub.key[:, singles]
        f_key = sub.key[:, self.set_masks]
        s_held = sub.support[:, singles] >= k
        f_held = sub.support[:, self.set_masks] >= k
        s_keys, s_first = np.unique(s_key[s_held], return_index=True)
        f_keys, f_first = np.unique(f_key[f_held], return_index=True)
        self.n_singles = int(s_keys.size)
        self.n_fitted = int(f_keys.size)
        self.single_row = np.where(s_held, np.searchsorted(s_keys, s_key), -1)
        self.fitted_row = np.where(f_held, self.n_singles + np.searchsorted(f_keys, f_key), -1)
        self.single_count = sub.support[:, singles][s_held][s_first]
        self.fitted_count = sub.support[:, self.set_masks][f_held][f_first]
        _, f_col = np.nonzero(f_held)
        length = np.array([len(c) for c in sets])[f_col[f_first]]
        self.fitted_weight = np.where(length == 2, 1.0, triple_weight) / self.fitted_count
        # a record and column holding each single attribute (for single rows)
        rec, col = np.nonzero(s_held)
        self.single_record = rec[s_first]
        self.single_column = col[s_first]

    def entries(self, p: int, mask: int) -> list[int]:
        """The rows a row of record ``p``'s attributes on ``mask`` counts in."""
        out = [int(self.single_row[p, j]) for j in range(self.m) if mask >> j & 1]
        for g, set_mask in enumerate(self.set_masks):
            if mask & set_mask == set_mask:
                out.append(int(self.fitted_row[p, g]))
        return out


def _price(rows: _Rows, dual: Floats) -> Floats:
    """Per distinct record and column mask: the sum of the duals of the kind's rows."""
    m = rows.m
    d = rows.single_row.shape[0]
    ys = np.where(rows.single_row >= 0, dual[np.maximum(rows.single_row, 0)], 0.0)
    yf = np.where(rows.fitted_row >= 0, dual[np.maximum(rows.fitted_row, 0)], 0.0)
    # the fitted sets whose highest column is ``high``, with the rest of their columns
    ending: list[list[tuple[int, int]]] = [[] for _ in range(m)]
    for g, cols in enumerate(rows.sets):
        ending[cols[-1]].append((g, rows.set_masks[g] ^ (1 << cols[-1])))
    value = np.zeros((d, 1 << m))
    for mask in range(1, 1 << m):
        high = mask.bit_length() - 1
        rest = mask ^ (1 << high)
        v = value[:, rest] + ys[:, high]
        for g, others in ending[high]:
            if rest & others == others:
                v = v + yf[:, g]
        value[:, mask] = v
    return value


def _upper(sub: SubCombinations, origin: Ints, masks: Ints, cap: float, inf: float) -> Floats:
    """Each kind's bound: ``cap`` times its sensitive count when it has :data:`CAP_LENGTH` or
    more attributes, none otherwise (a bound never excludes 0, so the programme stays feasible)."""
    if cap == float("inf"):
        return np.full(origin.size, inf)
    length = np.zeros(origin.size, dtype=np.int64)
    for j in range(sub.patterns.shape[1]):
        length += (masks >> j) & 1
    bound = cap * sub.support[origin, masks].astype(np.float64)
    return np.where(length >= CAP_LENGTH, bound, inf)


def fit_kinds(
    sub: SubCombinations,
    k: int,
    start_origin: Ints,
    start_masks: Ints,
    *,
    max_rounds: int = MAX_ROUNDS,
    weights: FitWeights = PAIRS_ONLY,
) -> FittedKinds:
    """Solve the pair-fitting programme from the proposed kinds (``start_origin[t]``'s attributes
    on ``start_masks[t]``; those held by fewer than ``k`` rows are ignored), with ``max_rounds - 1``
    rounds of column generation; ``weights`` says what else it weighs (:class:`FitWeights`)."""
    rows = _Rows(sub, k, weights.triple)
    n_s, n_p = rows.n_singles, rows.n_fitted
    if n_s == 0:  # no attribute is held by k rows: nothing may be written
        empty = np.zeros(0, dtype=np.int64)
        return FittedKinds(empty, empty, np.zeros(0), 0, 0.0)
    target = np.concatenate([rows.single_count - rows.single_count % k, rows.fitted_count]).astype(
        np.float64
    )
    h = _HIGHS.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    inf = h.getInfinity()
    # the interior point method with crossover: a few seconds where the simplex from a slack
    # basis takes minutes; it ends at a vertex, so few kinds are fractional
    h.setOptionValue("solver", "ipm")
    none = np.zeros(0, dtype=np.int32)
    h.addRows(n_s + n_p, target, target, 0, np.zeros(n_s + n_p, np.int32), none, np.zeros(0))
    if n_p:  # pair slacks: syn_q - under_q + over_q = c_q, each costing 1/c_q
        weight = rows.fitted_weight
        idx = np.arange(n_s, n_s + n_p, dtype=np.int32)
        starts = np.arange(n_p, dtype=np.int32)
        for sign in (-1.0, 1.0):
            h.addCols(
                n_p, weight, np.zeros(n_p), np.full(n_p, inf), n_p, starts, idx, np.full(n_p, sign)
            )

    kinds_p: list[int] = []
    kinds_m: list[int] = []
    known: set[int] = set()

    def add(origin: list[int], masks: list[int]) -> int:
        added_p: list[int] = []
        added_m: list[int] = []
        for p, mask in zip(origin, masks, strict=True):
            key = int(sub.key[p, mask])
            if key in known or sub.support[p, mask] < k:
                continue
            known.add(key)
            added_p.append(p)
            added_m.append(mask)
        if not added_p:
            return 0
        index: list[int] = []
        start: list[int] = []
        for p, mask in zip(added_p, added_m, strict=True):
            start.append(len(index))
            index += rows.entries(p, mask)
        n = len(added_p)
        h.addCols(
            n,
            np.zeros(n),
            np.zeros(n),
            _upper(sub, np.array(added_p), np.array(added_m), weights.long_cap, inf),
            len(index),
            np.array(start, dtype=np.int32),
            np.array(index, dtype=np.int32),
            np.ones(len(index)),
        )
        kinds_p.extend(added_p)
        kinds_m.extend(added_m)
        return n

    add(rows.single_record.tolist(), (1 << rows.single_column).tolist())
    add(start_origin.tolist(), start_masks.tolist())
    held = sub.support >= k
    held[:, 0] = False
    size = 1 << rows.m
    rounds = 0
    while True:
        h.run()
        if h.getModelStatus() != _HIGHS.HighsModelStatus.kOptimal:
            raise FitFailed(f"pair fit ended with {h.modelStatusToString(h.getModelStatus())}")
        rounds += 1
        if rounds >= max_rounds:
            break
        dual = np.asarray(h.getSolution().row_dual, dtype=np.float64)
        value = _price(rows, dual)
        value[~held] = -np.inf
        flat = np.flatnonzero(value.reshape(-1) > PRICE_TOLERANCE)
        if flat.size == 0:
            break
        p_all, m_all = np.divmod(flat, size)
        keys = sub.key[p_all, m_all]
        _, first = np.unique(keys, return_index=True)
        best = first[np.argsort(-value.reshape(-1)[flat[first]], kind="stable")]
        best = best[:COLUMNS_PER_ROUND]
        if add(p_all[best].tolist(), m_all[best].tolist()) == 0:
            break
    solution = np.asarray(h.getSolution().col_value, dtype=np.float64)
    return FittedKinds(
        origin=np.array(kinds_p, dtype=np.int64),
        masks=np.array(kinds_m, dtype=np.int64),
        x=solution[2 * n_p :],
        rounds=rounds,
        objective=float(h.getInfo().objective_function_value),
    )
