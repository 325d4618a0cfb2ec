"""The interval rule the trust's periodic steps share."""

from __future__ import annotations

import pytest

from trust.schedule import Every


def test_due_at_first_then_once_per_interval_and_out_of_turn_restarts_it() -> None:
    now = [100.0]
    every = Every(60, clock=lambda: now[0])
    assert every.due() and not every.due()
    now[0] += 59.9
    assert not every.due()
    now[0] += 0.1
    assert every.due()
    now[0] += 30
    every.ran()  # ran out of turn: the next is a full interval later
    now[0] += 59
    assert not every.due()
    now[0] += 1
    assert every.due()
    with pytest.raises(ValueError):
        Every(0)
