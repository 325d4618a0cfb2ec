"""What a resolver remembers between batches (placements, the blocking index) never outlives
the store: another process linking meanwhile, or a batch that did not commit, empties it."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date

import pytest
from sqlalchemy import Connection, select

from trust.follow import follow
from trust.linkage.resolver import RESOLVER, Resolver
from trust.store.eventstore import EventStore
from trust.store.tables import link_terms

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


def _stored_terms(store: EventStore) -> dict[tuple[str, str], int]:
    c = link_terms.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.column, c.digest, c.count)).all()
    return {(str(col), str(d)): int(n) for col, d, n in rows}


def test_remembered_name_counts_are_the_stored_ones(store: EventStore) -> None:
    """The name counts a resolver keeps between batches are exactly ``link_terms``: counted in
    and out (a count back at zero has no row), and written, not only remembered."""
    trust = Trust(store)
    trust.accept("police", "C1", [("v1", "Feminine", ANA)])
    trust.link()
    trust.accept("ngo", "N1", [("v1", "Feminine", ANA)])
    trust.accept("nrm", "R1", [("v1", "Masculine", ids("Mihai", "Ionescu"))])
    trust.link()
    trust.append(retracted("nrm", "R1"))  # Mihai Ionescu is counted out: his rows go
    trust.link()
    stored = _stored_terms(store)
    remembered = trust.resolver.memory.terms
    assert stored and all(n > 0 for n in stored.values())
    assert {k: n for k, n in remembered.items() if n} == stored
    # a fresh process reads the same counts from the store, and decides as this one does
    fresh = _other_process(trust)
    trust.resolver = fresh
    trust.accept("nrm", "R2", [("v1", "Feminine", ANA)])
    trust.link()
    assert trust.person("nrm", "R2") == trust.person("ngo", "N1") == trust.person("police", "C1")
    assert {k: n for k, n in fresh.memory.terms.items() if n} == _stored_terms(store)


def test_name_counts_of_a_batch_that_did_not_commit_are_not_kept(store: EventStore) -> None:
    trust = Trust(store)
    trust.accept("police", "C1", [("v1", "Feminine", ANA)])
    trust.link()
    before = _stored_terms(store)
    trust.accept("ngo", "N1", [("v1", "Feminine", ANA)])
    resolver = trust.resolver
    after = store.follower_state(RESOLVER).last_seq
    events = store.read_types(resolver.event_types, after, store.last_seq())

    def applied_then_failed(conn: Connection) -> None:
        resolver.apply(conn, events)  # counts the NGO's record in, in memory and in the table
        raise RuntimeError("the transaction fails after linkage decided")

    with pytest.raises(RuntimeError):
        store.advance_follower(RESOLVER, after, store.last_seq(), applied_then_failed, "1")
    assert _stored_terms(store) == before  # rolled back
    trust.link()  # the memory is emptied (its last batch did not commit), the record counted once
    stored = _stored_terms(store)
    assert {k: n for k, n in resolver.memory.terms.items() if n} == stored
    # both records counted once: each name twice, its column's sum of squares 2^2
    assert stored == {k: 4 if k[1] == "*" else 2 for k in before}
