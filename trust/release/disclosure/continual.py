"""Continual release of a cumulative series under differential privacy: OpenDP's b-ary tree
(method note: ``noise.md``, "Cumulative series").

A cumulative monthly series re-published every month with fresh noise would let a consumer
average the months' noise away, and would spend ε every month. The tree mechanism (the binary
mechanism of Chan, Shi and Song; Dwork, Naor, Pitassi and Rothblum) instead lays the months of a
fixed horizon out as the leaves of a b-ary tree; every node counts the persons of its interval
of months and gets noise **once**, when its last month is complete, and is never drawn again. The
cumulative count to month t is the sum of the few complete nodes that cover months ``[0, t)``
(at most ``(b - 1)`` per level), so its noise grows with the logarithm of t, not with t.

Each person is counted in one month (``changes_per_person`` = 1; 2 if a retraction is counted as
a minus one in a later month), so in one node per level: OpenDP's ``make_b_ary_tree`` gives that
sensitivity, ``make_laplace`` the noise, and the ε of the composed measurement covers the whole
horizon — charged once, when the series is first released. A draw made for a node that is not yet
complete, or is already drawn, is discarded unseen (choosing which draw to keep depends only on
the month, never on the data).

A stream uses it through :class:`Series` (the stream ``victims_by_month_cumulative``): the series'
state — the months closed so far, the persons counted at the close of each, and every node drawn —
is kept in the note ``continual`` of each release's event metadata (never in the signed release),
so that a restarted trust takes up the series where its last release left it and never draws a
node again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trust.release.disclosure.dp import InvalidPrivacyParameters, PrivacyCost, load_opendp
from trust.release.errors import ReleaseError


@dataclass(frozen=True)
class TreeShape:
    """A complete b-ary tree over ``leaves`` months (a power of ``branching``), its nodes in
    OpenDP's order: the root, then each level left to right, the leaves last."""

    leaves: int
    branching: int = 2

    def __post_init__(self) -> None:
        if self.branching < 2 or self.leaves < 1:
            raise ValueError("a tree needs branching >= 2 and at least one leaf")
        n = 1
        while n < self.leaves:
            n *= self.branching
        if n != self.leaves:
            raise ValueError("the leaves of a complete tree are a power of its branching")

    @classmethod
    def for_horizon(cls, months: int, branching: int = 2) -> TreeShape:
        """The smallest complete tree with at least ``months`` leaves."""
        n = 1
        while n < months:
            n *= branching
        return cls(n, branching)

    @property
    def levels(self) -> int:
        """Levels, root and leaves included: the nodes one month is in."""
        n, depth = 1, 1
        while n < self.leaves:
            n, depth = n * self.branching, depth + 1
        return depth

    @property
    def size(self) -> int:
        return sum(self.branching**level for level in range(self.levels))

    def span(self, node: int) -> tuple[int, int]:
        """The months ``[start, end)`` node ``node`` counts."""
        level, first = 0, 0
        while node >= first + self.branching**level:
            first += self.branching**level
            level += 1
        width = self.leaves // self.branching**level
        j = node - first
        return j * width, (j + 1) * width

    def cover(self, months: int) -> list[int]:
        """The fewest nodes whose spans make up months ``[0, months)``, all complete then."""
        out: list[int] = []
        start = 0
        while start < months:
            # the largest aligned span starting at ``start`` that fits
            level, first = 0, 0
            for level in range(self.levels):
                width = self.leaves // self.branching**level
                if start % width == 0 and start + width <= months:
                    break
                first += self.branching**level
            else:  # pragma: no cover - a leaf always fits
                raise AssertionError("no node covers the month")
            out.append(first + start // width)
            start += width
        return out


@dataclass
class ContinualCounter:
    """A cumulative series over ``shape``'s months with noise drawn once per tree node, at
    ``cost`` for the whole horizon. ``drawn``: the noisy value of every node drawn so far (what
    the trust must keep; pass it back after a restart)."""

    shape: TreeShape
    cost: PrivacyCost
    changes_per_person: int = 1
    drawn: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cost.epsilon <= 0 or self.cost.delta != 0 or self.changes_per_person < 1:
            raise InvalidPrivacyParameters("a continual count needs epsilon > 0 and no delta")

    def _measurement(self) -> tuple[Any, float]:
        """OpenDP's tree then Laplace noise, at the smallest scale meeting the cost."""
        dp = load_opendp()
        domain = dp.vector_domain(dp.atom_domain(T="i64"))
        tree = dp.t.make_b_ary_tree(
            domain, dp.l1_distance(T="i64"), self.shape.leaves, self.shape.branching
        )
        d_in = self.changes_per_person

        def make(s: float) -> Any:
            return tree >> dp.m.then_laplace(scale=s)

        scale = tree.map(d_in) / self.cost.epsilon  # the textbook scale, if OpenDP accepts it
        if not make(scale).check(d_in, self.cost.epsilon):
            scale = float(dp.binary_search_param(make, d_in=d_in, d_out=self.cost.epsilon))
        return make(scale), float(scale)

    @property
    def noise_scale(self) -> float:
        """The Laplace scale of every node's noise."""
        return self._measurement()[1]

    def advance(self, months: Sequence[int]) -> Mapping[int, int]:
        """Take in the counts of the complete months so far (month 0 first) and draw the nodes
        that became complete; returns the new draws (already in :attr:`drawn`)."""
        if len(months) > self.shape.leaves:
            raise ValueError("more months than the series' horizon")
        done = len(months)
        due = [
            node
            for node in range(self.shape.size)
            if node not in self.drawn and self.shape.span(node)[1] <= done
        ]
        if not due:
            return {}
        padded = [int(v) for v in months] + [0] * (self.shape.leaves - done)
        noisy = self._measurement()[0](padded)
        new = {node: int(noisy[node]) for node in due}
        self.drawn.update(new)
        return new

    def cumulative(self, months: int) -> int:
        """The noisy count of persons in months ``[0, months)`` (those months must be drawn)."""
        nodes = self.shape.cover(months)
        missing = [n for n in nodes if n not in self.drawn]
        if missing:
            raise ValueError("the months are not all complete and drawn yet")
        return sum(self.drawn[n] for n in nodes)


def month_index(now_ms: int) -> int:
    """The calendar month (UTC) of ``now_ms`` as a count of months since year 0."""
    t = time.gmtime(now_ms / 1000)
    return t.tm_year * 12 + t.tm_mon - 1


def month_label(index: int) -> str:
    """``YYYY-MM`` of a :func:`month_index`."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class SeriesEnded(ReleaseError):
    """A continual series reached the end of its horizon: its budget covered no more months."""

    code = "continual_series_ended"


@dataclass
class Series:
    """A cumulative monthly series under continual release: the persons counted at the close of
    each month since ``start`` (``closed``; a month closes at the first release check after it
    ended, and a month the trust did not check in closes with the persons of the previous one),
    and every tree node drawn so far (``drawn``). The month's leaf is the change since the month
    before, so the cumulative value to month t is the count at its close, with the noise of the
    few nodes that cover months ``[0, t]``.

    ``closed`` holds exact counts: the note stays in the trust's store, never in a release.
    """

    start: int
    closed: list[int]
    drawn: dict[int, int] = field(default_factory=dict)

    @classmethod
    def begin(cls, now_ms: int, persons: int) -> Series:
        """A series whose first month is the one before ``now_ms``'s, holding every person
        counted so far (it is closed at once)."""
        return cls(month_index(now_ms) - 1, [int(persons)])

    @property
    def last_closed(self) -> int:
        """The month index of the latest closed month."""
        return self.start + len(self.closed) - 1

    def close_months(self, now_ms: int, persons: int) -> int:
        """Close every month that ended before ``now_ms``'s month and is not closed yet, the
        latest with ``persons`` (the earlier ones unchanged from the month before); returns how
        many were closed."""
        due = month_index(now_ms) - 1 - self.last_closed
        if due <= 0:
            return 0
        self.closed.extend([self.closed[-1]] * (due - 1) + [int(persons)])
        return due

    def leaves(self) -> list[int]:
        """Each closed month's change in persons (the first month: its whole count)."""
        return [
            self.closed[0],
            *(b - a for a, b in zip(self.closed[:-1], self.closed[1:], strict=True)),
        ]

    def months(self) -> tuple[str, ...]:
        """The closed months' ``YYYY-MM`` labels, first to latest."""
        return tuple(month_label(self.start + i) for i in range(len(self.closed)))

    def note(self) -> str:
        """The state as the release's event metadata keeps it."""
        return json.dumps(
            {"start": self.start, "closed": self.closed, "drawn": sorted(self.drawn.items())},
            separators=(",", ":"),
        )

    @classmethod
    def from_note(cls, note: str) -> Series:
        data = json.loads(note)
        return cls(
            int(data["start"]),
            [int(v) for v in data["closed"]],
            {int(n): int(v) for n, v in data["drawn"]},
        )

    def publish(self, counter: ContinualCounter) -> list[int]:
        """Draw the nodes the closed months completed (each node once, kept in ``drawn``) and
        give the noisy cumulative count at the close of every closed month.

        Raises:
            SeriesEnded: more months are closed than the tree's horizon holds.
        """
        if len(self.closed) > counter.shape.leaves:
            raise SeriesEnded(
                f"the continual series has run its {counter.shape.leaves} months: its privacy "
                "budget covers no more (a new series needs a new budget)"
            )
        counter.drawn = self.drawn
        counter.advance(self.leaves())
        return [counter.cumulative(t + 1) for t in range(len(self.closed))]
