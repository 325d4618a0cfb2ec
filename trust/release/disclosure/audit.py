"""The LP audit: how well is each suppressed aggregate hidden by everything that is published?

For a table with its hierarchy (:class:`~trust.release.disclosure.table.HierarchicalTable`) and a
suppression pattern, an attacker knows every published value, the additive constraints and that
counts are non-negative. The feasible interval of a suppressed aggregate is its minimum and
maximum over all non-negative real tables consistent with that knowledge (a linear program). The
audit checks every suppressed aggregate against a :class:`ProtectionRule` and
:func:`assert_protected` refuses a table that fails (:class:`AuditFailed`). It uses only the table,
the pattern and k — never the heuristic that chose the pattern (method note: ``secondary.md``).

A naive audit solves two LPs over the whole table per suppressed aggregate (:func:`naive_audit`,
the reference). :func:`audit` gives the same verdicts far faster, from the table's structure:

1. **bound propagation** over the additive constraints gives outer bounds of every suppressed
   aggregate (a constraint left with one unknown pins it); a side whose outer bound already
   violates the rule fails without an LP;
2. **exchangeable cells** — suppressed cells that lie in exactly the same published aggregates
   form a class: the attacker can move counts freely inside a class, so only class totals
   matter. The LP shrinks to one variable per class and one row per published margin, and an
   aggregate's maximum is the maximum total of the classes it touches, its minimum the minimum
   total of the classes it contains (many aggregates share one LP target);
3. **witnesses** — the true table and every table the solver returns show values each
   suppressed aggregate can take; a side is settled once a witness reaches the required bound;
4. **independent sub-problems** — the classes fall into connected components over the published
   rows; what is unsettled is solved exactly, one target per component *per LP* (a
   block-diagonal objective gives every component's optimum in one solve);
5. **one model, warm starts** — every exact LP is the same class model with another cost vector:
   it is kept in HiGHS (:class:`~trust.release.disclosure.lp.WarmLP`) and each solve starts
   from the previous optimal basis by the primal simplex (a few iterations, not a new model);
6. ``exact=True`` computes every interval: only sides where propagation (outer) and witnesses
   (inner) disagree need an LP.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from trust.release.disclosure.lp import SolverFailed, WarmLP
from trust.release.disclosure.table import BoolArray, HierarchicalTable, InvalidTable, incidence
from trust.release.errors import ReleaseError, UnprotectedTable

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

PINNED = "pinned"
UPPER = "upper_protection"
LOWER = "lower_protection"
WIDTH = "width"


class AuditFailed(UnprotectedTable):
    """A suppressed aggregate is pinned or narrowed below the protection level: do not release.

    ``reasons`` holds the reason codes found (:data:`PINNED`, :data:`UPPER`, :data:`LOWER`,
    :data:`WIDTH`); ``report`` the whole audit (it stays inside the trust: it holds true values).
    """

    code = "audit_failed"

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        self.reasons = tuple(sorted({f.reason for f in report.findings}))
        super().__init__(
            f"{len(report.findings)} suppressed aggregate(s) of {report.stream} are not protected "
            f"({', '.join(self.reasons)}); the table must not be released"
        )


class AuditError(ReleaseError):
    """The audit could not be run (inconsistent input or a solver failure)."""

    code = "audit_error"


@dataclass(frozen=True)
class ProtectionRule:
    """What every suppressed aggregate's feasible interval [lo, hi] must cover.

    A *sensitive* aggregate (true value x, below k) needs upper protection ``hi >= x + upper``
    and lower protection ``lo <= max(0, x - lower)``; every suppressed aggregate, sensitive or
    not, needs ``hi - lo >= width`` (in particular it is never pinned when ``width`` > 0).
    """

    upper: float
    lower: float
    width: float

    def __post_init__(self) -> None:
        for name in ("upper", "lower", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
                raise InvalidTable(f"protection level {name} must be a number >= 0")

    @classmethod
    def symmetric(cls, p: float) -> ProtectionRule:
        """Upper and lower protection ``p``, and width ``p`` for every suppressed aggregate."""
        return cls(p, p, p)


@dataclass(frozen=True)
class Bounds:
    """A suppressed aggregate's interval as audited.

    With ``exact`` the interval is the feasible one (``upper`` may be ``inf``). Without, each end
    is either exact or a value the aggregate can feasibly take at or beyond what the rule
    requires, so the interval shown lies inside the feasible one and the verdict is the same.
    """

    index: int
    key: tuple[str, ...]
    value: int
    sensitive: bool
    lower: float
    upper: float
    exact: bool


@dataclass(frozen=True)
class Finding:
    """A suppressed aggregate that fails the rule, and why (one reason code)."""

    bounds: Bounds
    reason: str


@dataclass(frozen=True)
class AuditReport:
    """Every suppressed aggregate's bounds and the findings; ``lp_solves`` counts LPs solved."""

    stream: str
    rule: ProtectionRule
    bounds: tuple[Bounds, ...]
    findings: tuple[Finding, ...]
    lp_solves: int
    components: int
    seconds: float
    #: feasible tables the audit found or verified (cells x tables, cells in the order of
    #: ``np.flatnonzero(table.is_cell)``): what its inner bounds rest on, to be given as
    #: ``hints`` to a later audit (each is verified again there)
    tables: FloatArray = field(default_factory=lambda: np.zeros((0, 0)), repr=False, compare=False)
    #: how many of the ``hints`` given were feasible (and so used as witnesses)
    hints_used: int = 0

    @property
    def passed(self) -> bool:
        """True when no suppressed aggregate is pinned or under-protected."""
        return not self.findings


def sensitive_mask(table: HierarchicalTable, suppressed: BoolArray, k: int) -> BoolArray:
    """The suppressed aggregates that need protection: value below ``k``, not structural."""
    return np.asarray(suppressed & ~table.structural & (table.values < k), dtype=bool)


def audit(
    table: HierarchicalTable,
    suppressed: BoolArray,
    k: int,
    rule: ProtectionRule | None = None,
    *,
    sensitive: BoolArray | None = None,
    exact: bool = False,
    hints: FloatArray | None = None,
) -> AuditReport:
    """Audit a suppression pattern (``suppressed[i]``: aggregate *i* is not published).

    ``sensitive`` defaults to the suppressed aggregates below ``k``; ``rule`` to
    :meth:`ProtectionRule.symmetric` at ``k``. Structural zeros are public knowledge (0) whether
    suppressed or not and are not audited. ``exact`` computes every interval exactly (slower).

    ``hints``: candidate tables (cells x tables, cells in the order of
    ``np.flatnonzero(table.is_cell)``), e.g. the tables secondary suppression found. Each is
    checked here — non-negative, every published value and structural zero matched — and only
    those that pass serve as witnesses; the rest are ignored. Hints change how many LPs run,
    never a verdict: a side still rests on a feasible table or an LP optimum. Without hints, the
    tables the last audit of the same pattern in this process rested on are tried the same way
    (their changes from that table's true cells, added to this one's: :func:`_remembered`).
    """
    t0 = time.perf_counter()
    rule = rule or ProtectionRule.symmetric(k)
    unknown, sens = _masks(table, suppressed, k, sensitive)
    system = _System.of(table, unknown)
    state = _State.of(system, sens[system.var], rule, _tolerance(table))
    state.propagate()
    classes = _Classes.of(table, unknown, system.var)
    state.components = int(np.unique(classes.labels).size)
    if hints is None:
        candidates = _remembered(table, unknown)
    else:
        candidates = np.asarray(hints, dtype=np.float64)
    state.hint(classes, feasible_tables(table, unknown, candidates))
    if exact:
        state.exact(classes)
    else:
        state.check(classes)
    report = state.report(table, rule, time.perf_counter() - t0)
    _remember(table, unknown, report.tables)
    global _last_audit
    _last_audit = None if exact else (table, report)
    return report


def cell_values(table: HierarchicalTable) -> FloatArray:
    """The true cell counts, in the order of ``np.flatnonzero(table.is_cell)``."""
    return np.asarray(table.values[table.is_cell], dtype=np.float64)


def feasible_tables(
    table: HierarchicalTable, unknown: BoolArray, candidates: FloatArray
) -> FloatArray:
    """The columns of ``candidates`` (cells x tables) an attacker cannot exclude under the
    pattern (``unknown``: the suppressed, non-structural aggregates): non-negative, and every
    other aggregate (published, or a structural zero) at its value, within the audit's
    tolerance. Returned clipped at 0."""
    cells = int(table.is_cell.sum())
    if candidates.ndim != 2 or candidates.shape[0] != cells or not candidates.shape[1]:
        return np.zeros((cells, 0))
    tol = _tolerance(table)
    ok = np.all(candidates >= -tol, axis=0) & np.all(np.isfinite(candidates), axis=0)
    y = np.maximum(candidates[:, ok], 0.0)
    known = np.flatnonzero(~unknown)
    m = incidence(table)[known]
    err = np.abs(m @ y - table.values[known].astype(np.float64)[:, None])
    good = np.all(err <= tol, axis=0)
    return np.asarray(y[:, good], dtype=np.float64)


#: Per table shape and pattern: the changes from the true cells of the tables the last audit of
#: that pattern rested on (cells x tables), the most recently used last. A release given again
#: (the replay rule, ``differencing.md``) audits an earlier release's pattern anew: those changes
#: added to its cells are checked like any hint and usually settle every side without an LP.
_memory: OrderedDict[tuple[object, ...], FloatArray] = OrderedDict()
#: Patterns remembered, and tables per pattern (a table of the four-way stream: 12 KiB).
MEMORY_PATTERNS = 4
MEMORY_TABLES = 1000


def _memory_key(table: HierarchicalTable, unknown: BoolArray) -> tuple[object, ...]:
    # not the stream: two streams of the same table share their tables (each is checked anyway)
    dims = tuple((d.name, d.nodes) for d in table.dimensions)
    return (dims, np.packbits(unknown).tobytes())


def _remember(table: HierarchicalTable, unknown: BoolArray, tables: FloatArray) -> None:
    if not tables.size:
        return
    key = _memory_key(table, unknown)
    _memory[key] = np.ascontiguousarray((tables - cell_values(table)[:, None])[:, :MEMORY_TABLES])
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_PATTERNS:
        _memory.popitem(last=False)


def _remembered(table: HierarchicalTable, unknown: BoolArray) -> FloatArray:
    """Candidate tables for this pattern: the remembered changes added to this table's cells."""
    moves = _memory.get(_memory_key(table, unknown))
    if moves is None or moves.shape[0] != int(table.is_cell.sum()):
        return np.zeros((0, 0))
    return np.asarray(cell_values(table)[:, None] + moves, dtype=np.float64)


#: The last (non-exact) audit's table and report, for :func:`assert_protected`.
_last_audit: tuple[HierarchicalTable, AuditReport] | None = None


def naive_audit(
    table: HierarchicalTable,
    suppressed: BoolArray,
    k: int,
    rule: ProtectionRule | None = None,
    *,
    sensitive: BoolArray | None = None,
    only: Sequence[int] | None = None,
) -> AuditReport:
    """The reference audit: the feasible minimum and maximum of every suppressed aggregate (or
    of those in ``only``), each by its own LP over the whole table (no propagation, classes,
    decomposition or witnesses)."""
    t0 = time.perf_counter()
    rule = rule or ProtectionRule.symmetric(k)
    unknown, sens = _masks(table, suppressed, k, sensitive)
    system = _System.of(table, unknown)
    n = system.var.size
    if only is not None:
        wanted = set(int(i) for i in only)
        columns = [j for j, i in enumerate(system.var) if int(i) in wanted]
    else:
        columns = list(range(n))
    lo, hi = system.x0.copy(), system.x0.copy()
    solves = 0
    for i in columns:
        c = np.zeros(n)
        c[i] = 1.0
        for sign in (1.0, -1.0):
            status, x = _solve(sign * c, system.a, system.b, np.zeros(n), np.full(n, np.inf))
            solves += 1
            if sign > 0:
                lo[i] = 0.0 if x is None else x[i]
            else:
                hi[i] = np.inf if status == 3 or x is None else x[i]
    keep = np.asarray(columns, dtype=np.int64)
    sub = _System(system.a, system.b, system.var[keep], system.x0[keep])
    state = _State.of(sub, sens[sub.var], rule, _tolerance(table))
    state.wmin, state.wmax = np.maximum(lo[keep], 0.0), hi[keep]
    state.out_lo, state.out_hi = state.wmin.copy(), state.wmax.copy()
    state.exact_lo[:] = True
    state.exact_hi[:] = True
    state.solves = solves
    return state.report(table, rule, time.perf_counter() - t0)


def assert_protected(
    table: HierarchicalTable,
    suppressed: BoolArray,
    k: int,
    rule: ProtectionRule | None = None,
    *,
    sensitive: BoolArray | None = None,
) -> AuditReport:
    """:func:`audit`, raising :class:`AuditFailed` unless every suppressed aggregate is protected
    (the release stage calls this last, on the pattern it is about to publish).

    When the last :func:`audit` in this process answered exactly this question — the same table
    object, the same suppressed aggregates with the same sensitivity and values, the same rule —
    its report is taken instead of auditing again (the audit is deterministic): secondary
    suppression ends with that audit of the pattern it returns, so the release's last check
    costs nothing more. Anything else is audited anew.
    """
    rule = rule or ProtectionRule.symmetric(k)
    last = _last_audit
    if (
        last is not None
        and last[0] is table
        and _answers(last[1], table, suppressed, k, rule, sensitive)
    ):
        report = last[1]
    else:
        report = audit(table, suppressed, k, rule, sensitive=sensitive)
    if not report.passed:
        raise AuditFailed(report)
    return report


def _answers(
    report: AuditReport,
    table: HierarchicalTable,
    suppressed: BoolArray,
    k: int,
    rule: ProtectionRule,
    sensitive: BoolArray | None,
) -> bool:
    """True when ``report`` audits exactly this table, pattern, sensitivity and rule."""
    unknown, sens = _masks(table, suppressed, k, sensitive)
    if report.stream != table.stream or report.rule != rule:
        return False
    index = np.fromiter((b.index for b in report.bounds), dtype=np.int64, count=len(report.bounds))
    flags = np.fromiter((b.sensitive for b in report.bounds), dtype=bool, count=len(report.bounds))
    values = np.fromiter((b.value for b in report.bounds), dtype=np.int64, count=len(report.bounds))
    return bool(
        np.array_equal(index, np.flatnonzero(unknown))
        and np.array_equal(flags, sens[index])
        and np.array_equal(values, table.values[index])
    )


def propagation_pins(
    table: HierarchicalTable,
    suppressed: BoolArray,
    k: int,
    *,
    sensitive: BoolArray | None = None,
) -> tuple[int, ...]:
    """The suppressed, non-sensitive aggregates that bound propagation alone pins: their value
    follows from the published ones, so publishing them changes no feasible interval."""
    unknown, sens = _masks(table, suppressed, k, sensitive)
    system = _System.of(table, unknown)
    if not system.var.size:
        return ()
    tol = _tolerance(table)
    lo, hi = _propagate(system.a, system.b, system.var.size, tol)
    return tuple(int(i) for i in system.var[(hi - lo <= tol) & ~sens[system.var]])


@dataclass(frozen=True)
class Screen:
    """The audit's verdicts by side (for a suppression heuristic): the aggregates whose upper
    side or width (``up``) or lower side (``down``) fails, and the non-sensitive ones that
    propagation alone pins (``pinned``)."""

    up: tuple[int, ...]
    down: tuple[int, ...]
    pinned: tuple[int, ...]
    #: ``up`` grouped by the set of exchangeable-cell classes each touches: in a group, the
    #: maximum of an aggregate is its published part plus the same class total, so a move of
    #: the largest unpublished part proves the others (see ``unpublished``)
    up_groups: tuple[tuple[int, ...], ...] = ()
    #: for every aggregate in ``up``: its true value minus its published cells
    unpublished: tuple[float, ...] = ()

    @property
    def clear(self) -> bool:
        """True when every suppressed aggregate is proven protected."""
        return not (self.up or self.down or self.pinned)


def screen(
    table: HierarchicalTable,
    suppressed: BoolArray,
    k: int,
    rule: ProtectionRule | None = None,
    *,
    sensitive: BoolArray | None = None,
) -> Screen:
    """The audit's steps with the failing sides kept apart: what a heuristic must still fix
    (a clear screen means :func:`audit` passes too)."""
    rule = rule or ProtectionRule.symmetric(k)
    unknown, sens = _masks(table, suppressed, k, sensitive)
    system = _System.of(table, unknown)
    state = _State.of(system, sens[system.var], rule, _tolerance(table))
    state.propagate()
    classes = _Classes.of(table, unknown, system.var)
    state.check(classes)
    t = state.tol
    width_ok = state.wmax - state.wmin >= state.width - t
    up = ~((state.wmax >= state.need_hi - t) & width_ok)
    down = ~(state.wmin <= state.need_lo + t)
    pinned = ~state.sens & (state.out_hi - state.out_lo <= t)
    var = system.var
    ups = np.flatnonzero(up & ~pinned)
    groups: dict[bytes, list[int]] = {}
    touch = classes.touch
    for j in ups:
        sig = touch.indices[touch.indptr[j] : touch.indptr[j + 1]].tobytes()
        groups.setdefault(sig, []).append(int(var[j]))
    return Screen(
        up=tuple(int(i) for i in var[ups]),
        down=tuple(int(i) for i in var[down & ~pinned]),
        pinned=tuple(int(i) for i in var[pinned]),
        up_groups=tuple(tuple(g) for g in groups.values()),
        unpublished=tuple(float(v) for v in (system.x0 - classes.fixed)[ups]),
    )


# ---------------------------------------------------------------------------------------------


def _masks(
    table: HierarchicalTable, suppressed: BoolArray, k: int, sensitive: BoolArray | None
) -> tuple[BoolArray, BoolArray]:
    sup = np.asarray(suppressed, dtype=bool)
    if sup.shape != (table.size,):
        raise AuditError("the suppression pattern does not have one flag per aggregate")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise AuditError("k must be an integer >= 1")
    unknown = sup & ~table.structural
    if sensitive is None:
        sens = sensitive_mask(table, sup, k)
    else:
        sens = np.asarray(sensitive, dtype=bool)
        if sens.shape != (table.size,):
            raise AuditError("the sensitivity mask does not have one flag per aggregate")
        sens = sens & unknown
    return unknown, sens


def _tolerance(table: HierarchicalTable) -> float:
    scale = float(table.values.max()) if table.size else 1.0
    return 1e-7 * max(1.0, scale) + 1e-9


def _solve(
    c: FloatArray,
    a: sp.csr_matrix,
    b: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    a_ub: sp.csr_matrix | None = None,
    b_ub: FloatArray | None = None,
    *,
    presolve: bool = True,
) -> tuple[int, FloatArray | None]:
    """Minimise c·x subject to a x = b, a_ub x <= b_ub, lo <= x <= hi; (status, x), 3 unbounded.

    The class LPs are small and solved many times: HiGHS's presolve costs more than it saves.
    """
    if a.shape[0] == 0 and a_ub is None:  # each variable at the bound its cost points to
        if np.any((c < 0) & np.isinf(hi)):
            return 3, None
        return 0, np.where(c < 0, hi, lo)
    res = linprog(
        c,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a if a.shape[0] else None,
        b_eq=b if a.shape[0] else None,
        bounds=np.column_stack([lo, hi]),
        method="highs",
        options={"presolve": presolve},
    )
    if res.status == 0:
        return 0, np.asarray(res.x, dtype=np.float64)
    if res.status == 3:
        return 3, None
    raise AuditError(f"the LP solver failed: {res.message}")


@dataclass(frozen=True, eq=False)
class _System:
    """The attacker's system over the unknown (suppressed, non-structural) aggregates:
    ``a @ x = b``, ``x >= 0``; ``var[j]`` is column *j*'s aggregate, ``x0`` the true values."""

    a: sp.csr_matrix
    b: FloatArray
    var: IndexArray
    x0: FloatArray

    @classmethod
    def of(cls, table: HierarchicalTable, unknown: BoolArray) -> _System:
        full = table.constraints
        var = np.flatnonzero(unknown).astype(np.int64)
        known = np.flatnonzero(~unknown)
        vals = table.values.astype(np.float64)
        b_all = -(full[:, known] @ vals[known])
        a_all = sp.csr_matrix(full[:, var])
        nnz = np.diff(a_all.indptr)
        if np.any(np.abs(b_all[nnz == 0]) > 0.5):
            raise AuditError("the published values do not add up")
        rows = np.flatnonzero(nnz > 0)
        return cls(sp.csr_matrix(a_all[rows]), np.asarray(b_all[rows]), var, vals[var])


@dataclass(frozen=True, eq=False)
class _Classes:
    """The LP over class totals: ``a @ z = b``, ``z >= 0`` (one row per published margin with
    unknown cells). Row *i* of ``touch``/``inside`` marks the classes aggregate ``var[i]``
    touches/contains; ``fixed[i]`` is the sum of its published cells; ``z0`` the true totals;
    ``labels`` the connected component of each class."""

    a: sp.csr_matrix
    b: FloatArray
    z0: FloatArray
    touch: sp.csr_matrix
    inside: sp.csr_matrix
    fixed: FloatArray
    labels: IndexArray
    #: per aggregate: the id of its touch / inside class set (equal sets, equal ids)
    touch_id: IndexArray
    inside_id: IndexArray
    #: per set id: its one component, or -1 when it spans several
    touch_comp: IndexArray
    inside_comp: IndexArray
    #: ``member`` (unknown cells x classes, 0/1): the class of every unknown cell, ``cells``:
    #: their positions among the cells; ``y``: the cells with the unknown ones at 0
    member: sp.csr_matrix
    cells: IndexArray
    y: FloatArray

    def table(self, z: FloatArray) -> FloatArray:
        """A table (cells) with class totals ``z``: each total spread evenly over its cells."""
        out = self.y.copy()
        out[self.cells] = self.member @ (np.asarray(z, dtype=np.float64) / self._sizes)
        return out

    @cached_property
    def _sizes(self) -> FloatArray:
        return np.maximum(np.asarray(self.member.sum(axis=0), dtype=np.float64).ravel(), 1.0)

    def totals(self, tables: FloatArray) -> FloatArray:
        """The class totals (classes x tables) of ``tables`` (cells x tables)."""
        return np.asarray(self.member.T @ tables[self.cells], dtype=np.float64)

    @classmethod
    def of(cls, table: HierarchicalTable, unknown: BoolArray, var: IndexArray) -> _Classes:
        m = incidence(table)
        cells = np.flatnonzero(table.is_cell)
        y = table.values[cells].astype(np.float64)
        open_cell = unknown[cells]
        vc, fc = np.flatnonzero(open_cell), np.flatnonzero(~open_cell)
        pub = np.flatnonzero(~unknown & ~table.is_cell)
        m_pub = m[pub]
        a_cells = sp.csc_matrix(m_pub[:, vc])
        b = table.values[pub] - m_pub[:, fc] @ y[fc]
        # cells in exactly the same published aggregates are exchangeable: one class
        seen: dict[bytes, int] = {}
        labels = np.empty(vc.size, dtype=np.int64)
        for j in range(vc.size):
            sig = a_cells.indices[a_cells.indptr[j] : a_cells.indptr[j + 1]].tobytes()
            labels[j] = seen.setdefault(sig, len(seen))
        n_cls = len(seen)
        member = sp.csr_matrix(
            (np.ones(vc.size), (np.arange(vc.size), labels)), shape=(vc.size, n_cls)
        )
        a = sp.csr_matrix(sp.csr_matrix(a_cells) @ member)
        a.data[:] = 1.0
        keep = np.diff(a.indptr) > 0
        a, b = sp.csr_matrix(a[keep]), np.asarray(b[keep], dtype=np.float64)
        z0 = np.asarray(member.T @ y[vc]).ravel()
        m_var = sp.csr_matrix(m[var])
        count = sp.csr_matrix(m_var[:, vc] @ member)
        size = np.asarray(member.sum(axis=0)).ravel()
        touch = count.copy()
        touch.data[:] = 1.0
        inside = count.copy()
        inside.data = (inside.data >= size[inside.indices]).astype(np.float64)
        inside.eliminate_zeros()
        fixed = np.asarray(m_var[:, fc] @ y[fc]).ravel()
        if a.shape[0]:
            graph = sp.csr_matrix(a.T @ a)
            _, comp = connected_components(graph, directed=False)
        else:
            comp = np.arange(n_cls)
        comp = np.asarray(comp, dtype=np.int64)
        t_id, t_comp = _set_ids(touch, comp)
        i_id, i_comp = _set_ids(inside, comp)
        y_fixed = np.zeros(cells.size)
        y_fixed[fc] = y[fc]
        return cls(
            a,
            b,
            z0,
            touch,
            inside,
            fixed,
            comp,
            t_id,
            i_id,
            t_comp,
            i_comp,
            member,
            vc.astype(np.int64),
            y_fixed,
        )


class _State:
    """Witness and bound bookkeeping for one audit (arrays over the unknown aggregates).

    ``wmin``/``wmax``: values feasible tables reach (inner bounds); ``out_lo``/``out_hi``: outer
    bounds from propagation; ``exact_*``: the side is the feasible optimum.
    """

    def __init__(
        self,
        system: _System,
        sensitive: BoolArray,
        rule: ProtectionRule,
        tol: float,
    ) -> None:
        self.s = system
        self.sens = sensitive
        self.rule = rule
        self.tol = tol
        x0 = system.x0
        n = x0.size
        self.need_hi = np.where(sensitive, x0 + rule.upper, -np.inf)
        self.need_lo = np.where(sensitive, np.maximum(0.0, x0 - rule.lower), np.inf)
        self.width = max(rule.width, 4.0 * tol)  # a pinned value always fails
        self.wmin = x0.copy()
        self.wmax = x0.copy()
        self.out_lo = np.zeros(n)
        self.out_hi = np.full(n, np.inf)
        self.exact_lo = x0 <= 0.0  # the lower bound 0 is reached by the true table
        self.exact_hi = np.zeros(n, dtype=bool)
        self.solves = 0
        self.components = 0
        self.hints_used = 0
        self._lp: WarmLP | None = None
        #: the tables the inner bounds rest on: per aggregate, the table (column of
        #: ``_tables``) that gave its ``wmax`` / ``wmin`` (-1: the true table or an exact
        #: optimum's own value)
        self._tables: list[FloatArray] = []
        self.src_max = np.full(n, -1, dtype=np.int64)
        self.src_min = np.full(n, -1, dtype=np.int64)

    @classmethod
    def of(cls, system: _System, sensitive: BoolArray, rule: ProtectionRule, tol: float) -> _State:
        return cls(system, sensitive, rule, tol)

    # -- verdicts from what is known so far -----------------------------------------------------
    def _fails(self) -> tuple[BoolArray, BoolArray, BoolArray]:
        """Sides proven to fail (upper, lower, width) by exact optima or outer bounds."""
        t = self.tol
        hi = np.where(self.exact_hi, self.wmax, self.out_hi)
        lo = np.where(self.exact_lo, self.wmin, self.out_lo)
        return hi < self.need_hi - t, lo > self.need_lo + t, hi - lo < self.width - t

    def _settled(self) -> tuple[BoolArray, BoolArray]:
        """Which sides need no more LPs: exact, a witness at the required bound, or the aggregate
        already proven to fail. A width still short once the maximum is exact falls to the lower
        side."""
        t = self.tol
        fail_hi, fail_lo, fail_w = self._fails()
        failed = fail_hi | fail_lo | fail_w
        width_ok = self.wmax - self.wmin >= self.width - t
        up_ok = self.exact_hi | ((self.wmax >= self.need_hi - t) & width_ok) | failed
        down_ok = (
            self.exact_lo | ((self.wmin <= self.need_lo + t) & (width_ok | ~self.exact_hi)) | failed
        )
        return up_ok, down_ok

    # -- 1. propagation ---------------------------------------------------------------------------
    def propagate(self) -> None:
        if self.s.var.size:
            self.out_lo, self.out_hi = _propagate(self.s.a, self.s.b, self.s.var.size, self.tol)
            pinned = self.out_hi - self.out_lo <= self.tol
            self.wmin[pinned], self.wmax[pinned] = self.out_lo[pinned], self.out_hi[pinned]
            self.exact_lo |= pinned
            self.exact_hi |= pinned

    # -- 2.-4. check mode -------------------------------------------------------------------------
    def _witness(self, cl: _Classes, z: FloatArray, table: FloatArray | None = None) -> None:
        """Class totals ``z`` let every aggregate range from its inside to its touch total
        (``table``: the cells of that table, when known)."""
        hi = cl.fixed + cl.touch @ z
        lo = cl.fixed + cl.inside @ z
        up, down = hi > self.wmax, lo < self.wmin
        if up.any() or down.any():
            self._tables.append(cl.table(z) if table is None else table)
            self.src_max[up] = self.src_min[down] = len(self._tables) - 1
        self.wmax = np.maximum(self.wmax, hi)
        self.wmin = np.minimum(self.wmin, lo)

    def hint(self, cl: _Classes, tables: FloatArray) -> None:
        """Feasible tables (cells x tables, checked by :func:`feasible_tables`) as witnesses."""
        self.hints_used = int(tables.shape[1])
        if not self.hints_used or not self.s.var.size:
            return
        z = cl.totals(tables)
        best_hi, top = _extremes(cl.touch, cl.touch_id, cl.fixed, z, largest=True)
        best_lo, bottom = _extremes(cl.inside, cl.inside_id, cl.fixed, z, largest=False)
        up, down = top > self.wmax, bottom < self.wmin
        used = np.unique(np.concatenate([best_hi[up], best_lo[down]]))
        at = {int(c): len(self._tables) + n for n, c in enumerate(used)}
        self._tables.extend(tables[:, c] for c in used)
        self.src_max[up] = [at[int(c)] for c in best_hi[up]]
        self.src_min[down] = [at[int(c)] for c in best_lo[down]]
        self.wmax = np.maximum(self.wmax, top)
        self.wmin = np.minimum(self.wmin, bottom)

    def tables(self) -> FloatArray:
        """The tables the inner bounds rest on (cells x tables)."""
        used = np.unique(np.concatenate([self.src_max, self.src_min]))
        used = used[used >= 0]
        if not used.size:
            return np.zeros((0, 0))
        return np.column_stack([self._tables[int(c)] for c in used])

    def check(self, cl: _Classes, *, settle: bool = True) -> None:
        """Witnesses first (the true table), then the unsettled sides exactly, one target per
        component per LP; ``settle=False`` stops after the witnesses."""
        self._witness(cl, cl.z0)
        for up in (True, False) if settle else ():
            while (todo := self._todo(up)).size:
                self._exact(cl, todo, up)

    def _todo(self, up: bool) -> IndexArray:
        up_ok, down_ok = self._settled()
        return np.flatnonzero(~(up_ok if up else down_ok))

    def _exact(self, cl: _Classes, todo: IndexArray, up: bool) -> None:
        """The exact max (``up``) or min of unsettled aggregates: their distinct class sets,
        packed so that no two share a component, optimised in one LP."""
        rows = cl.touch if up else cl.inside
        ids = (cl.touch_id if up else cl.inside_id)[todo]
        comp_of = cl.touch_comp if up else cl.inside_comp
        uniq, first = np.unique(ids, return_index=True)
        order = np.argsort(first)  # in the order the aggregates come
        uniq, first = uniq[order], first[order]
        comps = comp_of[uniq]
        single = comps >= 0
        if single.any():  # one set per component
            _, pick = np.unique(comps[single], return_index=True)
            chosen = uniq[single][np.sort(pick)]
            firsts = first[single][np.sort(pick)]
        else:  # a set spanning several components: alone
            chosen, firsts = uniq[:1], first[:1]
        picked = todo[firsts]
        members = todo[np.isin(ids, chosen)]
        member_ids = (cl.touch_id if up else cl.inside_id)[members]
        targets = {int(k): members[member_ids == k] for k in chosen}
        c = np.asarray(rows[picked].sum(axis=0)).ravel()
        cap = self._cap(cl)
        z = self._optimum(cl, -c if up else c)
        self._witness(cl, z)
        for g in targets.values():
            if up:
                val = cl.fixed[g] + rows[g] @ z
                self.wmax[g] = np.where(val >= cap - self.tol, np.inf, val)
                self.exact_hi[g] = True
            else:
                self.wmin[g] = cl.fixed[g] + rows[g] @ z
                self.exact_lo[g] = True

    def _optimum(self, cl: _Classes, c: FloatArray) -> FloatArray:
        """An optimal ``z`` of ``min c·z, a z = b, 0 <= z <= cap`` from the class model kept
        between solves (each starts from the previous basis: the costs alone change)."""
        self.solves += 1
        n, cap = cl.z0.size, self._cap(cl)
        if cl.a.shape[0] == 0:  # no published margin holds an unknown: each at its bound
            return np.where(c < 0, cap, 0.0)
        if self._lp is None:
            self._lp = WarmLP(cl.a, cl.b, cl.b, np.zeros(n), np.full(n, cap), primal=True)
        self._lp.set_costs(c)
        try:
            sol = self._lp.solve()
        except SolverFailed as exc:
            raise AuditError(f"the audit LP failed ({exc})") from exc
        if sol.x is None:
            raise AuditError(f"the audit LP failed ({sol.status})")
        return np.clip(sol.x, 0.0, cap)

    def _cap(self, cl: _Classes) -> float:
        # A class total this large is reported as unbounded: a bounded class total is at most
        # the largest published margin containing it.
        return 4.0 * (float(np.abs(cl.b).sum()) + float(cl.z0.sum())) + 1e6

    # -- 5. exact mode ----------------------------------------------------------------------------
    def exact(self, cl: _Classes) -> None:
        self._witness(cl, cl.z0)
        for up in (True, False):
            while True:
                if up:
                    self.exact_hi |= self.wmax >= self.out_hi - self.tol
                    todo = np.flatnonzero(~self.exact_hi)
                else:
                    self.exact_lo |= self.wmin <= self.out_lo + self.tol
                    todo = np.flatnonzero(~self.exact_lo)
                if todo.size == 0:
                    break
                self._exact(cl, todo, up)

    # -- report -----------------------------------------------------------------------------------
    def report(self, table: HierarchicalTable, rule: ProtectionRule, seconds: float) -> AuditReport:
        t = self.tol
        fail_hi, fail_lo, fail_w = self._fails()
        # shown: the exact optimum, else the outer bound that proves a failure, else the witness
        # that proves the side safe
        upper = np.where(self.exact_hi | ~fail_hi, self.wmax, self.out_hi)
        lower = np.where(self.exact_lo | ~fail_lo, self.wmin, self.out_lo)
        upper = np.where(fail_w & ~self.exact_hi, self.out_hi, upper)
        lower = np.where(fail_w & ~self.exact_lo, self.out_lo, lower)
        bounds: list[Bounds] = []
        findings: list[Finding] = []
        for j, i in enumerate(self.s.var):
            lo, hi = max(0.0, float(lower[j])), float(upper[j])
            bnd = Bounds(
                index=int(i),
                key=table.key(int(i)),
                value=int(table.values[i]),
                sensitive=bool(self.sens[j]),
                lower=lo,
                upper=hi,
                exact=bool(self.exact_lo[j] and self.exact_hi[j]),
            )
            bounds.append(bnd)
            reason = None
            if hi - lo <= t:
                reason = PINNED
            elif fail_hi[j]:
                reason = UPPER
            elif fail_lo[j]:
                reason = LOWER
            elif fail_w[j] or hi - lo < rule.width - t:
                reason = WIDTH
            if reason is not None:
                findings.append(Finding(bnd, reason))
        return AuditReport(
            stream=table.stream,
            rule=rule,
            bounds=tuple(bounds),
            findings=tuple(findings),
            lp_solves=self.solves,
            components=self.components,
            seconds=round(seconds, 6),
            tables=self.tables(),
            hints_used=self.hints_used,
        )


def _extremes(
    rows: sp.csr_matrix, set_id: IndexArray, fixed: FloatArray, z: FloatArray, *, largest: bool
) -> tuple[IndexArray, FloatArray]:
    """Per row of ``fixed[:, None] + rows @ z`` (aggregates x tables): the first column at its
    largest (``largest``) or smallest value, and that value. Rows with the same class set
    (``set_id``) and the same ``fixed`` have the same values, column by column (the same sums in
    the same order): each such pair is computed once (on the four-way table about half of the
    rows for the largest values, a fifth for the smallest), and gives exactly what the whole
    matrix would."""
    pairs = np.rec.fromarrays([set_id, fixed])
    _, first, back = np.unique(pairs, return_index=True, return_inverse=True)
    values = fixed[first][:, None] + np.asarray(rows[first] @ z)
    best = values.argmax(axis=1) if largest else values.argmin(axis=1)
    value = values[np.arange(first.size), best]
    back = np.asarray(back, dtype=np.int64).ravel()
    return np.asarray(best[back], dtype=np.int64), np.asarray(value[back], dtype=np.float64)


def _set_ids(rows: sp.csr_matrix, comp: IndexArray) -> tuple[IndexArray, IndexArray]:
    """An id per row's set of columns (equal sets, equal ids) and, per id, the one component
    of its columns (-1 if several; an empty set counts as its own component)."""
    n = rows.shape[0]
    # per row, the one component of its columns (-1: several, -2: none), by the least and the
    # greatest component over each row's segment (empty rows have none and are left out)
    row_comp = np.full(n, -2, dtype=np.int64)
    lens = np.diff(rows.indptr)
    full = np.flatnonzero(lens > 0)
    if full.size:
        of_entry = np.asarray(comp, dtype=np.int64)[rows.indices[: rows.indptr[-1]]]
        starts = rows.indptr[full]
        least = np.minimum.reduceat(of_entry, starts)
        most = np.maximum.reduceat(of_entry, starts)
        row_comp[full] = np.where(least == most, least, -1)
    seen: dict[bytes, int] = {}
    ids = np.empty(n, dtype=np.int64)
    comps: list[int] = []
    indptr, indices = rows.indptr, rows.indices
    for r in range(n):
        key = indices[indptr[r] : indptr[r + 1]].tobytes()
        at = seen.get(key)
        if at is None:
            at = seen[key] = len(seen)
            comps.append(int(row_comp[r]))
        ids[r] = at
    out = np.asarray(comps, dtype=np.int64)
    # empty sets: each its own pseudo-component, after the real ones
    empty = np.flatnonzero(out == -2)
    out[empty] = (comp.max() + 1 if comp.size else 0) + np.arange(empty.size)
    return ids, out


def _propagate(
    a: sp.csr_matrix, b: FloatArray, n: int, tol: float, rounds: int = 50
) -> tuple[FloatArray, FloatArray]:
    """Outer bounds of every column from a x = b, x >= 0 by interval propagation."""
    lo, hi = np.zeros(n), np.full(n, np.inf)
    coo = a.tocoo()
    r, j, v = coo.row, coo.col, coo.data
    m = a.shape[0]
    for _ in range(rounds):
        fin_hi = np.where(np.isinf(hi[j]), 0.0, hi[j])
        cmin = np.where(v > 0, v * lo[j], v * fin_hi)
        cmax = np.where(v > 0, v * fin_hi, v * lo[j])
        inf_min = (v < 0) & np.isinf(hi[j])  # term unbounded below
        inf_max = (v > 0) & np.isinf(hi[j])  # term unbounded above
        sum_min = np.bincount(r, cmin, minlength=m)
        sum_max = np.bincount(r, cmax, minlength=m)
        n_inf_min = np.bincount(r, inf_min, minlength=m)
        n_inf_max = np.bincount(r, inf_max, minlength=m)
        # the other terms' least and greatest sum, for every entry
        o_min = sum_min[r] - cmin
        o_max = sum_max[r] - cmax
        o_min_inf = (n_inf_min[r] - inf_min) > 0
        o_max_inf = (n_inf_max[r] - inf_max) > 0
        # v x_j = b - others: its upper bound uses the others' least sum, its lower the greatest
        up_vx = np.where(o_min_inf, np.inf, b[r] - o_min)
        lo_vx = np.where(o_max_inf, -np.inf, b[r] - o_max)
        new_hi = np.where(v > 0, up_vx / v, lo_vx / v)
        new_lo = np.where(v > 0, lo_vx / v, up_vx / v)
        hi2 = hi.copy()
        lo2 = lo.copy()
        np.minimum.at(hi2, j, new_hi)
        np.maximum.at(lo2, j, new_lo)
        lo2 = np.minimum(np.maximum(lo2, 0.0), hi2)
        changed = bool(np.any(hi2 < hi - tol) or np.any(lo2 > lo + tol))
        lo, hi = lo2, hi2
        if not changed:
            break
    return lo, hi
