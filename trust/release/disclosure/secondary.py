"""Secondary suppression over cells and all margins (method note: ``secondary.md``).

Primary suppression hides every aggregate below k (zeros included, structural zeros excepted);
that alone lets a reader recover a hidden value from a published total. Secondary suppression
hides more aggregates until every suppressed one passes the audit's
:class:`~trust.release.disclosure.audit.ProtectionRule`, at the least information loss a
heuristic finds (cost of an aggregate: its value + 1, so small cells go before margins):

1. **local pass** — for every additive constraint (a parent and its children) and every suppressed
   member, the other suppressed members must be able to absorb a move of the required size
   (up by ``upper``, down by ``min(lower, value)``), and no suppressed member may be alone; the
   cheapest published member that supplies the missing capacity is suppressed, to a fixpoint;
2. **rounds over classes of exchangeable cells** (``moves.py``) — every side of a suppressed
   aggregate needs a *witness*, a table the attacker cannot exclude that takes the aggregate far
   enough. Witnesses are kept across rounds (suppression only grows). For a side without one, a
   proof LP (the attacker's LP, maximising or minimising the aggregate) looks for one; if there
   is none, a *widening LP* finds the cheapest change of the class totals (cost per unit: the
   aggregate's cost if published, nothing if suppressed) that moves the aggregate by the
   required amount, every published aggregate it changes is suppressed, and the moved table is
   a witness for every aggregate. A suppressed non-sensitive aggregate bound propagation pins
   is published instead (its value follows from the rest anyway). When every side has a
   witness, the independent LP audit decides.

A starting pattern (``start``: what the previous release of the stream to the same consumer
hid) can be carried forward. The earlier method (``method="cells"``: the audit's screen each
round, widening LPs over every cell) is kept as the benchmark's baseline.

Deterministic: no randomness; ties go to the lower aggregate index.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from trust.release.disclosure.audit import (
    AuditReport,
    ProtectionRule,
    assert_protected,
    audit,
    propagation_pins,
    screen,
)
from trust.release.disclosure.lp import SolverFailed, WarmLP
from trust.release.disclosure.moves import (
    CellClasses,
    MoveFailed,
    ProofLP,
    WideningLP,
    Witnesses,
)
from trust.release.disclosure.table import TOTAL, BoolArray, HierarchicalTable, incidence
from trust.release.errors import ReleaseError

SECONDARY_METHOD = (
    "secondary suppression across cells and margins (protection level p; every suppressed "
    "value's feasible interval audited by linear programming)"
)

Cost = Literal["value", "count"]
#: ``"classes"``: widening and proof LPs over classes of exchangeable cells with witnesses kept
#: across rounds (``moves.py``); ``"cells"``: the earlier widening LP over every cell after a
#: screen per round (kept as the baseline the benchmark measures against).
Method = Literal["classes", "cells"]


class SuppressionFailed(ReleaseError):
    """Secondary suppression did not reach a protected pattern (a bug, or a solver failure)."""

    code = "secondary_suppression_failed"


@dataclass(frozen=True)
class PublishedAggregate:
    """One aggregate as a release shows it: the dimensions it is broken down by (the table's
    order), its categories in them, its value or None when suppressed."""

    dimensions: tuple[str, ...]
    key: tuple[str, ...]
    value: int | None
    suppressed: bool
    primary: bool


@dataclass(frozen=True)
class InformationLoss:
    """What suppression hides: counts of aggregates (cells among them) and the sum of values."""

    primary: int
    secondary: int
    secondary_cells: int
    secondary_value: int
    published: int
    published_cells: int
    aggregates: int


@dataclass(frozen=True, eq=False)
class SuppressionPattern:
    """A table's suppression pattern: ``suppressed[i]`` hides aggregate *i*; ``primary`` marks
    the sensitive ones (below k, not structural). ``rounds`` and ``seconds`` describe the run."""

    table: HierarchicalTable
    k: int
    rule: ProtectionRule
    primary: BoolArray
    suppressed: BoolArray
    rounds: int
    widening_lps: int
    seconds: float
    #: LPs that looked for a witness before widening (``method="classes"``)
    proof_lps: int = 0
    #: the audit of ``suppressed`` that ended the run (it passed)
    report: AuditReport | None = None
    #: the pattern of an earlier run with the same inputs, audited again (no heuristic ran)
    reused: bool = False

    @property
    def secondary(self) -> BoolArray:
        """The aggregates hidden only to protect others."""
        return np.asarray(self.suppressed & ~self.primary, dtype=bool)

    def information_loss(self) -> InformationLoss:
        """Counts of hidden and published aggregates, and the value hidden by secondaries."""
        sec = self.secondary
        cell = self.table.is_cell
        return InformationLoss(
            primary=int(self.primary.sum()),
            secondary=int(sec.sum()),
            secondary_cells=int((sec & cell).sum()),
            secondary_value=int(self.table.values[sec].sum()),
            published=int((~self.suppressed).sum()),
            published_cells=int((~self.suppressed & cell).sum()),
            aggregates=self.table.size,
        )

    def aggregates(self) -> tuple[PublishedAggregate, ...]:
        """Every aggregate as released (cells, margins, total), in the table's index order."""
        out = []
        for i in range(self.table.size):
            dims, key = self.table.breakdown(i)
            hidden = bool(self.suppressed[i])
            out.append(
                PublishedAggregate(
                    dimensions=dims,
                    key=key,
                    value=None if hidden else int(self.table.values[i]),
                    suppressed=hidden,
                    primary=bool(self.primary[i]),
                )
            )
        return tuple(out)

    def audit(self, *, exact: bool = False) -> AuditReport:
        """The LP audit of this pattern (independent of how it was chosen)."""
        return audit(
            self.table, self.suppressed, self.k, self.rule, sensitive=self.primary, exact=exact
        )


def primary_mask(table: HierarchicalTable, k: int) -> BoolArray:
    """Every aggregate (cell, margin or total) below ``k``, zeros included, except structural
    zeros (declared impossible: their 0 is public knowledge and is published)."""
    _check_k(k)
    return np.asarray((table.values < k) & ~table.structural, dtype=bool)


def protect(
    table: HierarchicalTable,
    k: int = 10,
    rule: ProtectionRule | None = None,
    *,
    cost: Cost = "value",
) -> SuppressionPattern:
    """Primary suppression below ``k``, secondary suppression, then the independent LP audit.

    ``rule`` defaults to :meth:`ProtectionRule.symmetric` at ``k``.

    Raises:
        AuditFailed: the audit finds a suppressed value unprotected (the table must not go out).
    """
    pattern = secondary_suppression(table, primary_mask(table, k), k, rule, cost=cost)
    # the audit that ended secondary suppression answers this (assert_protected takes it)
    assert_protected(table, pattern.suppressed, k, pattern.rule, sensitive=pattern.primary)
    return pattern


def secondary_suppression(
    table: HierarchicalTable,
    primary: BoolArray,
    k: int,
    rule: ProtectionRule | None = None,
    *,
    cost: Cost = "value",
    max_rounds: int = 1000,
    batch: int = 50,
    start: BoolArray | None = None,
    audit_start: bool | None = None,
    method: Method = "classes",
    reuse: bool = False,
) -> SuppressionPattern:
    """Suppress more aggregates until every suppressed one passes ``rule`` (default: symmetric
    at ``k``). ``primary`` are the sensitive aggregates (structural zeros in it are ignored).
    ``cost``: ``"value"`` minimises the sum of hidden values (+1 each), ``"count"`` their number.
    ``start``: aggregates to hide from the outset, not sensitive (a pattern carried forward from
    the previous release; one found pinned is published again). ``audit_start`` (default: when
    ``start`` is given): audit the starting pattern first, and stop there if it passes (worth it
    when the start is a whole earlier pattern). ``method``: see :data:`Method`. ``reuse``: when
    one of the last runs with ``reuse`` in this process had exactly the same inputs, take its
    pattern (the heuristic is deterministic: the same answer) and only audit it again
    (``reused``); the release stage's :func:`~.margins.protect_margins` asks for it.

    The run ends with :func:`~.audit.audit` on the pattern it returns (``report``).

    Raises:
        SuppressionFailed: no protected pattern after ``max_rounds`` rounds.
    """
    t0 = time.perf_counter()
    _check_k(k)
    rule = rule or ProtectionRule.symmetric(k)
    prim = np.asarray(primary, dtype=bool)
    if prim.shape != (table.size,):
        raise SuppressionFailed("the primary pattern does not have one flag per aggregate")
    prim = prim & ~table.structural
    weights = _weights(table, cost)
    sup = prim.copy()
    if start is not None:
        carried = np.asarray(start, dtype=bool)
        if carried.shape != (table.size,):
            raise SuppressionFailed("the starting pattern does not have one flag per aggregate")
        sup |= carried & ~table.structural
    key = _run_key(table, prim, sup, k, rule, cost, max_rounds, batch, audit_start, method)
    if reuse and key in _patterns:
        again = _reused(table, prim, _patterns[key], k, rule, t0)
        if again is not None:
            _patterns.move_to_end(key)
            return again
    _local_pass(table, sup, prim, rule, weights)
    if method == "classes":
        run = _ByClasses(table, sup, prim, k, rule, weights)
        first = start is not None if audit_start is None else audit_start
        rounds = run.run(max_rounds, batch, audit_first=first)
        widening, proofs, report = run.widening, run.proofs, run.report
    elif method == "cells":
        rounds, widening, report = _by_cells(table, sup, prim, k, rule, weights, max_rounds, batch)
        proofs = 0
    else:
        raise SuppressionFailed(f"unknown method {method!r}")
    if reuse:
        _patterns[key] = sup.copy()
        while len(_patterns) > REUSED_PATTERNS:
            _patterns.popitem(last=False)
    return SuppressionPattern(
        table,
        k,
        rule,
        prim,
        sup,
        rounds,
        widening,
        round(time.perf_counter() - t0, 6),
        proof_lps=proofs,
        report=report,
    )


#: The patterns of the last runs, by everything a run depends on (:func:`_run_key`): the same
#: question again — another consumer with the same history at the same release check, or a
#: stream whose table is the same — gets the same pattern without the heuristic, audited anew.
_patterns: OrderedDict[bytes, BoolArray] = OrderedDict()
REUSED_PATTERNS = 32


def _run_key(
    table: HierarchicalTable,
    prim: BoolArray,
    start: BoolArray,
    k: int,
    rule: ProtectionRule,
    cost: Cost,
    max_rounds: int,
    batch: int,
    audit_start: bool | None,
    method: Method,
) -> bytes:
    """A digest of every input the heuristic's answer depends on (it is deterministic)."""
    h = hashlib.blake2b(digest_size=32)
    shape = [(d.name, d.categories, d.hierarchy) for d in table.dimensions]
    options = (k, rule, cost, max_rounds, batch, audit_start, method)
    h.update(repr((shape, options)).encode())
    for a in (table.values, table.structural, prim, start):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _reused(
    table: HierarchicalTable,
    prim: BoolArray,
    suppressed: BoolArray,
    k: int,
    rule: ProtectionRule,
    t0: float,
) -> SuppressionPattern | None:
    """The pattern an earlier run gave for the same inputs, if the audit passes it now (it
    always should: the heuristic is deterministic); None otherwise (run the heuristic)."""
    sup = suppressed.copy()
    report = audit(table, sup, k, rule, sensitive=prim)
    if not report.passed:
        return None
    return SuppressionPattern(
        table,
        k,
        rule,
        prim,
        sup,
        0,
        0,
        round(time.perf_counter() - t0, 6),
        report=report,
        reused=True,
    )


class _ByClasses:
    """Secondary suppression over classes of exchangeable cells (``moves.py``).

    Each round: publish again what propagation pins (non-sensitive), make the classes, and for
    every side no witness settles yet (upper sides first, the largest unknown part first): a
    proof LP (its optimum is a witness for every aggregate); if the side is still open, a
    widening LP, whose changed aggregates are suppressed and whose moved table is a witness.
    Witnesses are kept across rounds (suppression only grows, so a table once feasible stays
    so). After ``batch`` additions the local pass runs and a new round makes new classes. When
    witnesses settle every side, the audit decides; a side it finds failing is widened whatever
    the witnesses say.
    """

    def __init__(
        self,
        table: HierarchicalTable,
        sup: BoolArray,
        prim: BoolArray,
        k: int,
        rule: ProtectionRule,
        weights: np.ndarray,
    ) -> None:
        self.table, self.sup, self.prim, self.k, self.rule = table, sup, prim, k, rule
        self.weights = weights
        self.m = incidence(table)
        x = table.values.astype(np.float64)
        self.x = x
        scale = max(1.0, float(x.max())) if x.size else 1.0
        self.tol = 1e-7 * scale + 1e-9  # the audit's
        self.width = max(rule.width, 4.0 * self.tol)
        self.need_hi = np.where(prim, x + rule.upper, -np.inf)
        self.need_lo = np.where(prim, np.maximum(0.0, x - rule.lower), np.inf)
        self.witnesses = Witnesses(x)
        self.republished = np.zeros(table.size, dtype=bool)
        self.forced: set[tuple[int, bool]] = set()
        self.widening = 0
        self.proofs = 0
        self.report: AuditReport | None = None
        self.audited = sup.copy()  # the pattern the last audit saw
        #: the tables behind the starting audit's inner bounds (hints for the final audit)
        self.seed_tables: np.ndarray = np.zeros((0, 0))

    def _audit(self, hints: np.ndarray | None = None) -> bool:
        """The audit of the current pattern, given the tables the witnesses rest on as hints
        (the audit checks each: only feasible ones count, and they change no verdict)."""
        if hints is None:
            parts = [t for t in (self.witnesses.tables(), self.seed_tables) if t.size]
            hints = np.hstack(parts) if parts else np.zeros((0, 0))
        self.report = audit(
            self.table, self.sup, self.k, self.rule, sensitive=self.prim, hints=hints
        )
        self.audited = self.sup.copy()
        return self.report.passed

    def run(self, max_rounds: int, batch: int, *, audit_first: bool) -> int:
        """Rounds until the audit passes (0: the starting pattern passed as it was)."""
        if audit_first:
            # no hints: the report's inner bounds seed the witnesses, and they must not depend
            # on what earlier audits in this process found (the pattern would)
            if self._audit(np.zeros((0, 0))):
                return 0
            assert self.report is not None
            self._seed(self.report)
        table, sup = self.table, self.sup
        passed = sup.copy()  # the pattern the last local pass left
        for rounds in range(1, max_rounds + 1):
            pins = propagation_pins(table, sup, self.k, sensitive=self.prim)
            again = [i for i in pins if not self.republished[i]]
            sup[again] = False  # pinned: its value follows from the published ones
            self.republished[again] = True
            classes = CellClasses.of(table, self.m, sup)
            self.witnesses.add(classes, classes.z0)
            todo = self._open() + sorted(self.forced)
            if not todo:
                if self._audit():
                    return rounds
                assert self.report is not None
                self.forced = set(_sides(self.report, self.rule))
                todo = sorted(self.forced)
            self._round(classes, todo, batch)
            _local_pass(table, sup, self.prim, self.rule, self.weights, sup ^ passed)
            passed = sup.copy()
        raise SuppressionFailed(f"no protected pattern after {max_rounds} rounds")

    def _seed(self, report: AuditReport) -> None:
        """An audit's inner bounds of the aggregates it passed: each is attained by a table the
        attacker cannot exclude (failing ones show the outer bound that proves the failure)."""
        self.seed_tables = report.tables
        failing = {f.bounds.index for f in report.findings}
        ok = [b for b in report.bounds if b.index not in failing]
        if ok:
            self.witnesses.add_bounds(
                np.array([b.index for b in ok], dtype=np.int64),
                np.array([b.lower for b in ok]),
                np.array([b.upper for b in ok]),
            )

    def _up_bound(self, i: int) -> float:
        return float(max(self.need_hi[i], self.witnesses.low[i] + self.width))

    def _settled(self, i: int, up: bool) -> bool:
        w = self.witnesses
        if up:
            return bool(w.high[i] >= self._up_bound(i) - self.tol)
        return bool(w.low[i] <= self.need_lo[i] + self.tol)

    def _open(self) -> list[tuple[int, bool]]:
        """Suppressed aggregates' sides no witness settles yet."""
        w, t = self.witnesses, self.tol
        hidden = self.sup & ~self.table.structural
        up = hidden & ((w.high < self.need_hi - t) | (w.high - w.low < self.width - t))
        down = hidden & (w.low > self.need_lo + t)
        return [(int(i), True) for i in np.flatnonzero(up)] + [
            (int(i), False) for i in np.flatnonzero(down)
        ]

    def _round(self, classes: CellClasses, todo: list[tuple[int, bool]], batch: int) -> None:
        proof = ProofLP(classes, self.x)
        widen: WideningLP | None = None
        unknown = self.x - classes.inside @ classes.z0  # the part not fixed by published cells
        added = 0
        for i, up in sorted(todo, key=lambda t: (not t[1], -unknown[t[0]], t[0])):
            forced = (i, up) in self.forced
            if not forced:
                if self._settled(i, up):
                    continue
                self.proofs += 1
                self.witnesses.add(classes, proof.extreme(i, up=up))
                if self._settled(i, up):
                    continue
            if widen is None:
                if not classes.published.size:
                    raise SuppressionFailed("nothing is published, yet a side is not protected")
                widen = WideningLP(classes, self.weights)
            # a little beyond the bound, so that solver tolerances leave the audit satisfied
            if up:
                bound = self._up_bound(i) + 10 * self.tol
            else:
                bound = max(0.0, float(self.need_lo[i]) - 10 * self.tol)
            still = ~self.sup[classes.published]
            try:
                changed, z = widen.move(still, i, up=up, bound=float(bound), tol=1e-6)
            except MoveFailed as exc:
                raise SuppressionFailed(str(exc)) from exc
            self.widening += 1
            if forced:
                self.forced.discard((i, up))
                if not changed.any() and np.array_equal(self.sup, self.audited):
                    # the audit found this side failing in this very pattern, yet the LP moves it
                    # at no cost: a solver or tolerance fault, not something more suppression fixes
                    raise SuppressionFailed("the audit and the widening LP disagree on a side")
            self.sup[classes.published[changed]] = True
            proof.release(np.flatnonzero(changed))
            self.witnesses.add(classes, z)
            added += int(changed.sum())
            if added >= batch:
                break  # look again: what was added may protect the rest


def _by_cells(
    table: HierarchicalTable,
    sup: BoolArray,
    prim: BoolArray,
    k: int,
    rule: ProtectionRule,
    weights: np.ndarray,
    max_rounds: int,
    batch: int,
) -> tuple[int, int, AuditReport]:
    """The earlier method: a screen per round, then a widening LP over every cell for each
    failing side (``_Widening``); (rounds, widening LPs, the final audit)."""
    widen: _Widening | None = None
    need_up = np.where(prim, max(rule.upper, rule.width), rule.width)
    need_down = np.where(prim, np.minimum(rule.lower, table.values), np.inf)
    tol = 1e-6 * max(1.0, float(table.values.max()))
    republished = np.zeros(table.size, dtype=bool)
    # sides a widening LP proved protected: suppression only grows (a value published again
    # was pinned, so publishing it changes no feasible interval), so they stay protected
    proven = {True: np.zeros(table.size, dtype=bool), False: np.zeros(table.size, dtype=bool)}
    lps = 0
    for rounds in range(1, max_rounds + 1):
        scr = screen(table, sup, k, rule, sensitive=prim)
        free = dict(zip(scr.up, scr.unpublished, strict=True))
        todo = [(i, True) for i in scr.up if not proven[True][i]]
        todo += [(i, False) for i in scr.down if not proven[False][i]]
        again = [i for i in scr.pinned if not republished[i]]
        if not todo and not again:
            report = audit(table, sup, k, rule, sensitive=prim)
            if report.passed:
                return rounds, lps, report
            todo = _sides(report, rule)
        for i in again:
            sup[i] = False  # pinned: its value follows from the published ones
            republished[i] = True
            widen = None  # its row must be in the widening LP again
        group_of = {i: g for g in scr.up_groups for i in g}
        added = 0
        for i, up in sorted(todo, key=lambda t: (not t[1], -free.get(t[0], 0.0), t[0])):
            if proven[up][i]:
                continue
            amount = _amount(table, prim, rule, i, up)
            if widen is None:
                widen = _Widening(table, weights, sup)
            more, move = widen.apply(sup, i, amount, up=up)
            added += more
            lps += 1
            proven[up][i] = True
            # the move is a feasible change of the table now: every suppressed aggregate it
            # moves far enough is protected on that side (and stays so: suppression grows)
            proven[True] |= sup & ((move >= need_up - tol) | (~prim & (-move >= rule.width - tol)))
            proven[False] |= sup & (move <= -need_down + tol)
            if up and i in group_of:
                # the same class total lifts every aggregate of the group: those needing no
                # more than i (unpublished part + amount) are proven too (suppression only
                # grows, which merges classes and never lowers a maximum)
                reach = free[i] + amount
                for j in group_of[i]:
                    if free[j] + _amount(table, prim, rule, j, True) <= reach + 1e-9:
                        proven[True][j] = True
            if added >= batch:
                break  # look again: what was added may protect the rest
        _local_pass(table, sup, prim, rule, weights)
    raise SuppressionFailed(f"no protected pattern after {max_rounds} rounds")


def _amount(
    table: HierarchicalTable, prim: BoolArray, rule: ProtectionRule, i: int, up: bool
) -> float:
    """How far aggregate ``i`` must be able to move up or down from its true value."""
    if not prim[i]:
        return rule.width if up else 0.0
    if up:
        return max(rule.upper, rule.width)
    return min(rule.lower, float(table.values[i]))


def _sides(report: AuditReport, rule: ProtectionRule) -> list[tuple[int, bool]]:
    """The failing sides of an audit's findings: (aggregate, up?)."""
    out: list[tuple[int, bool]] = []
    for f in report.findings:
        b = f.bounds
        if not b.sensitive:
            out.append((b.index, True))
            continue
        if b.upper < b.value + rule.upper or b.upper - b.lower < rule.width:
            out.append((b.index, True))
        if b.lower > max(0.0, b.value - rule.lower):
            out.append((b.index, False))
    return out


# ---------------------------------------------------------------------------------------------


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SuppressionFailed("k must be an integer >= 1")


def _weights(table: HierarchicalTable, cost: Cost) -> np.ndarray:
    if cost == "value":
        return table.values.astype(np.float64) + 1.0
    if cost == "count":
        return np.ones(table.size)
    raise SuppressionFailed(f"unknown cost {cost!r}")


def _local_pass(
    table: HierarchicalTable,
    sup: BoolArray,
    prim: BoolArray,
    rule: ProtectionRule,
    weights: np.ndarray,
    changed: BoolArray | None = None,
) -> None:
    """Make every constraint locally safe (see the module docstring), in place. ``changed``:
    the aggregates whose suppression changed since the last pass (only their constraints can
    have become unsafe); None checks every constraint."""
    a = table.constraints
    csc = sp.csc_matrix(a)
    values = table.values
    fixed = table.structural
    if changed is None:
        rows = np.flatnonzero(np.diff(a.indptr) > 0)
    else:
        rows = np.unique(csc[:, np.flatnonzero(changed)].indices)
    queue = deque(int(r) for r in rows)
    queued = np.zeros(a.shape[0], dtype=bool)
    queued[rows] = True
    # a constraint locally safe now stays so until one of its members is suppressed: only the
    # unsafe ones and those touched by an addition are looked at member by member
    look = _unsafe_rows(a, sup & ~fixed, prim, values, rule)
    while queue:
        r = queue.popleft()
        queued[r] = False
        if not look[r]:
            continue
        lo, hi = a.indptr[r], a.indptr[r + 1]
        members = a.indices[lo:hi]
        coef = a.data[lo:hi]
        added = True
        while added:
            added = False
            hidden = sup[members] & ~fixed[members]
            if not hidden.any():
                break
            for pos in np.flatnonzero(hidden):
                i = members[pos]
                others = hidden.copy()
                others[pos] = False
                same = coef * coef[pos] > 0  # siblings of i (or i itself)
                needs = []
                if not others.any():
                    needs.append((rule.width if not prim[i] else max(rule.upper, rule.width), 1))
                if prim[i]:
                    needs.append((rule.upper, 1))
                    needs.append((min(rule.lower, float(values[i])), -1))
                for need, direction in needs:
                    if need <= 0:
                        continue
                    # a move of i up is absorbed by parents/children going up (unbounded) or
                    # by siblings going down (at most their value); down the other way round
                    unbounded = ~same if direction > 0 else same
                    cap = np.where(unbounded, np.inf, values[members].astype(np.float64))
                    have = float(cap[others].sum())
                    if have >= need:
                        continue
                    cand = np.flatnonzero(~hidden & ~fixed[members] & (cap > 0))
                    if cand.size == 0:
                        continue
                    short = need - have
                    enough = cand[cap[cand] >= short]
                    pool = enough if enough.size else cand[cap[cand] == cap[cand].max()]
                    pick = int(pool[np.argmin(weights[members[pool]])])
                    j = int(members[pick])
                    sup[j] = True
                    added = True
                    look[csc.indices[csc.indptr[j] : csc.indptr[j + 1]]] = True
                    for r2 in csc.indices[csc.indptr[j] : csc.indptr[j + 1]]:
                        if not queued[r2] and r2 != r:
                            queued[r2] = True
                            queue.append(int(r2))
                    break
                if added:
                    break


def _unsafe_rows(
    a: sp.csr_matrix, hidden: BoolArray, prim: BoolArray, values: np.ndarray, rule: ProtectionRule
) -> BoolArray:
    """The constraints :func:`_local_pass` would find locally unsafe (vectorised, the same
    tests): a hidden member alone, or a sensitive one whose moves up by ``upper`` or down by
    ``min(lower, value)`` the other hidden members cannot absorb."""
    coo = a.tocoo()
    r, j, v = coo.row, coo.col, coo.data
    m = a.shape[0]
    h = hidden[j]
    x = values[j].astype(np.float64)
    pos, neg = h & (v > 0), h & (v < 0)
    n_pos = np.bincount(r, pos, minlength=m)
    n_neg = np.bincount(r, neg, minlength=m)
    x_pos = np.bincount(r, np.where(pos, x, 0.0), minlength=m)
    x_neg = np.bincount(r, np.where(neg, x, 0.0), minlength=m)
    up_sign = v > 0
    same_others = np.where(up_sign, n_pos[r], n_neg[r]) - 1  # hidden siblings (same sign)
    opposite = np.where(up_sign, n_neg[r], n_pos[r])  # hidden parent or children
    same_x = np.where(up_sign, x_pos[r], x_neg[r]) - x
    opposite_x = np.where(up_sign, x_neg[r], x_pos[r])
    # moving up is absorbed by a parent/child (unbounded) or by siblings down (their values);
    # moving down by a sibling (unbounded) or by a parent/child down (their values)
    have_up = np.where(opposite > 0, np.inf, same_x)
    have_down = np.where(same_others > 0, np.inf, opposite_x)
    sens = prim[j]
    alone_need = np.where(sens, max(rule.upper, rule.width), rule.width)
    alone = (same_others + opposite == 0) & (alone_need > 0)
    up_short = sens & (rule.upper > 0) & (have_up < rule.upper)
    down_need = np.minimum(rule.lower, x)
    down_short = sens & (down_need > 0) & (have_down < down_need)
    bad = h & (alone | up_short | down_short)
    return np.asarray(np.bincount(r, bad, minlength=m) > 0, dtype=bool)


class _Widening:
    """The widening LP: the cheapest change of the cells that moves one aggregate by a given
    amount, keeping cells non-negative; every published aggregate it changes gets suppressed.

    Variables: the change ``δ`` of every cell (structural cells fixed) and, for every aggregate
    published when the model is made, the size of its change ``t >= |M δ|``; cost: ``t`` times
    the aggregate's weight while it is published, nothing once suppressed. One HiGHS model
    serves every call (:class:`~.lp.WarmLP`): a call adds the target's row, changes the costs of
    what was suppressed since, and HiGHS starts from the previous basis.
    """

    def __init__(self, table: HierarchicalTable, weights: np.ndarray, sup: BoolArray) -> None:
        self.table = table
        self.weights = weights
        self.m = incidence(table)
        cells = np.flatnonzero(table.is_cell)
        y0 = table.values[cells].astype(np.float64)
        fixed = table.structural[cells]
        # a row for every aggregate published now (suppression only grows; the caller makes a
        # new model when a value is published again)
        self.pub = np.flatnonzero(~sup & ~table.structural)
        m = sp.csr_matrix(self.m[self.pub])
        n, g = m.shape[1], self.pub.size
        self.n = n
        eye = sp.identity(g, format="csr")
        # m δ - t <= 0 and -m δ - t <= 0
        a = sp.vstack([sp.hstack([m, -eye]), sp.hstack([-m, -eye])])
        self.lp = WarmLP(
            a,
            np.full(2 * g, -np.inf),
            np.zeros(2 * g),
            np.concatenate([np.where(fixed, 0.0, -y0), np.zeros(g)]),
            np.concatenate([np.where(fixed, 0.0, np.inf), np.full(g, np.inf)]),
            np.concatenate([np.zeros(n), weights[self.pub]]),
        )

    @property
    def solves(self) -> int:
        return self.lp.solves

    def apply(
        self, sup: BoolArray, i: int, amount: float, *, up: bool
    ) -> tuple[int, npt.NDArray[np.float64]]:
        """Suppress what moving aggregate ``i`` by ``amount`` (up or down) needs: how many
        aggregates were added, and the move (the change of every aggregate; non-negative cells,
        published aggregates unchanged once the additions are suppressed)."""
        if not up:
            amount = min(amount, float(self.table.values[i]))
        if amount <= 0:
            return 0, np.zeros(self.table.size)
        still = ~sup[self.pub]
        self.lp.set_costs(
            np.concatenate([np.zeros(self.n), np.where(still, self.weights[self.pub], 0.0)])
        )
        row = self.m[i]
        lo, hi = (amount, np.inf) if up else (-np.inf, -amount)
        r = self.lp.add_row(row.indices, row.data.astype(np.float64), lo, hi)
        try:
            sol = self.lp.solve()
        except SolverFailed as exc:
            raise SuppressionFailed(f"the widening LP failed ({exc})") from exc
        finally:
            self.lp.delete_row(r)
        if sol.x is None:
            raise SuppressionFailed(f"the widening LP found no move ({sol.status})")
        t = sol.x[self.n :]
        moved = self.pub[still & (t > 1e-6 * max(1.0, amount))]
        sup[moved] = True
        return int(moved.size), np.asarray(self.m @ sol.x[: self.n], dtype=np.float64)


def describe(table: HierarchicalTable, i: int) -> str:
    """A readable name of aggregate ``i`` (``dimension=category`` pairs, or ``Total``)."""
    dims, key = table.breakdown(i)
    return ", ".join(f"{d}={k}" for d, k in zip(dims, key, strict=True)) or TOTAL
