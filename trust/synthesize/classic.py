"""The classic row-seeded synthesis (the CTDC's algorithm), as a compatibility mode.

Four steps, each a function here so it can be tested on a hand-worked example:

1. :func:`seeded_records` — for each sensitive record, start from an empty synthetic record and
   repeatedly add one of the record's remaining attributes, chosen with probability proportional
   to the count of the combination it would make with the attributes already chosen; only
   attributes whose combination would still be held by at least ``k`` sensitive rows are
   candidates, and the record stops when there is none. The synthetic record is therefore a
   subset of a real record whose combination at least ``k`` rows hold (its "k-anonymous core").
2. :func:`unseeded_records` — the attribute instances step 1 left out (less those that rounding
   down to a multiple of ``k`` will remove anyway) are recombined into new records the same way,
   sampling from the pool of left-out attributes instead of one record, until the pool is empty,
   even if that means records with a single attribute. Attributes held by fewer than ``k`` rows
   are never released.
3. :func:`suppress_to_multiples` — in a random order of the records, instances of each attribute
   are removed until its count is its sensitive count rounded down to a multiple of ``k``.
4. :func:`sort_by_length` — records sorted by decreasing number of attributes, so the output's
   order says nothing about the sensitive order or which records were seeded.

Every record of steps 1 and 2 is a combination that at least ``k`` sensitive rows hold, and every
sub-combination of such a record is held by at least as many, so nothing shorter than ``k`` is
ever released, at any length; step 3 only removes attributes, which keeps this true.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

from trust.synthesize.combinations import RowSets
from trust.synthesize.data import Codes, Table, floor_k

Record = tuple[int, ...]  # sorted global attribute ids (see RowSets)
Progress = Callable[[float], None]


def _sample(rng: random.Random, candidates: list[int], weights: list[int]) -> int:
    return rng.choices(candidates, weights=weights)[0]


def _grow(
    rowsets: RowSets,
    k: int,
    rng: random.Random,
    pool: Sequence[int],
    allowed: Callable[[int], bool],
) -> Record:
    """One synthetic record grown from ``pool``: each step adds an allowed attribute of an unused
    column, with probability proportional to its joint count with the record so far (≥ k)."""
    record: Record = ()
    rows = rowsets.all_rows
    used: set[int] = set()
    while True:
        candidates: list[int] = []
        weights: list[int] = []
        for a in pool:
            if rowsets.column[a] in used or not allowed(a):
                continue
            count = rowsets.count_with(record, rows, a)
            if count >= k:
                candidates.append(a)
                weights.append(count)
        if not candidates:
            return record
        chosen = _sample(rng, candidates, weights)
        record = tuple(sorted((*record, chosen)))
        rows &= rowsets.rows(chosen)
        used.add(rowsets.column[chosen])


def _attributes(rowsets: RowSets, row: Sequence[int]) -> list[int]:
    return [rowsets.attribute_id(j, c) for j, c in enumerate(row) if c]


def seeded_records(
    table: Table, k: int, rng: random.Random, rowsets: RowSets, progress: Progress | None = None
) -> list[Record]:
    """Step 1: one synthetic record per sensitive record, from its k-anonymous core."""
    out: list[Record] = []
    rows = table.codes.tolist()
    step = max(1, len(rows) // 100)
    for i, row in enumerate(rows):
        out.append(_grow(rowsets, k, rng, _attributes(rowsets, row), lambda _a: True))
        if progress is not None and i % step == 0:
            progress(i / max(1, len(rows)))
    return out


def left_out(table: Table, k: int, rowsets: RowSets, seeded: Sequence[Record]) -> dict[int, int]:
    """How many instances of each attribute step 2 must add: those step 1 left out, less the
    excess over the multiple of ``k`` below the attribute's count (step 3 would remove it)."""
    missing: dict[int, int] = {}
    for row, record in zip(table.codes.tolist(), seeded, strict=True):
        kept = set(record)
        for a in _attributes(rowsets, row):
            if a not in kept:
                missing[a] = missing.get(a, 0) + 1
    counts = table.attribute_counts()
    target: dict[int, int] = {}
    for a, unused in missing.items():
        n = int(counts[rowsets.column[a]][rowsets.code_of(a)])
        if n < k:
            continue
        extra = floor_k(n, k) - n + unused
        if extra > 0:
            target[a] = extra
    return target


def unseeded_records(
    table: Table,
    k: int,
    rng: random.Random,
    rowsets: RowSets,
    seeded: Sequence[Record],
    progress: Progress | None = None,
) -> list[Record]:
    """Step 2: records recombined from the attributes step 1 left out, until none is left."""
    available = left_out(table, k, rowsets, seeded)
    pool = sorted(available)
    total = sum(available.values())
    out: list[Record] = []
    while available:
        record = _grow(rowsets, k, rng, pool, lambda a: available.get(a, 0) > 0)
        for a in record:
            available[a] -= 1
            if available[a] == 0:
                del available[a]
        pool = [a for a in pool if a in available]
        out.append(record)
        if progress is not None and total:
            progress(1 - sum(available.values()) / total)
    return out


def suppress_to_multiples(
    table: Table, k: int, rng: random.Random, rowsets: RowSets, records: list[Record]
) -> list[Record]:
    """Step 3: remove random instances of each attribute down to its sensitive count rounded down
    to a multiple of ``k``; records left empty are dropped."""
    counts = table.attribute_counts()
    current: dict[int, int] = {}
    for record in records:
        for a in record:
            current[a] = current.get(a, 0) + 1
    excess = {}
    for a, have in current.items():
        target = floor_k(int(counts[rowsets.column[a]][rowsets.code_of(a)]), k)
        if have > target:
            excess[a] = have - target
    order = list(records)
    rng.shuffle(order)
    out: list[Record] = []
    for record in order:
        kept = []
        for a in record:
            if excess.get(a, 0) > 0:
                excess[a] -= 1
            else:
                kept.append(a)
        if kept:
            out.append(tuple(kept))
    return out


def sort_by_length(table: Table, rowsets: RowSets, records: Sequence[Record]) -> Codes:
    """Step 4: the records as code rows, longest first (ties in value order)."""
    codes = np.zeros((len(records), table.n_columns), dtype=np.int32)
    for i, record in enumerate(records):
        for a in record:
            codes[i, rowsets.column[a]] = rowsets.code_of(a)
    if codes.shape[0] == 0:
        return codes
    length = (codes > 0).sum(axis=1)
    keys = [codes[:, j] for j in reversed(range(table.n_columns))]
    order = np.lexsort((*keys, -length))
    return codes[order]


def synthesize_classic(table: Table, k: int, seed: int, progress: Progress | None = None) -> Table:
    """All four steps; the same table, ``k`` and ``seed`` give the same output."""
    rng = random.Random(seed)
    rowsets = RowSets(table)

    def part(lo: float, hi: float) -> Progress | None:
        return None if progress is None else (lambda f: progress(lo + (hi - lo) * f))

    seeded = seeded_records(table, k, rng, rowsets, part(0.0, 0.7))
    unseeded = unseeded_records(table, k, rng, rowsets, seeded, part(0.7, 0.95))
    kept = suppress_to_multiples(table, k, rng, rowsets, [*seeded, *unseeded])
    codes = sort_by_length(table, rowsets, kept)
    if progress is not None:
        progress(1.0)
    return table.with_codes(codes)
