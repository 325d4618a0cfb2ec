"""From scored pairs to persons: connected components over the links above the upper threshold.

Links are accepted from the most to the least probable (Kruskal's order). When a link joins two
groups, every pair across them is placed in one person *by that link*: its probability is the
lowest on the strongest path between them (the bottleneck of a maximum spanning tree), which is the
"lowest probability on the path that joined them". A pair that was itself scored keeps its own
probability. Pairs between the thresholds whose records ended up in different persons are left
for review, and so are links refused because the pairs they would join say "two persons" at least
as often as "one" (a record that bridges two namesakes does not merge them by itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from trust.linkage.errors import LinkageError, LinkageReason


@dataclass(frozen=True, slots=True, order=True)
class ScoredPair:
    """Two record ids with ``id_l < id_r`` and a match probability."""

    id_l: str
    id_r: str
    probability: float

    @classmethod
    def of(cls, a: str, b: str, probability: float) -> ScoredPair:
        return cls(a, b, probability) if a < b else cls(b, a, probability)


@dataclass(frozen=True, slots=True)
class Clustering:
    """Persons (each a sorted tuple of record ids; singletons included), the same-person pairs
    and the pairs left for review — both sorted by ``(id_l, id_r)``."""

    persons: tuple[tuple[str, ...], ...]
    pairs: tuple[ScoredPair, ...]
    review: tuple[ScoredPair, ...]


def cluster(
    ids: Sequence[str],
    scored: Iterable[ScoredPair],
    *,
    upper: float,
    lower: float,
    keep: Callable[[str, str], bool] | None = None,
    conflict: float = 0.0,
) -> Clustering:
    """Group ``ids`` into persons from ``scored`` pairs under the thresholds.

    With ``conflict > 0``, a link is not accepted but left for review when, among the scored
    pairs it would put into one person, those below ``conflict`` (clearly two persons) are at
    least as many as those at or above ``upper`` — typically a record without a date of birth
    between two namesakes whose dates differ.

    ``keep(id_l, id_r)`` filters which same-person and review pairs are reported (e.g. only pairs
    across inputs); it does not change the persons.
    """
    if not 0.0 < lower <= upper <= 1.0:
        raise LinkageError(LinkageReason.BAD_SETTINGS, "thresholds need 0 < lower <= upper <= 1")
    index = {record_id: i for i, record_id in enumerate(ids)}
    if len(index) != len(ids):
        raise LinkageError(LinkageReason.DUPLICATE_ID, "record ids must be distinct")
    own: dict[tuple[int, int], float] = {}
    for pair in scored:
        a, b = index[pair.id_l], index[pair.id_r]
        key = (a, b) if a < b else (b, a)
        if a != b and pair.probability > own.get(key, -1.0):
            own[key] = pair.probability

    parent = list(range(len(ids)))
    members: dict[int, list[int]] = {}
    same: dict[tuple[int, int], float] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = sorted(((p, k) for k, p in own.items() if p >= upper), key=lambda x: (-x[0], x[1]))
    refused: set[tuple[int, int]] = set()
    for p, (a, b) in links:
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        group_a = members.get(ra, [ra])
        group_b = members.get(rb, [rb])
        if conflict > 0.0 and _conflicting(group_a, group_b, own, conflict, upper):
            refused.add((a, b))
            continue
        members.pop(ra, None)
        members.pop(rb, None)
        for x in group_a:
            for y in group_b:
                key = (x, y) if x < y else (y, x)
                same[key] = own.get(key, p)
        if len(group_a) < len(group_b):
            ra, rb, group_a, group_b = rb, ra, group_b, group_a
        parent[rb] = ra
        group_a.extend(group_b)
        members[ra] = group_a

    def report(items: Iterable[tuple[tuple[int, int], float]]) -> tuple[ScoredPair, ...]:
        out = [ScoredPair.of(ids[a], ids[b], p) for (a, b), p in items]
        if keep is not None:
            out = [s for s in out if keep(s.id_l, s.id_r)]
        return tuple(sorted(out))

    review = (
        (k, p)
        for k, p in own.items()
        if (lower <= p < upper or k in refused) and find(k[0]) != find(k[1])
    )
    groups: dict[int, list[str]] = {}
    for i, record_id in enumerate(ids):
        groups.setdefault(find(i), []).append(record_id)
    persons = tuple(sorted(tuple(sorted(g)) for g in groups.values()))
    return Clustering(persons, report(same.items()), report(review))


def _conflicting(
    group_a: list[int],
    group_b: list[int],
    own: dict[tuple[int, int], float],
    below: float,
    accepted: float,
) -> bool:
    """Whether the scored pairs across the two groups say "two persons" at least as often as
    they say "one" (below ``below`` against at or above ``accepted``)."""
    against = support = 0
    for x in group_a:
        for y in group_b:
            p = own.get((x, y) if x < y else (y, x))
            if p is None:
                continue
            if p < below:
                against += 1
            elif p >= accepted:
                support += 1
    return against > 0 and against >= support
