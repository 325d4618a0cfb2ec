"""The independent checker: does any combination in a synthetic table describe fewer than k people?

A separate code path on purpose: it reads the two tables as strings and shares no encoding or
counting code with the synthesisers, so a bug there cannot hide itself here. (It applies the same
cell rule, written out again: a cell empty after stripping whitespace is missing.)

Why checking whole rows is enough: a combination's count can only grow when attributes are
removed from it, so if every distinct synthetic row is held by at least ``k`` sensitive rows,
every combination of any length present in the synthetic data is too. The checker therefore
counts each distinct synthetic row in the sensitive data (among the sensitive rows holding its
rarest attribute, by brute force), and only for a row that fails does it walk down through its
sub-combinations to count every distinct leaking combination, by length.

:func:`check_aggregate` verifies a companion aggregate the same way, apart from
:mod:`trust.synthesize.aggregate` and :mod:`trust.synthesize.companion`: it counts every
combination of up to the reporting length in the sensitive rows itself (each distinct record's
sub-combinations, by brute force) and holds the aggregate to its promise — every listed
combination held by at least ``k`` people, its count theirs rounded down to a multiple of ``k``,
none listed twice or longer than the reporting length. A combination held by ``k`` or more may
be left out (the release's aggregate leaves out what secondary suppression hid): ``unlisted``
counts them, and ``complete=True`` (the command line's unprotected aggregate) requires none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import numpy.typing as npt

from trust.synthesize.errors import ColumnMismatch, InvalidResolution

Cell = tuple[int, int]  # (column, value index among the sensitive values of that column)


@dataclass(frozen=True)
class CheckResult:
    """What the checker found; ``ok`` when nothing leaks."""

    k: int
    rows_checked: int
    distinct_rows: int
    leaks_by_length: dict[int, int] = field(default_factory=dict)
    single_count_mismatches: int = 0

    @property
    def leaks(self) -> int:
        """Distinct combinations present in the synthetic data held by fewer than k sensitive rows."""
        return sum(self.leaks_by_length.values())

    @property
    def ok(self) -> bool:
        return self.leaks == 0


class _Sensitive:
    """The sensitive rows as distinct records with multiplicities, and per attribute the records
    that hold it."""

    def __init__(self, rows: Sequence[Sequence[str]], n_columns: int) -> None:
        self.values: list[dict[str, int]] = [{} for _ in range(n_columns)]
        encoded: dict[tuple[int, ...], int] = {}
        for row in rows:
            key = []
            for j, cell in enumerate(row):
                v = cell.strip()
                key.append(self.values[j].setdefault(v, len(self.values[j])) if v else -1)
            t = tuple(key)
            encoded[t] = encoded.get(t, 0) + 1
        self.records = np.array(list(encoded), dtype=np.int64).reshape(-1, n_columns)
        self.weight = np.array(list(encoded.values()), dtype=np.int64)
        self.holding: dict[Cell, npt.NDArray[np.int64]] = {}
        for j in range(n_columns):
            col = self.records[:, j]
            for index in range(len(self.values[j])):
                self.holding[(j, index)] = np.flatnonzero(col == index)

    def count(self, combination: Sequence[Cell]) -> int:
        """Sensitive rows holding every attribute of ``combination`` (brute force)."""
        if not combination:
            return int(self.weight.sum())
        lists = [self.holding.get(c) for c in combination]
        if any(x is None for x in lists):
            return 0
        arrays = [x for x in lists if x is not None]
        arrays.sort(key=len)
        candidates = arrays[0]
        held = np.ones(candidates.size, dtype=bool)
        for j, v in combination:
            held &= self.records[candidates, j] == v
        return int(self.weight[candidates[held]].sum())


def _encode(sensitive: _Sensitive, row: Sequence[str]) -> tuple[Cell, ...]:
    cells: list[Cell] = []
    for j, cell in enumerate(row):
        v = cell.strip()
        if v:
            # a value the sensitive data never holds gets an index no sensitive row has
            cells.append((j, sensitive.values[j].get(v, -2)))
    return tuple(cells)


def check(
    sensitive_columns: Sequence[str],
    sensitive_rows: Sequence[Sequence[str]],
    synthetic_columns: Sequence[str],
    synthetic_rows: Sequence[Sequence[str]],
    k: int,
) -> CheckResult:
    """Verify a synthetic table against the sensitive one at resolution ``k``.

    Counts every distinct combination, of any length, present in the synthetic rows that fewer
    than ``k`` sensitive rows hold (``leaks_by_length``), and the attributes whose synthetic count
    differs from their sensitive count rounded down to a multiple of ``k``.
    """
    if k < 1:
        raise InvalidResolution("k must be at least 1")
    if list(sensitive_columns) != list(synthetic_columns):
        raise ColumnMismatch(
            "the synthetic table must have the sensitive table's columns, in order"
        )
    m = len(sensitive_columns)
    sens = _Sensitive(sensitive_rows, m)
    distinct: dict[tuple[Cell, ...], int] = {}
    for row in synthetic_rows:
        if len(row) != m:
            raise ColumnMismatch("a synthetic row has the wrong number of cells")
        t = _encode(sens, row)
        distinct[t] = distinct.get(t, 0) + 1

    leaks: dict[int, int] = {}
    seen: set[tuple[Cell, ...]] = set()
    for combination in distinct:
        if not combination or sens.count(combination) >= k:
            continue
        stack = [combination]  # walk down: a held sub-combination's own subsets are held too
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            if sens.count(c) >= k:
                continue
            leaks[len(c)] = leaks.get(len(c), 0) + 1
            stack.extend(c[:i] + c[i + 1 :] for i in range(len(c)) if len(c) > 1)

    synthetic_single: dict[Cell, int] = {}
    for combination, n in distinct.items():
        for cell in combination:
            synthetic_single[cell] = synthetic_single.get(cell, 0) + n
    mismatches = 0
    for cell in set(synthetic_single) | set(sens.holding):
        target = sens.count((cell,))
        if synthetic_single.get(cell, 0) != target - target % k:
            mismatches += 1
    return CheckResult(
        k=k,
        rows_checked=len(synthetic_rows),
        distinct_rows=len(distinct),
        leaks_by_length=dict(sorted(leaks.items())),
        single_count_mismatches=mismatches,
    )


@dataclass(frozen=True)
class AggregateCheck:
    """What :func:`check_aggregate` found; ``ok`` when the aggregate keeps its promise.

    ``leaks_by_length``: listed combinations held by fewer than ``k`` sensitive rows (a count
    that reveals a rare combination); ``wrong_counts``: listed combinations whose count is not
    their sensitive count rounded down to a multiple of ``k`` (listed twice included);
    ``unlisted``: combinations held by at least ``k`` rows that are not listed (hidden by
    secondary suppression, in a release); ``too_long``: listed combinations longer than the
    reporting length; ``complete``: whether every combination held by ``k`` or more must be
    listed (then ``unlisted`` fails the check).
    """

    k: int
    length: int
    listed: int
    leaks_by_length: dict[int, int] = field(default_factory=dict)
    wrong_counts: int = 0
    unlisted: int = 0
    too_long: int = 0
    complete: bool = False

    @property
    def leaks(self) -> int:
        return sum(self.leaks_by_length.values())

    @property
    def ok(self) -> bool:
        missing = self.unlisted if self.complete else 0
        return not (self.leaks or self.wrong_counts or missing or self.too_long)


def check_aggregate(
    sensitive_columns: Sequence[str],
    sensitive_rows: Sequence[Sequence[str]],
    aggregate: Iterable[tuple[Sequence[str], Sequence[str], int]],
    k: int,
    length: int,
    *,
    complete: bool = False,
) -> AggregateCheck:
    """Verify a companion aggregate, given as ``(columns, values, count)`` per listed
    combination, against the sensitive rows at resolution ``k`` and reporting ``length``
    (``complete``: every combination held by ``k`` or more must be listed).

    Raises:
        ColumnMismatch: a listed combination names a column the sensitive table does not have,
            names one twice, or not in the table's order.
    """
    if k < 1:
        raise InvalidResolution("k must be at least 1")
    m = len(sensitive_columns)
    position = {c: j for j, c in enumerate(sensitive_columns)}
    sens = _Sensitive(sensitive_rows, m)
    # every combination of up to ``length`` attributes of the sensitive rows, counted here
    truth: dict[tuple[Cell, ...], int] = {}
    for record, weight in zip(sens.records.tolist(), sens.weight.tolist(), strict=True):
        cells = [(j, v) for j, v in enumerate(record) if v >= 0]
        for n in range(1, min(length, len(cells)) + 1):
            for combination in combinations(cells, n):
                truth[combination] = truth.get(combination, 0) + weight

    leaks: dict[int, int] = {}
    wrong = too_long = listed = 0
    seen: set[tuple[Cell, ...]] = set()
    for columns, values, count in aggregate:
        listed += 1
        at = [position.get(c, -1) for c in columns]
        if -1 in at or at != sorted(set(at)) or len(values) != len(at):
            raise ColumnMismatch("a listed combination's columns are not the table's, in order")
        combination = _encode(
            sens, [dict(zip(at, values, strict=True)).get(j, "") for j in range(m)]
        )
        if len(combination) != len(at):
            raise ColumnMismatch("a listed combination has an empty value")
        true = truth.get(combination, 0) if len(combination) <= length else sens.count(combination)
        if len(combination) > length:
            too_long += 1
        if true < k:
            leaks[len(combination)] = leaks.get(len(combination), 0) + 1
        if count != true - true % k or combination in seen:
            wrong += 1
        seen.add(combination)
    unlisted = sum(1 for c, n in truth.items() if n >= k and c not in seen)
    return AggregateCheck(
        k=k,
        length=length,
        listed=listed,
        leaks_by_length=dict(sorted(leaks.items())),
        wrong_counts=wrong,
        unlisted=unlisted,
        too_long=too_long,
        complete=complete,
    )
