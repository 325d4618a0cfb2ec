"""A subscription in force for a benchmark's trust, made the way an operator makes one: the
consumer registered as a principal, a custodian asks for it, a trustee approves it (the
two-person rule of ``trust.stewardship.release_review``)."""

from __future__ import annotations

from tiptrust import wiring
from trust.stewardship.principals import Role, add_principal, find
from trust.store.eventstore import EventStore

OPERATOR = "bench-operator"
TRUSTEE = "bench-trustee"


def subscribe(store: EventStore, consumer: str, stream: str, purpose: str) -> None:
    """``consumer`` receives ``stream`` for ``purpose`` from the next release check on."""
    if find(store, consumer) is None:
        add_principal(store, consumer, Role.CONSUMER, added_by=OPERATOR)
    trustee = find(store, TRUSTEE)
    if trustee is None:
        trustee = add_principal(store, TRUSTEE, Role.TRUSTEE, added_by=OPERATOR).principal
    wiring.add_subscription(store, consumer, stream, purpose, OPERATOR)
    wiring.approve_subscription(store, consumer, stream, trustee)
