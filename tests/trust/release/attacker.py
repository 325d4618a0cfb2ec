"""A differencing attacker on the releases one consumer receives (the test of
``trust/release/disclosure/differencing.md`` and ``noise.md``).

The attacker sees releases in the order they were made, one **time point** (one release check)
at a time: :meth:`Attacker.observe` takes the releases made at that point. Its view at a time
point is the latest release of every stream it holds: a stream the check did not re-release
publishes the same values as before (a release is made whenever the published values change), so
every value in the view describes the same persons at the same moment.

**At each time point** it combines the published values of *all* streams of the view counted
over the same sources into one linear program. The unknowns are the counts of a latent table
crossing every dimension of those streams (each stream's aggregates are sums of it: a cell, a
margin, a parent category of a hierarchy, the total), non-negative; each published value
constrains the sum of its aggregate:

- an exact value (``exact`` true): equal to it;
- a rounded or perturbed value: the interval of true counts the release's method
  (``metadata["method_name"]``) could have published as that value (:func:`true_interval`):
  ``round_down`` to base ``b``: ``[v, v + b - 1]``; ``random_rounding`` to base ``b``:
  ``[v - b + 1, v + b - 1]``; ``cell_key`` with noise up to ``m`` (a count ``c`` gets noise up to
  ``min(m, c - k)``): every ``c`` with ``|v - c| <= min(m, c - k)``; a published count is at
  least k in every case (values below k are suppressed before and after the method).

For every aggregate not published exactly it then bounds the true count by two LPs (minimise
and maximise), and reports a finding ``pinned`` for every aggregate suppressed in every stream
of the view whose interval is narrower than k. An aggregate published exactly, or bounded to a
single integer, is **known exactly** at that time point.

**Across time points** it reports a finding ``small_change`` for every aggregate known exactly
at two time points whose values differ by 1 .. k-1 (every pair of time points). For values that
are only bounded it reports how much it learns instead (:class:`Attacker.report`): how often a
perturbed value was recovered exactly, the widths of the intervals, and for every aggregate
bounded at two consecutive time points of its own, how wide the interval of its change is and how
often that interval lies inside ``[-(k-1), k-1]`` without holding 0 (a change of 1 .. k-1 is
certain, its size not).

Differentially private streams are a different guarantee (a privacy budget per consumer, fresh
noise by design): the attacker refuses them (:class:`UnsupportedRelease`). Rate streams
likewise (their values are not counts).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from schemas.release import Aggregate, Release
from trust.release.disclosure.lp import INFEASIBLE, OPTIMAL, UNBOUNDED, WarmLP

AggregateId = tuple[tuple[str, ...], tuple[str, ...]]
"""An aggregate: (the dimensions it is broken down by, its categories)."""

_EPS = 1e-6

#: The methods the attacker models (their values: exact, rounded or perturbed counts).
MODELLED_METHODS = ("suppression", "round_down", "random_rounding", "cell_key")


class UnsupportedRelease(ValueError):
    """A release the attacker does not model (differential privacy, rates)."""


class InconsistentView(RuntimeError):
    """The published values of one time point admit no table: the attacker's model of the
    releases (the method intervals, shared persons across streams) is wrong."""


@dataclass(frozen=True)
class Finding:
    """Something the attacker learnt that the rules forbid: ``kind`` ``pinned`` (a suppressed
    aggregate bounded to an interval narrower than k) or ``small_change`` (an aggregate known
    exactly at two time points, changed by 1 .. k-1)."""

    kind: str
    aggregate: AggregateId
    time: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.aggregate} at time {self.time}: {self.detail}"


def method_of(release: Release) -> str:
    """The release's disclosure method by its registry name (``suppression`` when unstated)."""
    return release.metadata.get("method_name", "suppression")


def true_interval(release: Release, aggregate: Aggregate) -> tuple[int, int] | None:
    """The true counts the release's method could have published as ``aggregate``'s value
    (None when suppressed)."""
    v = aggregate.value
    if v is None:
        return None
    if isinstance(v, float) and not v.is_integer():
        raise UnsupportedRelease(f"{release.stream}: values are not counts")
    value, k = int(v), release.k
    if aggregate.exact:
        return value, value
    name = method_of(release)
    if name == "round_down":
        base = int(release.metadata["rounding_base"])
        return max(value, k), value + base - 1
    if name == "random_rounding":
        base = int(release.metadata["rounding_base"])
        return max(value - base + 1, k), value + base - 1
    if name == "cell_key":
        m = int(release.metadata["max_noise"])
        # c >= v: c - v <= m; c < v: v - c <= c - k, i.e. c >= (v + k) / 2
        return max(value - m, math.ceil((value + k) / 2), k), value + m
    raise UnsupportedRelease(f"{release.stream}: method {name!r} is not modelled by the attacker")


@dataclass
class _Latent:
    """The latent table of a group of releases: one dimension per distinct (name, leaves)."""

    names: list[str]
    leaves: list[tuple[str, ...]]
    where: dict[tuple[str, str], int]  # (stream, dimension) -> latent dimension

    @property
    def size(self) -> int:
        return int(np.prod([len(x) for x in self.leaves])) if self.leaves else 1


def _leaves(release: Release) -> dict[str, tuple[str, ...]]:
    out = {}
    for i, d in enumerate(release.dimensions):
        out[d] = tuple(sorted({a.key[i] for a in release.cells()}))
    return out


def _latent(releases: Sequence[Release]) -> _Latent:
    names: list[str] = []
    leaves: list[tuple[str, ...]] = []
    where: dict[tuple[str, str], int] = {}
    index: dict[tuple[str, tuple[str, ...]], int] = {}
    for r in releases:
        for d, ls in _leaves(r).items():
            at = index.get((d, ls))
            if at is None:
                at = index[(d, ls)] = len(names)
                names.append(d if all(n != d for n in names) else f"{d}@{r.stream}")
                leaves.append(ls)
            where[(r.stream, d)] = at
    return _Latent(names, leaves, where)


def _expand(category: str, hierarchy: Mapping[str, Sequence[str]]) -> set[str]:
    children = hierarchy.get(category)
    if children is None:
        return {category}
    out: set[str] = set()
    for c in children:
        out |= _expand(c, hierarchy)
    return out


def _row(latent: _Latent, release: Release, aggregate: Aggregate) -> np.ndarray:
    """The latent cells (flat indices) summed by ``aggregate`` of ``release``."""
    masks = [np.ones(len(ls), dtype=bool) for ls in latent.leaves]
    for d, c in zip(aggregate.dimensions, aggregate.key, strict=True):
        at = latent.where[(release.stream, d)]
        wanted = _expand(c, release.hierarchies.get(d, {}))
        masks[at] = np.array([leaf in wanted for leaf in latent.leaves[at]], dtype=bool)
    full = masks[0] if masks else np.ones(1, dtype=bool)
    for m in masks[1:]:
        full = np.logical_and.outer(full, m).ravel()
    return np.flatnonzero(full)


@dataclass
class _Known:
    """What the attacker holds about one aggregate at one time point."""

    time: int
    lo: int
    hi: float  # inf when unbounded
    state: str  # exact | perturbed | suppressed


@dataclass
class Attacker:
    """The attacker over one consumer's releases at protection level ``k`` (see the module
    docstring). Feed it with :meth:`observe`, read :attr:`findings` and :meth:`report`."""

    k: int
    findings: list[Finding] = field(default_factory=list)
    time: int = 0
    releases: int = 0
    lp_solves: int = 0
    _view: dict[str, Release] = field(default_factory=dict)
    _known: dict[tuple[tuple[str, ...], AggregateId], list[_Known]] = field(
        default_factory=lambda: defaultdict(list)
    )
    _exact: dict[tuple[tuple[str, ...], AggregateId], dict[float, int]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _per_stream: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    _methods: dict[str, str] = field(default_factory=dict)
    _stats: Counter[str] = field(default_factory=Counter)
    _widths: Counter[str] = field(default_factory=Counter)
    _change_widths: Counter[str] = field(default_factory=Counter)

    def observe(self, releases: Iterable[Release]) -> list[Finding]:
        """Take the releases made at one time point; the findings they add."""
        new = list(releases)
        if not new:
            return []
        for r in new:
            if method_of(r) not in MODELLED_METHODS:
                raise UnsupportedRelease(f"{r.stream}: method {method_of(r)!r} is not modelled")
            self._view[r.stream] = r
            self.releases += 1
            counts = self._per_stream[r.stream]
            counts["releases"] += 1
            self._methods[r.stream] = method_of(r)
            for a in r.aggregates:
                counts[
                    "exact" if a.exact else "suppressed" if a.value is None else "perturbed"
                ] += 1
        before = len(self.findings)
        self.time += 1
        groups: dict[tuple[str, ...], list[Release]] = defaultdict(list)
        for r in self._view.values():
            groups[tuple(sorted(r.sources))].append(r)
        for sources, group in groups.items():
            self._attack(sources, group)
        return self.findings[before:]

    def _attack(self, sources: tuple[str, ...], group: list[Release]) -> None:
        latent = _latent(group)
        rows: dict[AggregateId, np.ndarray] = {}
        bounds: dict[AggregateId, list[tuple[int, int]]] = defaultdict(list)
        published: dict[AggregateId, str] = {}
        for r in group:
            for a in r.aggregates:
                aid = (a.dimensions, a.key)
                if aid not in rows:
                    rows[aid] = _row(latent, r, a)
                iv = true_interval(r, a)
                if iv is not None:
                    bounds[aid].append(iv)
                    state = "exact" if a.exact else "perturbed"
                    if published.get(aid) != "exact":
                        published[aid] = state
        ids = list(rows)
        lo_row, hi_row, at_row = [], [], []
        for i, aid in enumerate(ids):
            for lo, hi in bounds.get(aid, ()):
                lo_row.append(float(lo))
                hi_row.append(float(hi))
                at_row.append(i)
        n = latent.size
        matrix = sp.lil_matrix((len(ids), n))
        for i, aid in enumerate(ids):
            matrix[i, rows[aid]] = 1.0
        incidence = matrix.tocsr()
        a = incidence[at_row] if at_row else sp.csr_matrix((0, n))
        lp = WarmLP(
            a,
            np.array(lo_row),
            np.array(hi_row),
            np.zeros(n),
            np.full(n, np.inf),
            primal=True,
        )
        for i, aid in enumerate(ids):
            state = published.get(aid, "suppressed")
            exact = [lo for lo, hi in bounds.get(aid, ()) if lo == hi]
            low: int
            high: float
            if exact and state == "exact":
                low, high = exact[0], exact[0]
            else:
                low, high = self._bound(lp, incidence[i].toarray()[0])
                self._tally(state, low, high)
                if state == "suppressed" and high - low < self.k:
                    self._find("pinned", aid, f"suppressed in every stream, in [{low}, {high}]")
            self._remember(sources, aid, _Known(self.time, low, high, state))

    def _bound(self, lp: WarmLP, cost: np.ndarray) -> tuple[int, float]:
        ends: list[float] = []
        for sign in (1.0, -1.0):
            lp.set_costs(sign * cost)
            sol = lp.solve()
            self.lp_solves += 1
            if sol.status == INFEASIBLE:
                raise InconsistentView("the published values of one time point admit no table")
            if sol.status == UNBOUNDED:
                ends.append(math.inf)
                continue
            assert sol.status == OPTIMAL and sol.x is not None
            ends.append(float(cost @ sol.x))
        # true counts are integers: round the bounds inwards
        return math.ceil(ends[0] - _EPS), (
            math.floor(ends[1] + _EPS) if math.isfinite(ends[1]) else math.inf
        )

    def _tally(self, state: str, lo: int, hi: float) -> None:
        width = "unbounded" if math.isinf(hi) else str(int(hi) - lo)
        if state == "perturbed":
            self._widths[width] += 1
            if hi == lo:
                self._stats["perturbed_recovered_exactly"] += 1
        self._stats[f"{state}_bounded"] += 1

    def _remember(self, sources: tuple[str, ...], aid: AggregateId, known: _Known) -> None:
        key = (sources, aid)
        history = self._known[key]
        if history:
            prev = history[-1]
            finite = not (math.isinf(known.hi) or math.isinf(prev.hi))
            moved = (prev.lo, prev.hi) != (known.lo, known.hi)
            if "perturbed" in (prev.state, known.state) and finite and moved:
                # what the attacker knows of the change since this aggregate's last time point
                low, high = known.lo - prev.hi, known.hi - prev.lo
                self._change_widths[str(int(high - low))] += 1
                self._stats["perturbed_changes"] += 1
                if (low > 0 or high < 0) and -self.k < low and high < self.k:
                    self._stats["perturbed_changes_certainly_below_k"] += 1
        history.append(known)
        if known.lo == known.hi:
            value = float(known.lo)
            earlier = self._exact[key]
            for v, t in earlier.items():
                if 0 < abs(value - v) < self.k:
                    self._find(
                        "small_change",
                        aid,
                        f"known exactly as {v:g} at time {t} and {value:g} now ({known.state})",
                    )
            earlier.setdefault(value, self.time)

    def _find(self, kind: str, aid: AggregateId, detail: str) -> None:
        self.findings.append(Finding(kind, aid, self.time, detail))

    def report(self) -> dict[str, Any]:
        """What the attack covered and found, as JSON-ready data (no value of any release)."""
        return {
            "k": self.k,
            "time_points": self.time,
            "releases": self.releases,
            "lp_solves": self.lp_solves,
            "findings": dict(Counter(f.kind for f in self.findings)),
            "per_stream": {
                s: {"method": self._methods[s], **c} for s, c in sorted(self._per_stream.items())
            },
            "bounded": dict(self._stats),
            "perturbed_interval_widths": _sorted(self._widths),
            "change_interval_widths": _sorted(self._change_widths),
        }


def _sorted(c: Counter[str]) -> dict[str, int]:
    return dict(sorted(c.items(), key=lambda kv: (len(kv[0]), kv[0])))
