"""What a resolver remembers between batches (placements, the blocking index) never outlives
the store: another process linking meanwhile, or a batch that did not commit, empties it."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date

import pytest
from sqlalchemy import Connection

from trust.follow import follow
from trust.linkage.resolver import RESOLVER, Resolver
from trust.store.eventstore import EventStore

from ..store.builders import retracted
from .test_resolver import Trust, ids

ANA = ids(dob=date(1990, 5, 17))


def _other_process(trust: Trust) -> Resolver:
    """A second resolver over the same store and vault, as another trust process would hold."""
    counter = itertools.count(1)
    return Resolver(trust.vault, trust.resolver.linker, person_ids=lambda: f"Q-{next(counter)}")


def test_a_resolver_sees_what_another_process_linked_meanwhile(store: EventStore) -> None:
    trust = Trust(store)
    trust.accept("police", "C1", [("v1", "Feminine", ANA)])
    trust.link()  # this process now remembers the police record, its person and its digests
    assert trust.resolver.memory.person
    other = _other_process(trust)
    trust.append(retracted("police", "C1"))
    trust.accept("ngo", "N1", [("v1", "Feminine", ANA)])
    follow(store, other)  # the police record left its person; the NGO's is a new person
    ngo = trust.person("ngo", "N1")
    assert ngo is not None and trust.person("police", "C1") is None
    trust.accept("nrm", "R1", [("v1", "Feminine", ANA)])
    trust.link()
    # joined through the NGO's record, which only the store knew of: not the emptied person of
    # the retracted record, which this process remembered
    assert trust.person("nrm", "R1") == ngo
    assert trust.persons() == 1


def test_a_batch_that_did_not_commit_leaves_nothing_remembered(store: EventStore) -> None:
    trust = Trust(store)
    trust.accept("police", "C1", [("v1", "Feminine", ANA)])
    resolver = trust.resolver
    events = store.read_types(resolver.event_types, 0, store.last_seq())

    def applied_then_failed(conn: Connection) -> None:
        resolver.apply(conn, events)
        raise RuntimeError("the transaction fails after linkage decided")

    with pytest.raises(RuntimeError):
        store.advance_follower(RESOLVER, 0, store.last_seq(), applied_then_failed, "1")
    assert trust.person("police", "C1") is None  # nothing of it was committed
    trust.link()
    assert trust.person("police", "C1") is not None  # decided again, not taken as known
    trust.accept("ngo", "N1", [("v1", "Feminine", ANA)])
    trust.link()
    assert trust.person("ngo", "N1") == trust.person("police", "C1")


def test_a_failing_batch_empties_the_memory(store: EventStore) -> None:
    trust = Trust(store)
    trust.accept("police", "C1", [("v1", "Feminine", ANA)])
    trust.link()
    assert trust.resolver.memory.person
    trust.accept("ngo", "N1", [("v1", "Feminine", ANA)])
    after = store.follower_state(RESOLVER).last_seq
    ((seq, event),) = store.read_types(trust.resolver.event_types, after, store.last_seq())
    blob = event.sealed_identifiers["v1"]
    damaged = dataclasses.replace(
        event,
        sealed_identifiers={"v1": dataclasses.replace(blob, ciphertext=blob.ciphertext[::-1])},
    )

    def failing(conn: Connection) -> None:
        trust.resolver.apply(conn, [(seq, damaged)])  # its identifiers do not open

    with pytest.raises(Exception):  # noqa: B017 - whatever the failure, the memory goes
        store.advance_follower(RESOLVER, after, store.last_seq(), failing, "1")
    assert not trust.resolver.memory.person and trust.resolver.memory.seen is None
