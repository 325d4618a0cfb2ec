"""Capture histories: for each combination of lists, how many persons were on exactly those lists.

A *list* is whatever the analysis treats as one source: one agency, or every agency of a type
(``list_of`` maps a source to its list). A person's *capture history* is the set of lists they
are on; the table counts persons per history over all ``2**t - 1`` observable histories (the
all-zero history, persons on no list, is what the estimate is about). Cell ``code - 1`` holds the
history whose bit ``i`` is set when the person is on ``lists[i]``.

Histories come from persons already linked across sources (:func:`from_persons`, optionally per
stratum with :func:`stratified`) or from a CSV with one 0/1 column per list and a ``count``
column (:func:`read_csv`). :func:`informative` then removes lists that cannot inform an estimate:
empty lists, and lists nested in another (see ``METHOD.md``).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from trust.estimate.errors import EstimateError, ReasonCode

COUNT = "count"
MAX_LISTS = 12  # 4,095 cells; the model search is the real limit long before this


@dataclass(frozen=True, slots=True)
class CaptureHistories:
    """Counts of persons per capture history over ``lists`` (cell ``code - 1``, bit i = list i)."""

    lists: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        t = len(self.lists)
        if t < 1 or t > MAX_LISTS:
            raise EstimateError(ReasonCode.TOO_FEW_LISTS, f"expected 1 to {MAX_LISTS} lists")
        if len(set(self.lists)) != t:
            raise EstimateError(ReasonCode.DUPLICATE_COLUMN, "list names must be distinct")
        if len(self.counts) != 2**t - 1:
            raise ValueError(f"expected {2**t - 1} cells for {t} lists")
        if any(c < 0 for c in self.counts):
            raise EstimateError(ReasonCode.BAD_COUNT, "counts must be non-negative integers")

    @property
    def observed(self) -> int:
        """Persons on at least one list."""
        return sum(self.counts)

    def _mask(self, names: Iterable[str]) -> int:
        mask = 0
        for name in names:
            try:
                mask |= 1 << self.lists.index(name)
            except ValueError:
                raise EstimateError(ReasonCode.UNKNOWN_LIST, "no such list", name) from None
        return mask

    def exactly(self, *names: str) -> int:
        """Persons on exactly these lists and no other."""
        mask = self._mask(names)
        return self.counts[mask - 1] if mask else 0

    def on(self, *names: str) -> int:
        """Persons on all of these lists, whatever other lists they are on."""
        mask = self._mask(names)
        return sum(c for code, c in enumerate(self.counts, 1) if code & mask == mask)

    def rows(self) -> list[tuple[tuple[int, ...], int]]:
        """The non-empty histories as (0/1 flags in ``lists`` order, count)."""
        t = len(self.lists)
        return [
            (tuple((code >> i) & 1 for i in range(t)), c)
            for code, c in enumerate(self.counts, 1)
            if c
        ]

    def without(self, name: str) -> CaptureHistories:
        """The table with list ``name`` removed (its persons kept if they are on another list)."""
        i = self.lists.index(name)
        lists = self.lists[:i] + self.lists[i + 1 :]
        cells = [0] * (2 ** len(lists) - 1)
        low = (1 << i) - 1
        for code, c in enumerate(self.counts, 1):
            rest = (code & low) | ((code >> (i + 1)) << i)
            if rest:
                cells[rest - 1] += c
        return CaptureHistories(lists, tuple(cells))


def from_rows(lists: Sequence[str], rows: Iterable[tuple[Sequence[int], int]]) -> CaptureHistories:
    """Histories from (0/1 flags, count) rows; repeated histories add up, all-zero rows are
    refused (nobody can be counted as on no list)."""
    t = len(lists)
    cells = [0] * (2**t - 1)
    for flags, count in rows:
        code = sum(1 << i for i, f in enumerate(flags) if f)
        if code == 0:
            if count:
                raise EstimateError(ReasonCode.NOT_BINARY, "a history must be on at least one list")
            continue
        cells[code - 1] += count
    return CaptureHistories(tuple(lists), tuple(cells))


def from_persons(
    persons: Iterable[Iterable[str]],
    lists: Sequence[str] | None = None,
    list_of: Mapping[str, str] | None = None,
) -> CaptureHistories:
    """Histories from linked persons, each given as the sources that recorded them.

    ``list_of`` maps a source to its list (e.g. every NGO to ``"ngo"``: lists per agency type);
    without it each source is its own list. ``lists`` fixes the lists and their order (a list
    nobody is on is then kept, empty); without it they are the lists seen, sorted. Persons on no
    list are ignored: they are what is being estimated.
    """
    seen: Counter[frozenset[str]] = Counter()
    for sources in persons:
        mapped = frozenset(list_of.get(s, s) if list_of else s for s in sources)
        if mapped:
            seen[mapped] += 1
    names = tuple(lists) if lists is not None else tuple(sorted(set().union(*seen)))
    index = {name: i for i, name in enumerate(names)}
    cells = [0] * (2 ** len(names) - 1)
    for history, count in seen.items():
        code = 0
        for name in history:
            if name not in index:
                raise EstimateError(ReasonCode.UNKNOWN_LIST, "a person is on an undeclared list")
            code |= 1 << index[name]
        cells[code - 1] += count
    return CaptureHistories(names, tuple(cells))


def stratified(
    persons: Iterable[tuple[Hashable, Iterable[str]]],
    lists: Sequence[str],
    list_of: Mapping[str, str] | None = None,
) -> dict[Hashable, CaptureHistories]:
    """One table per stratum (e.g. ``("Feminine", "Age18To24")``) over the same ``lists``."""
    groups: dict[Hashable, list[Iterable[str]]] = {}
    for stratum, sources in persons:
        groups.setdefault(stratum, []).append(sources)
    return {s: from_persons(g, lists, list_of) for s, g in sorted(groups.items(), key=repr)}


def parse_csv(text: str, strata: Sequence[str] = ()) -> dict[tuple[str, ...], CaptureHistories]:
    """Histories per stratum from CSV text: one 0/1 column per list, a ``count`` column and the
    ``strata`` columns (any values). Without strata the only key is ``()``.

    Every problem names its row (1 = the header) or column and never echoes a cell's value.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or not [h for h in header if h.strip()]:
        raise EstimateError(ReasonCode.NO_ROWS, "the file has no header")
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        raise EstimateError(ReasonCode.DUPLICATE_COLUMN, "column names must be distinct")
    if COUNT not in names:
        raise EstimateError(ReasonCode.NO_COUNT_COLUMN, f"expected a column named {COUNT!r}")
    for s in strata:
        if s not in names:
            raise EstimateError(ReasonCode.UNKNOWN_LIST, "no such stratum column", s)
    lists = [n for n in names if n != COUNT and n not in strata]
    if len(lists) < 2:
        raise EstimateError(ReasonCode.TOO_FEW_LISTS, "expected at least two list columns")
    if len(lists) > MAX_LISTS:
        raise EstimateError(ReasonCode.TOO_FEW_LISTS, f"at most {MAX_LISTS} lists")
    at = {n: i for i, n in enumerate(names)}
    rows: dict[tuple[str, ...], list[tuple[tuple[int, ...], int]]] = {}
    count_rows = 0
    for line, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(names):
            raise EstimateError(
                ReasonCode.NOT_BINARY, f"expected {len(names)} fields", f"row {line}"
            )
        flags = []
        for name in lists:
            cell = record[at[name]].strip()
            if cell not in ("0", "1"):
                raise EstimateError(
                    ReasonCode.NOT_BINARY, f"column {name!r}: expected 0 or 1", f"row {line}"
                )
            flags.append(int(cell))
        raw = record[at[COUNT]].strip()
        if not raw.isdigit():
            raise EstimateError(
                ReasonCode.BAD_COUNT, "count: expected a whole number ≥ 0", f"row {line}"
            )
        if not any(flags):
            raise EstimateError(
                ReasonCode.NOT_BINARY, "a history must be on at least one list", f"row {line}"
            )
        key = tuple(record[at[s]].strip() for s in strata)
        rows.setdefault(key, []).append((tuple(flags), int(raw)))
        count_rows += 1
    if not count_rows:
        raise EstimateError(ReasonCode.NO_ROWS, "the file has a header but no rows")
    return {key: from_rows(lists, r) for key, r in sorted(rows.items())}


def read_csv(
    path: Path | str, strata: Sequence[str] = ()
) -> dict[tuple[str, ...], CaptureHistories]:
    """:func:`parse_csv` on a file (UTF-8, a byte-order mark allowed)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise EstimateError(ReasonCode.NO_ROWS, "not UTF-8 text", str(path)) from None
    return parse_csv(text, strata)


@dataclass(frozen=True, slots=True)
class Informative:
    """The lists left to model, and what happened to the others."""

    histories: CaptureHistories
    dropped: tuple[str, ...]  # lists nobody is on
    merged: tuple[tuple[str, str], ...]  # (nested list, the list that holds all of its persons)
    covering: str | None  # a list that holds every observed person, if any


def informative(h: CaptureHistories, merge_nested: bool = True) -> Informative:
    """Drop empty lists and, if ``merge_nested``, merge each list all of whose persons are also on
    one other list into that list (smallest first; identical lists merge into the earlier one).

    A nested list (a court that only sees persons the police saw) says nothing about persons
    outside its container, and a log-linear model cannot express "never outside": its interaction
    with the container has no finite estimate. Merging it (the union of the two is the container) keeps
    the rest of the analysis valid. A list that holds *every* observed person is reported in
    ``covering``: no model can estimate anyone missed by a list that missed nobody observed.
    """
    dropped: list[str] = []
    merged: list[tuple[str, str]] = []
    current = h
    if h.observed == 0:
        return Informative(h, (), (), None)
    for name in h.lists:
        if current.on(name) == 0:
            dropped.append(name)
            current = current.without(name)
    total = current.observed
    covering = next((n for n in current.lists if total and current.on(n) == total), None)
    if merge_nested and covering is None:
        changed = True
        while changed and len(current.lists) > 1:
            changed = False
            sizes = sorted(current.lists, key=lambda n: (current.on(n), current.lists.index(n)))
            for small in sizes:
                others = [b for b in current.lists if b != small]
                # identical lists: the later one merges into the earlier one
                holder = next(
                    (
                        b
                        for b in others
                        if current.on(small, b) == current.on(small)
                        and (
                            current.on(b) > current.on(small)
                            or current.lists.index(b) < current.lists.index(small)
                        )
                    ),
                    None,
                )
                if holder is not None:
                    merged.append((small, holder))
                    current = current.without(small)
                    changed = True
                    break
    return Informative(current, tuple(dropped), tuple(merged), covering)
