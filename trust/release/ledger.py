"""The privacy-budget ledger: what differentially private releases spent, per consumer and source.

Each source's agreement may grant a privacy budget (``privacy_budget``: a total ε, and δ). Every
differentially private release charges its ε and δ to **every** source whose persons it counts,
for the consumer it goes to (``privacy_ledger``: one row per consumer, source and release). A
release may be made only if, for every contributing source, what was spent plus the release's cost
stays within the budget — the strictest remaining budget among them limits it. A source whose
agreement grants no budget is in no differentially private release (deny by default).

Budgets never refresh: nothing here empties the ledger or resets a spend, a new agreement version
with a larger budget only raises the limit against the same spend (and says so in its text), and a
rebuild of the projections leaves the ledger alone. The charge is written in the same transaction
as the release's ``ReleaseIssued`` event (:meth:`Ledger.charge`, after the store's append lock), so
a crash never charges without releasing nor releases without charging, and two release stages
cannot both spend the last of a budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from trust.release.disclosure.dp import PrivacyCost
from trust.release.errors import ReleaseError
from trust.stewardship.agreement import PrivacyBudget
from trust.store.tables import privacy_ledger as _ledger

#: Float sums of per-release ε (0.1 ten times) may exceed the exact total by rounding: a spend
#: within this relative tolerance of the budget is within it.
_TOLERANCE = 1e-9


class BudgetRefused(ReleaseError):
    """A differentially private release the ledger refuses (names sources, never a count)."""

    code = "privacy_budget_refused"


class NoPrivacyBudget(BudgetRefused):
    """A contributing source's agreement grants no privacy budget."""

    code = "no_privacy_budget"


class BudgetExhausted(BudgetRefused):
    """The release would spend more than a contributing source's remaining budget."""

    code = "privacy_budget_exhausted"


@dataclass(frozen=True)
class BudgetState:
    """After a release: the most any contributing source has spent for the consumer and the
    least any has left (ε and δ)."""

    epsilon_spent: float
    epsilon_remaining: float
    delta_spent: float
    delta_remaining: float

    def parameters(self) -> dict[str, str]:
        """As stated in the release."""
        return {
            "epsilon_spent": f"{self.epsilon_spent:.6g}",
            "epsilon_remaining": f"{self.epsilon_remaining:.6g}",
            "delta_spent": f"{self.delta_spent:.6g}",
            "delta_remaining": f"{self.delta_remaining:.6g}",
        }


def _within(spent: float, budget: float) -> bool:
    return spent <= budget * (1 + _TOLERANCE) + 1e-15


class Ledger:
    """Reads and charges ``privacy_ledger`` (see the module docstring)."""

    @staticmethod
    def spent(conn: Connection, consumer: str, sources: Sequence[str]) -> dict[str, PrivacyCost]:
        """What ``consumer``'s releases spent of each source's budget so far."""
        t = _ledger.c
        out = {s: PrivacyCost(0.0, 0.0) for s in sources}
        rows = conn.execute(
            select(t.source_id, func.sum(t.epsilon), func.sum(t.delta))
            .where(t.consumer == consumer, t.source_id.in_(list(sources)))
            .group_by(t.source_id)
        )
        for source_id, eps, delta in rows:
            out[source_id] = PrivacyCost(float(eps or 0.0), float(delta or 0.0))
        return out

    @staticmethod
    def charged_sources(conn: Connection, consumer: str, stream: str) -> set[str]:
        """The sources any release of ``stream`` to ``consumer`` was charged to (a continual
        series charges each source once, for the whole series)."""
        t = _ledger.c
        rows = conn.execute(
            select(t.source_id).where(t.consumer == consumer, t.stream == stream).distinct()
        )
        return set(rows.scalars())

    @classmethod
    def check(
        cls,
        conn: Connection,
        consumer: str,
        budgets: Sequence[tuple[str, PrivacyBudget | None]],
        cost: PrivacyCost,
    ) -> BudgetState:
        """The budgets' state after a release of ``cost`` to ``consumer``.

        Raises:
            NoPrivacyBudget: a source's agreement grants no budget.
            BudgetExhausted: the release would exceed a source's remaining budget.
        """
        if not budgets:
            raise NoPrivacyBudget("a differentially private release needs contributing sources")
        missing = sorted(s for s, b in budgets if b is None)
        if missing:
            raise NoPrivacyBudget(
                "not released: the agreement of "
                + ", ".join(missing)
                + " grants no privacy budget for differentially private releases"
            )
        spent = cls.spent(conn, consumer, [s for s, _ in budgets])
        over: list[str] = []
        eps_spent, delta_spent = 0.0, 0.0
        eps_left, delta_left = math.inf, math.inf
        for source, budget in budgets:
            assert budget is not None
            eps = math.fsum([spent[source].epsilon, cost.epsilon])
            delta = math.fsum([spent[source].delta, cost.delta])
            if not (_within(eps, budget.epsilon) and _within(delta, budget.delta)):
                over.append(source)
            eps_spent, delta_spent = max(eps_spent, eps), max(delta_spent, delta)
            eps_left = min(eps_left, max(0.0, budget.epsilon - eps))
            delta_left = min(delta_left, max(0.0, budget.delta - delta))
        if over:
            raise BudgetExhausted(
                f"not released: a release costs epsilon {cost.epsilon:g}, delta {cost.delta:g}, "
                f"more than {consumer}'s remaining privacy budget of "
                + ", ".join(sorted(over))
                + " (budgets never refresh)"
            )
        return BudgetState(eps_spent, eps_left, delta_spent, delta_left)

    @classmethod
    def charge(
        cls,
        conn: Connection,
        *,
        consumer: str,
        budgets: Sequence[tuple[str, PrivacyBudget | None]],
        cost: PrivacyCost,
        release_id: str,
        stream: str,
        sequence: int,
        at_ms: int,
    ) -> BudgetState:
        """Charge one release to every contributing source, inside the caller's writer
        transaction (holding the store's append lock), checking the budgets again first.

        Raises:
            NoPrivacyBudget, BudgetExhausted: as :meth:`check` (nothing is written).
        """
        state = cls.check(conn, consumer, budgets, cost)
        conn.execute(
            _ledger.insert(),
            [
                {
                    "consumer": consumer,
                    "source_id": source,
                    "release_id": release_id,
                    "stream": stream,
                    "sequence": sequence,
                    "epsilon": cost.epsilon,
                    "delta": cost.delta,
                    "recorded_at_ms": at_ms,
                }
                for source, _ in budgets
            ],
        )
        return state
