"""Erasure: a consent withdrawal or a disposal destroys the person's data key (crypto-shredding).

A follower of the store (:class:`Erasure`). For each ``ConsentWithdrawn`` (any scope: the trust
keeps a person's identifiers only to link their records, and a withdrawal ends that) and each
``DisposalRequested`` (one victim, or every victim of the case), it shreds the persons' keys in
the same transaction that records its position, so each erasure happens exactly once. From then
on the person's sealed identifiers — in the append-only store, in every copy of it — cannot be
opened, and the vault refuses to seal anything new for them. The other victims of the case keep
their own keys and stay readable.

Each shred is recorded as a ``PersonKeysShredded`` event (the vault's key ids and the events
that caused it; no personal data), appended in the same transaction, so the audit log holds
every key destruction. A shred makes a KEK rotation due (``trust.store.vault``: older copies of a
wrapped key open while the KEK that wrapped them exists); the trust rotates after following
(``tiptrust.wiring.rotate_kek_if_due``, recorded as ``KekRotated``), so a crash between the
shred and the rotation only delays it.

A withdrawal or disposal that arrives before its case is kept (``proj_erasures``): a victim's
key is shredded at once (a tombstone, so the vault never seals their identifiers when the case
comes), and a whole-case disposal shreds the keys of the case's victims as each version of the
case arrives (this follower reads accepted records too). Linkage removes the person's blocking
digests and compared fields itself (``trust.linkage.resolver``).

The inbound log's envelopes (sealed to the trust's HPKE key, so they would still open) are
deleted by their own step, once past their source's envelope retention
(:mod:`trust.stewardship.inbound_retention`).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Connection, select

from trust.follow import Batch
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    PersonKeysShredded,
    RecordAccepted,
    new_event_id,
)
from trust.store.eventstore import EventStore
from trust.store.projections import by_source
from trust.store.tables import proj_persons as _persons
from trust.store.vault import Vault

ERASURE = "trust-erasure"

log = logging.getLogger(__name__)


def erased_victims(conn: Connection, cases: set[tuple[str, str]]) -> set[tuple[str, str, str]]:
    """The victims of these cases whose consent was withdrawn or who were disposed of."""
    p = _persons.c
    out: set[tuple[str, str, str]] = set()
    for source_id, case_ids in by_source(cases):
        rows = conn.execute(
            select(p.case_id, p.victim_id).where(
                p.source_id == source_id,
                p.case_id.in_(case_ids),
                p.consent_withdrawn | p.disposed,
            )
        ).all()
        out.update((source_id, str(c), str(v)) for c, v in rows)
    return out


class Erasure:
    """Shreds the data keys of persons whose consent was withdrawn or whose data is disposed of
    (a StoreFollower)."""

    name = ERASURE
    event_types = frozenset(
        {ConsentWithdrawn.event_type, DisposalRequested.event_type, RecordAccepted.event_type}
    )
    version = "1"
    reads_records = False

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def apply(self, conn: Connection, events: Batch) -> None:
        victims: set[tuple[str, str, str]] = set()
        causes: dict[str, set[tuple[str, str, str]]] = {}  # event id -> the victims it erases
        for _, ev in events:
            if isinstance(ev, ConsentWithdrawn) or (
                isinstance(ev, DisposalRequested) and ev.victim_id is not None
            ):
                assert ev.victim_id is not None
                causes[ev.event_id] = {(ev.source_id, ev.case_id, ev.victim_id)}
            elif isinstance(ev, DisposalRequested):
                p = _persons.c
                rows = conn.execute(
                    select(p.victim_id).where(p.source_id == ev.source_id, p.case_id == ev.case_id)
                ).scalars()
                causes[ev.event_id] = {(ev.source_id, ev.case_id, v) for v in rows}
        explicit = set().union(*causes.values()) if causes else set()
        arrived = {(ev.source_id, ev.case_id) for _, ev in events if isinstance(ev, RecordAccepted)}
        # erased before (part of) the case arrived: the arrival makes the shred
        before = erased_victims(conn, arrived) - explicit
        for _, ev in events:
            if isinstance(ev, RecordAccepted):
                mine = {v for v in before if v[:2] == (ev.source_id, ev.case_id)}
                if mine:
                    causes[ev.event_id] = mine
        for vs in causes.values():
            victims |= vs
        key_ids = {v: self.vault.person_key_id(*v) for v in victims}
        shredded = set(self.vault.shred_in(conn, key_ids.values()))
        if victims:
            log.info("erasure.shredded persons=%d keys=%d", len(victims), len(shredded))
        if shredded:
            # the destruction is itself recorded (the audit log's key entries): the key ids and
            # what caused it, nothing else
            EventStore.append_in(
                conn,
                [
                    PersonKeysShredded(
                        event_id=new_event_id(),
                        key_ids=sorted(shredded),
                        causes=sorted(
                            e for e, vs in causes.items() if {key_ids[v] for v in vs} & shredded
                        ),
                        shredded_at_ms=time.time_ns() // 1_000_000,
                    )
                ],
            )

    def clear(self, conn: Connection) -> None:
        """Nothing to empty: a shredded key stays shredded (a rebuild never revives a person)."""
