"""Erasure notices: when a person's record is erased, the other sources that hold a record
linked with it learn so, on their receipt topic, without personal data.

A consent withdrawal or a disposal at source A unlinks A's record from its person (linkage
records ``RecordUnlinked`` with reason ``consent_withdrawn`` or ``disposed``). Each other source
B whose records are in that person then receives one signed notice per such record on
``tip.rejected.<B>`` (the topic its receipts use): reason ``linked_person_erased``, the event id
and log position of B's own latest accepted version of the case, and the victim's id in the
detail — B's own references, nothing about A, and no value of any record. B's data steward can
then review its own record (the manual's example of a withdrawal at one agency).

The notice is sent once the erasure has been followed (a follower of ``RecordUnlinked``); who
else holds a linked record is read from linkage's projection at that moment, so records that a
re-resolution moved out of the person by then are not told. Sending a notice twice (after a
crash) is harmless: a notice is deterministic in its content and signed with a deterministic
signature.
"""

from __future__ import annotations

from sqlalchemy import select

from schemas.errors import ReasonCode
from schemas.keys import SigningKey
from schemas.receipt import Receipt, sign_receipt
from transport import EventLog, topics
from trust.follow import Batch
from trust.store.events import RecordUnlinked
from trust.store.eventstore import EventStore
from trust.store.tables import proj_person_links, proj_records, stored_events

__all__ = ["ERASED_REASONS", "ERASURE_NOTICES", "ErasureNotices", "notices_for"]

ERASURE_NOTICES = "trust-erasure-notices"

ERASED_REASONS = frozenset({"consent_withdrawn", "disposed"})
"""The unlink reasons that are erasures (a retraction or a new version is not)."""


def notices_for(store: EventStore, ev: RecordUnlinked) -> list[Receipt]:
    """The notices an erasure's unlink gives the other sources of its person (none for an
    unlink that is not an erasure)."""
    if ev.reason not in ERASED_REASONS:
        return []
    links, records, events = proj_person_links.c, proj_records.c, stored_events.c
    query = (
        select(
            links.source_id,
            links.case_id,
            links.victim_id,
            records.event_id,
            events.topic,
            events.partition,
            events.offset,
            events.recorded_at_ms,
        )
        .join(
            proj_records,
            (records.source_id == links.source_id) & (records.case_id == links.case_id),
        )
        .join(
            stored_events,
            (events.source_id == records.source_id) & (events.event_id == records.event_id),
        )
        .where(links.person_id == ev.person_id, links.source_id != ev.victim.source_id)
        .order_by(links.source_id, links.case_id, links.victim_id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Receipt(
            source_id=source,
            event_id=event_id,
            reason=ReasonCode.LINKED_PERSON_ERASED.value,
            field_path=None,
            detail=f"victim {victim}: a record the trust had linked with it was erased",
            topic=topic or "",
            partition=partition or 0,
            offset=offset or 0,
            received_at_ms=recorded or 0,
        )
        for source, _case, victim, event_id, topic, partition, offset, recorded in rows
    ]


class ErasureNotices:
    """Sends the notices of every erasure linkage recorded (a log publisher of the store)."""

    name = ERASURE_NOTICES
    event_types = frozenset({RecordUnlinked.event_type})

    def __init__(self, store: EventStore, log: EventLog, signing_key: SigningKey) -> None:
        self.store = store
        self.log = log
        self._key = signing_key

    def send(self, events: Batch) -> None:
        sent = 0
        for _, ev in events:
            if not isinstance(ev, RecordUnlinked):
                continue
            for notice in notices_for(self.store, ev):
                key = notice.event_id.encode() if notice.event_id else None
                raw = sign_receipt(notice, self._key)
                self.log.append(topics.rejected(notice.source_id), raw, key=key)
                sent += 1
        if sent:
            self.log.flush()
