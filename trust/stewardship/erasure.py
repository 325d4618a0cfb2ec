"""Erasure: a consent withdrawal or a disposal destroys the person's data key (crypto-shredding).

A follower of the store (:class:`Erasure`). For each ``ConsentWithdrawn`` (any scope: the trust
keeps a person's identifiers only to link their records, and a withdrawal ends that) and each
``DisposalRequested`` (one victim, or every victim of the case), it shreds the persons' keys in
the same transaction that records its position, so each erasure happens exactly once. From then
on the person's sealed identifiers — in the append-only store, in every copy of it — cannot be
opened, and the vault refuses to seal anything new for them. The other victims of the case keep
their own keys and stay readable.

A shred makes a KEK rotation due (``trust.store.vault``: older copies of a wrapped key open
while the KEK that wrapped them exists); the trust runs :func:`trust.store.vault.rotate_if_due`
after following, and at start-up, so a crash between the shred and the rotation only delays it.

A withdrawal or disposal that arrives before its case is kept (``proj_erasures``): a victim's
key is shredded at once (a tombstone, so the vault never seals their identifiers when the case
comes), and a whole-case disposal shreds the keys of the case's victims as each version of the
case arrives (this follower reads accepted records too). Linkage removes the person's blocking
digests and compared fields itself (``trust.linkage.resolver``).

Not yet erased here (its own step): the inbound log's envelopes (sealed to the trust's HPKE key).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, select

from trust.follow import Batch
from trust.store.events import ConsentWithdrawn, DisposalRequested, RecordAccepted
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
        arrived = {(ev.source_id, ev.case_id) for _, ev in events if isinstance(ev, RecordAccepted)}
        victims |= erased_victims(conn, arrived)  # erased before (part of) the case arrived
        for _, ev in events:
            if isinstance(ev, ConsentWithdrawn):
                victims.add((ev.source_id, ev.case_id, ev.victim_id))
            elif isinstance(ev, DisposalRequested):
                if ev.victim_id is not None:
                    victims.add((ev.source_id, ev.case_id, ev.victim_id))
                else:
                    p = _persons.c
                    rows = conn.execute(
                        select(p.victim_id).where(
                            p.source_id == ev.source_id, p.case_id == ev.case_id
                        )
                    ).scalars()
                    victims.update((ev.source_id, ev.case_id, v) for v in rows)
        shredded = self.vault.shred_in(conn, (self.vault.person_key_id(*v) for v in victims))
        if victims:
            log.info("erasure.shredded persons=%d keys=%d", len(victims), len(shredded))

    def clear(self, conn: Connection) -> None:
        """Nothing to empty: a shredded key stays shredded (a rebuild never revives a person)."""
