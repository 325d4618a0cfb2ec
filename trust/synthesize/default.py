"""The default and ``pairs`` modes: split records into k-supported blocks, fit how many rows of
each held combination to write, then recombine.

Method note: ``METHOD.md`` beside this file. In short:

1. :func:`best_partitions` — each distinct sensitive record is split into blocks of its own
   attributes so that every block is a combination held by at least ``k`` sensitive rows, choosing,
   among all such partitions, the one that keeps together the most pair weight, a pair of count
   ``c`` weighing ``1/c`` (what losing one of its instances costs the mean relative error). An
   exact dynamic programme over the column subsets, vectorised over distinct records.
2. :func:`fitted_rows` — how many rows of each combination held by ≥ ``k`` rows to write is chosen
   by a linear programme (:mod:`~trust.synthesize.pairfit`) that meets the rounded-down single
   counts and brings the pair counts closest to the sensitive ones, started from the kinds step 1
   writes; its solution is rounded down and each attribute's missing instances are written as
   one-attribute rows. The default mode weighs the triples too, at a fiftieth of the pairs'
   weight, and writes no kind of four or more attributes more than four times as often as the
   sensitive data holds it (:data:`~trust.synthesize.pairfit.BALANCED`); the ``pairs`` mode
   weighs pairs only (:data:`~trust.synthesize.pairfit.PAIRS_ONLY`): better at lengths <= 2, far
   worse at lengths 3 and 4 (``METHOD.md``, *Higher-order utility*). If the solver ends without
   an optimum (and in the ``rounding`` fit), :func:`round_down_singles` instead: each attribute
   loses its count's excess over the multiple of ``k`` below it, where it pairs with the least
   weight.
3. :func:`merge_blocks` — rows are greedily merged in pairs when their columns are disjoint, the
   merged combination is held by at least ``k`` sensitive rows, and the merge brings the pair
   counts closer to the sensitive ones (partners drawn from sensitive records that hold the row;
   the longest rows look first; rows of the same two kinds merge in batches). After a fit only
   the one-attribute rows look for partners (the fit left little else to gain).
4. Rows are shuffled and sorted by decreasing length.

Every output row is, at every step, a combination held by at least ``k`` sensitive rows; so is every
sub-combination of it. Single-attribute counts are exactly the sensitive counts rounded down.

Tables wider than :data:`~trust.synthesize.combinations.MAX_LATTICE_COLUMNS` columns use
:func:`greedy_blocks` instead of step 1 (same objective, one block at a time), round it down and
skip steps 2 and 3.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

from trust.synthesize.combinations import (
    MAX_LATTICE_COLUMNS,
    Ints,
    RowSets,
    SubCombinations,
    distinct_rows,
    sub_combinations,
)
from trust.synthesize.data import Codes, Table, floor_k
from trust.synthesize.errors import UnknownMode
from trust.synthesize.pairfit import BALANCED, PAIRS_ONLY, FitFailed, FitWeights, fit_kinds

Progress = Callable[[float], None]
Floats = npt.NDArray[np.float64]
# step 2: the default mode's fit, the `pairs` mode's, or no fit (the partition rounded down)
Fit = Literal["balanced", "pairs", "rounding"]
FIT_WEIGHTS: dict[str, FitWeights] = {"balanced": BALANCED, "pairs": PAIRS_ONLY}

MERGE_PARTNERS = 4  # sensitive records consulted per merge: the row's own origin and 3 others
START_MULTIPLICITY = 2  # partition kinds written this often start the pair-fitting programme
ROUNDING_SLACK = 1e-6  # a solver value this close below an integer counts as that integer


def pair_values(sub: SubCombinations, k: int, m: int) -> Floats:
    """Per distinct record and column mask: the pair weight a block on those columns keeps
    (Σ 1/count over its pairs), -inf when the block is held by fewer than ``k`` rows."""
    d, size = sub.support.shape
    weight: dict[tuple[int, int], Floats] = {}
    for i in range(m):
        for j in range(i + 1, m):
            s = sub.support[:, (1 << i) | (1 << j)]
            weight[(i, j)] = np.where(s >= k, 1.0 / np.maximum(s, 1), 0.0)
    value = np.zeros((d, size))
    for mask in range(1, size):
        high = mask.bit_length() - 1
        rest = mask ^ (1 << high)
        if rest == 0:
            continue  # a single attribute: worth nothing, always allowed (dropped if rare)
        v = value[:, rest].copy()
        for j in range(high):
            if rest >> j & 1:
                v += weight[(j, high)]
        value[:, mask] = v
    blocked = sub.support < k
    blocked[:, [1 << j for j in range(m)]] = False
    blocked[:, 0] = False
    value[blocked] = -np.inf
    return value


def best_partitions(value: Floats, m: int) -> npt.NDArray[np.int32]:
    """Exact best partition of every column subset ``U`` of every record: ``choice[p, U]`` is the
    block holding ``U``'s lowest column; the rest is ``choice[p, U ^ block]`` and so on."""
    d, size = value.shape
    best = np.zeros((d, size))
    choice = np.zeros((d, size), dtype=np.int32)
    for u in range(1, size):
        low = u & -u
        rest = u ^ low
        top = np.full(d, -np.inf)
        pick = np.zeros(d, dtype=np.int32)
        sub = rest
        while True:
            block = sub | low
            candidate = value[:, block] + best[:, u ^ block]
            better = candidate > top
            top = np.where(better, candidate, top)
            pick = np.where(better, block, pick)
            if sub == 0:
                break
            sub = (sub - 1) & rest
        best[:, u] = top
        choice[:, u] = pick
    return choice


def partition_blocks(
    sub: SubCombinations, choice: npt.NDArray[np.int32], k: int
) -> tuple[Ints, Ints]:
    """Every sensitive row's blocks, as (distinct record, column mask) pairs, rare singles dropped."""
    full = (1 << sub.patterns.shape[1]) - 1
    per_record: list[list[int]] = []
    ch = choice.tolist()
    present = sub.present.tolist()
    for p in range(sub.patterns.shape[0]):
        u = full
        blocks: list[int] = []
        while u:
            block = ch[p][u]
            u ^= block
            block &= present[p]
            if block == 0 or (block & (block - 1) == 0 and sub.support[p, block] < k):
                continue
            blocks.append(block)
        per_record.append(blocks)
    origin: list[int] = []
    masks: list[int] = []
    for p in sub.inverse.tolist():
        for block in per_record[p]:
            origin.append(p)
            masks.append(block)
    return np.array(origin, dtype=np.int64), np.array(masks, dtype=np.int64)


def _codes_of(sub: SubCombinations, origin: Ints, masks: Ints) -> Codes:
    m = sub.patterns.shape[1]
    on = ((masks[:, None] >> np.arange(m)) & 1).astype(bool)
    return np.where(on, sub.patterns[origin], 0).astype(np.int32)


class PairCounts:
    """Sensitive counts of attribute pairs, one matrix per column pair, built when first asked."""

    def __init__(self, table: Table) -> None:
        self._codes = table.codes
        self._sizes = [len(v) + 1 for v in table.vocab]
        self._m: dict[tuple[int, int], Ints] = {}

    def matrix(self, i: int, j: int) -> Ints:
        found = self._m.get((i, j))
        if found is None:
            vi, vj = self._sizes[i], self._sizes[j]
            flat = self._codes[:, i].astype(np.int64) * vj + self._codes[:, j]
            found = np.bincount(flat, minlength=vi * vj).reshape(vi, vj).astype(np.int64)
            self._m[(i, j)] = found
        return found


def round_down_singles(
    table: Table, k: int, rows: Codes, pairs: PairCounts, rng: np.random.Generator
) -> Codes:
    """Remove each attribute's excess over its sensitive count rounded down to a multiple of
    ``k``, from the rows where it keeps the least pair weight (ties at random). In place."""
    sensitive = table.attribute_counts()
    m = table.n_columns
    for j in range(m):
        have = np.bincount(rows[:, j], minlength=len(sensitive[j]))
        for c in np.flatnonzero(have[1:]) + 1:
            excess = int(have[c]) - floor_k(int(sensitive[j][c]), k)
            if excess <= 0:
                continue
            idx = np.flatnonzero(rows[:, j] == c)
            loss = rng.random(idx.size) * 1e-12
            for j2 in range(m):
                if j2 == j:
                    continue
                other = rows[idx, j2]
                count = pairs.matrix(j, j2)[c, other]
                loss += np.where(other > 0, 1.0 / np.maximum(count, 1), 0.0)
            drop = idx[np.argsort(loss, kind="stable")[:excess]]
            rows[drop, j] = 0
    return rows


class _Supporters:
    """The distinct records holding a combination: records sorted by the combination's key over
    the combination's columns, found by bisection."""

    def __init__(self, sub: SubCombinations) -> None:
        self._key = sub.key
        self._index: dict[int, tuple[list[int], list[int]]] = {}

    def range_of(self, mask: int, key: int) -> tuple[list[int], int, int]:
        found = self._index.get(mask)
        if found is None:
            column = self._key[:, mask]
            by_key = np.argsort(column, kind="stable")
            found = (by_key.tolist(), column[by_key].tolist())
            self._index[mask] = found
        records, keys = found
        return records, bisect_left(keys, key), bisect_right(keys, key)


def merge_blocks(
    sub: SubCombinations,
    k: int,
    origin: Ints,
    masks: Ints,
    rng: random.Random,
    progress: Progress | None = None,
    *,
    seekers: int | None = None,
) -> tuple[Ints, Ints]:
    """Greedy gain-driven merges of rows (see the module docstring); returns the merged rows.
    With ``seekers``, only rows of at most that many attributes (and the rows their merges make)
    look for partners; any row may be one."""
    m = sub.patterns.shape[1]
    size = 1 << m
    bits = [[j for j in range(m) if mask >> j & 1] for mask in range(size)]
    pair_mask = [[(1 << i) | (1 << j) for j in range(m)] for i in range(m)]
    cache: dict[int, tuple[list[int], list[int], int]] = {}

    def record(p: int) -> tuple[list[int], list[int], int]:
        found = cache.get(p)
        if found is None:
            found = (sub.key[p].tolist(), sub.support[p].tolist(), int(sub.present[p]))
            cache[p] = found
        return found

    pool: dict[int, int] = {}
    example: dict[int, tuple[int, int]] = {}
    synthetic: dict[int, int] = {}  # synthetic count of each pair, by pair key
    for p, mask in zip(origin.tolist(), masks.tolist(), strict=True):
        if mask == 0:
            continue
        keys = record(p)[0]
        pool[keys[mask]] = pool.get(keys[mask], 0) + 1
        example[keys[mask]] = (p, mask)
        b = bits[mask]
        for x in range(len(b)):
            for y in range(x + 1, len(b)):
                pk = keys[pair_mask[b[x]][b[y]]]
                synthetic[pk] = synthetic.get(pk, 0) + 1

    supporters = _Supporters(sub)
    order = list(pool)
    if seekers is not None:
        order = [key for key in order if len(bits[example[key][1]]) <= seekers]
    rng.shuffle(order)
    order.sort(key=lambda key: len(bits[example[key][1]]))  # popped from the end: long first
    total = len(order)
    while order:
        if progress is not None and len(order) % 256 == 0:
            progress(min(1.0, max(0.0, 1.0 - len(order) / total)))
        key = order.pop()
        if pool.get(key, 0) <= 0:
            continue  # every row of this kind was merged into another
        p, mask = example[key]
        candidates = [p]
        srt, lo, hi = supporters.range_of(mask, key)
        if hi - lo > 1:
            candidates += [
                srt[lo + int(rng.random() * (hi - lo))] for _ in range(MERGE_PARTNERS - 1)
            ]
        best, best_y, best_q = 0.0, 0, -1
        for q in candidates:
            qkeys, qsupport, qpresent = record(q)
            free = qpresent & ~mask
            y = free
            while y:
                if qsupport[mask | y] >= k and pool.get(qkeys[y], 0) > 0:
                    gain = 0.0
                    for i in bits[mask]:
                        row = pair_mask[i]
                        for j in bits[y]:
                            c = qsupport[row[j]]
                            if synthetic.get(qkeys[row[j]], 0) < c:
                                gain += 1.0 / c
                            else:
                                gain -= 1.0 / c
                    if gain > best:
                        best, best_y, best_q = gain, y, q
                y = (y - 1) & free
        if best_y == 0:
            continue
        qkeys, qsupport, _ = record(best_q)
        # merge as many rows at once as keep every gaining pair at or below its count
        times = min(pool[key], pool[qkeys[best_y]])
        cross = [pair_mask[i][j] for i in bits[mask] for j in bits[best_y]]
        for pm in cross:
            have, c = synthetic.get(qkeys[pm], 0), qsupport[pm]
            if have < c:
                times = min(times, c - have)
        pool[key] -= times
        pool[qkeys[best_y]] -= times
        for pm in cross:
            synthetic[qkeys[pm]] = synthetic.get(qkeys[pm], 0) + times
        merged = qkeys[mask | best_y]
        pool[merged] = pool.get(merged, 0) + times
        example[merged] = (best_q, mask | best_y)
        order.append(key)  # the rest of this kind looks for partners again later
        order.append(merged)  # the merged rows look for further partners first
    out_p: list[int] = []
    out_m: list[int] = []
    for key, count in pool.items():
        if count > 0:
            p, mask = example[key]
            out_p += [p] * count
            out_m += [mask] * count
    return np.array(out_p, dtype=np.int64), np.array(out_m, dtype=np.int64)


def greedy_blocks(table: Table, k: int) -> Codes:
    """Step 1 for wide tables: per distinct record, blocks grown one attribute at a time, each
    time the attribute adding the most pair weight among those keeping the block held by ≥ k."""
    rowsets = RowSets(table)
    patterns, inverse, _ = distinct_rows(table.codes)
    pair_count: dict[tuple[int, int], int] = {}

    def weight(a: int, b: int) -> float:
        key = (a, b) if a < b else (b, a)
        c = pair_count.get(key)
        if c is None:
            c = (rowsets.rows(a) & rowsets.rows(b)).bit_count()
            pair_count[key] = c
        return 1.0 / c if c >= k else 0.0

    blocks_of: list[list[list[int]]] = []
    for row in patterns.tolist():
        remaining = [rowsets.attribute_id(j, c) for j, c in enumerate(row) if c]
        remaining = [a for a in remaining if rowsets.rows(a).bit_count() >= k]
        blocks: list[list[int]] = []
        while remaining:
            block = [remaining.pop(0)]
            rows = rowsets.rows(block[0])
            while True:
                best, pick = -1.0, -1
                for a in remaining:
                    combo = tuple(sorted(block))
                    if rowsets.count_with(combo, rows, a) >= k:
                        w = sum(weight(a, b) for b in block)
                        if w > best:
                            best, pick = w, a
                if pick < 0:
                    break
                remaining.remove(pick)
                block.append(pick)
                rows &= rowsets.rows(pick)
            blocks.append(block)
        blocks_of.append(blocks)
    out: list[list[int]] = []
    for p in inverse.tolist():
        for block in blocks_of[p]:
            codes = [0] * table.n_columns
            for a in block:
                codes[rowsets.column[a]] = rowsets.code_of(a)
            out.append(codes)
    return np.array(out, dtype=np.int32).reshape(-1, table.n_columns)


def order_rows(rows: Codes, rng: np.random.Generator) -> Codes:
    """Shuffle, then sort by decreasing number of attributes (stable, so ties stay shuffled)."""
    rows = rows[(rows > 0).any(axis=1)]
    rows = rows[rng.permutation(rows.shape[0])]
    length = (rows > 0).sum(axis=1)
    return rows[np.argsort(-length, kind="stable")]


def _masks_of(rows: Codes) -> Ints:
    m = rows.shape[1]
    masks: Ints = ((rows > 0).astype(np.int64) << np.arange(m, dtype=np.int64)).sum(axis=1)
    return masks


def fitted_rows(
    table: Table,
    sub: SubCombinations,
    k: int,
    origin: Ints,
    masks: Ints,
    pairs: PairCounts,
    rng: np.random.Generator,
    weights: FitWeights = BALANCED,
) -> tuple[Ints, Ints]:
    """Step 2: rows chosen by the fitting programme (:mod:`~trust.synthesize.pairfit`, with
    ``weights``), started from the kinds the partition writes at least
    :data:`START_MULTIPLICITY` times; each kind written ``floor(x)`` times, then each attribute's
    missing instances as rows of that attribute alone, so single counts are exactly the
    rounded-down sensitive ones."""
    keys = sub.key[origin, masks]
    _, first, count = np.unique(keys, return_index=True, return_counts=True)
    start = first[count >= START_MULTIPLICITY]
    fit = fit_kinds(sub, k, origin[start], masks[start], weights=weights)
    times = np.floor(fit.x + ROUNDING_SLACK).astype(np.int64)
    out_p = np.repeat(fit.origin, times)
    # the solver meets the single counts only to a tolerance: trim any excess (never expected)
    rows = round_down_singles(
        table, k, _codes_of(sub, out_p, np.repeat(fit.masks, times)), pairs, rng
    )
    out_m = _masks_of(rows)
    sensitive = table.attribute_counts()
    add_p: list[Ints] = []
    add_m: list[Ints] = []
    for j in range(table.n_columns):
        have = np.bincount(rows[:, j], minlength=len(sensitive[j]))
        codes, holder = np.unique(sub.patterns[:, j], return_index=True)
        for c, p in zip(codes.tolist(), holder.tolist(), strict=True):
            if c == 0:
                continue
            missing = floor_k(int(sensitive[j][c]), k) - int(have[c])
            add_p.append(np.full(missing, p, dtype=np.int64))
            add_m.append(np.full(missing, 1 << j, dtype=np.int64))
    return np.concatenate([out_p, *add_p]), np.concatenate([out_m, *add_m])


def synthesize_default(
    table: Table,
    k: int,
    seed: int,
    progress: Progress | None = None,
    *,
    fit: Fit = "balanced",
) -> Table:
    """The default mode (``fit="pairs"``: the ``pairs`` mode; ``"rounding"``: no fit, as when the
    solver fails); the same table, ``k``, seed and fit give the same output."""
    if fit not in ("balanced", "pairs", "rounding"):
        raise UnknownMode("unknown fit, expected balanced, pairs or rounding")
    rng = np.random.default_rng(seed)
    report = progress if progress is not None else (lambda _f: None)
    m = table.n_columns
    pairs = PairCounts(table)
    if m > MAX_LATTICE_COLUMNS:
        rows = greedy_blocks(table, k)
        report(0.8)
        rows = round_down_singles(table, k, rows, pairs, rng)
        report(1.0)
        return table.with_codes(order_rows(rows, rng))
    sub = sub_combinations(table)
    report(0.1)
    choice = best_partitions(pair_values(sub, k, m), m)
    report(0.2)
    origin, masks = partition_blocks(sub, choice, k)
    fitted = False
    weights = FIT_WEIGHTS.get(fit)
    if weights is not None:
        try:
            origin, masks = fitted_rows(table, sub, k, origin, masks, pairs, rng, weights)
            fitted = True
        except FitFailed:  # the partition, rounded down, is a valid (less fitted) start as well
            pass
    if not fitted:
        rows = round_down_singles(table, k, _codes_of(sub, origin, masks), pairs, rng)
        masks = _masks_of(rows)
    report(0.7)
    origin, masks = merge_blocks(
        sub,
        k,
        origin,
        masks,
        random.Random(seed),
        lambda f: report(0.7 + 0.3 * f),
        seekers=1 if fitted else None,
    )
    report(1.0)
    return table.with_codes(order_rows(_codes_of(sub, origin, masks), rng))
