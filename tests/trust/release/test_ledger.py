"""The privacy-budget ledger: charges add up per consumer and source, the strictest source
limits, and a refused charge writes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from trust.release.disclosure.dp import PrivacyCost
from trust.release.ledger import BudgetExhausted, Ledger, NoPrivacyBudget
from trust.stewardship.agreement import PrivacyBudget
from trust.store.db import writer
from trust.store.eventstore import EventStore

BUDGETS = (("police", PrivacyBudget(1.0)), ("ngo", PrivacyBudget(0.3)))
TENTH = PrivacyCost(0.1)


def charge(
    store: EventStore,
    n: int,
    consumer: str = "ministry",
    budgets: tuple[tuple[str, PrivacyBudget | None], ...] = BUDGETS,
) -> None:
    with writer(store.engine).begin() as conn:
        Ledger.charge(
            conn,
            consumer=consumer,
            budgets=budgets,
            cost=TENTH,
            release_id=f"r{consumer}{n}",
            stream="s",
            sequence=n,
            at_ms=n,
        )


def test_the_strictest_source_limits_and_a_refusal_writes_nothing(store: EventStore) -> None:
    for n in range(3):  # 0.1 three times is 0.3 within float rounding
        charge(store, n)
    with pytest.raises(BudgetExhausted, match="ngo") as info:
        charge(store, 3)
    assert info.value.code == "privacy_budget_exhausted" and "police" not in str(info.value)
    with store.engine.connect() as conn:
        spent = Ledger.spent(conn, "ministry", ["police", "ngo"])
        assert spent["police"].epsilon == pytest.approx(0.3)
        # the police alone still has budget for this consumer; another consumer has all of it
        state = Ledger.check(conn, "ministry", BUDGETS[:1], TENTH)
        assert state.epsilon_remaining == pytest.approx(0.6)
        assert Ledger.check(conn, "press", BUDGETS, TENTH).epsilon_spent == pytest.approx(0.1)


def test_a_source_without_a_budget_refuses(store: EventStore) -> None:
    with pytest.raises(NoPrivacyBudget, match="court"):
        charge(store, 1, budgets=(("court", None), *BUDGETS))
    with store.engine.connect() as conn:
        assert Ledger.spent(conn, "ministry", ["police"])["police"] == PrivacyCost(0.0, 0.0)
