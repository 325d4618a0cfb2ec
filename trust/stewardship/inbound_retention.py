"""Inbound retention: the trust deletes the envelopes it took in from its inbound log.

Every envelope on ``tip.inbound.<source>`` is sealed to the trust's key, so as long as the log
keeps it, the trust's key opens it — including the record of a person erased since. The store
holds what the trust accepted (minimised, identifiers sealed under per-person keys that an
erasure shreds); the envelope is needed only to take it in, and for a while after, so an
operator can look into a refusal. So, at most once per interval, for each inbound partition:

- the cut is after the last message the trust took in (accepted or refused: its stored event
  names its offset) at least the source's ``envelope_retention_days`` ago (agreement format 6;
  the agreement in force, else the latest held, else the default of 7 days), and never beyond
  what the ingest consumer has committed;
- everything below the cut is deleted (also when the trust's run stops, whatever the interval) (:meth:`transport.EventLog.delete_before`: on the
  embedded log the bytes are zeroed in the file and its WAL; on Kafka, DeleteRecords), and an
  ``InboundDeleted`` event records it for the audit log.

An erasure is thus final on the log once its source's envelope retention has passed. A broker
that cannot delete records (Tansu) is reported once as a warning: bound the inbound topics'
``retention.ms`` there instead. Messages the trust never took in are never deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import func, select

from transport import DeleteUnsupported, EventLog
from transport.topics import source_of_inbound
from trust.ingest.worker import INGEST_CONSUMER
from trust.schedule import Every
from trust.stewardship.agreement import DEFAULT_ENVELOPE_RETENTION_DAYS, Agreements
from trust.stewardship.retention import terms
from trust.store.events import InboundDeleted, new_event_id
from trust.store.eventstore import EventStore
from trust.store.tables import stored_events

__all__ = ["INBOUND_RETENTION", "InboundRetention"]

INBOUND_RETENTION = "trust-inbound-retention"
"""The store consumer name its events are appended under."""

_DAY_MS = 86_400_000

log = logging.getLogger(__name__)


class InboundRetention:
    """Deletes envelopes taken in and past their source's retention from the inbound log, at
    most once per ``every_s`` (the trust's runner calls it after its followers)."""

    def __init__(
        self,
        event_log: EventLog,
        store: EventStore,
        agreements: Callable[[], Agreements],
        *,
        every_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.event_log = event_log
        self.store = store
        self.agreements = agreements
        self.every = Every(every_s, clock)
        self._cut: dict[tuple[str, int], int] = {}
        self.unsupported = False

    def retention_days(self, source_id: str, now_ms: int) -> int:
        a = terms(self.agreements(), source_id, now_ms)
        return DEFAULT_ENVELOPE_RETENTION_DAYS if a is None else a.envelope_retention_days

    def __call__(self) -> dict[tuple[str, int], int]:
        """Delete what is due, at most once per interval; returns the new earliest offset of
        each partition it cut."""
        return self.run_now() if self.every.due() else {}

    def run_now(self) -> dict[tuple[str, int], int]:
        """Delete what is due now, whenever it last ran (the runner calls it when it stops, so
        a run that took an export in leaves no envelope its source keeps for 0 days)."""
        self.every.ran()
        if self.unsupported:
            return {}
        now_ms = int(self.every.clock() * 1000)
        done: dict[tuple[str, int], int] = {}
        for (topic, partition), committed in sorted(self.store.positions(INGEST_CONSUMER).items()):
            try:
                source = source_of_inbound(topic)
            except ValueError:
                continue
            cutoff = now_ms - self.retention_days(source, now_ms) * _DAY_MS
            cut = self._cut_below(topic, partition, committed, cutoff)
            if cut is None or cut <= self._cut.get((topic, partition), 0):
                continue
            try:
                low = self.event_log.delete_before(topic, partition, cut)
            except DeleteUnsupported as exc:
                self.unsupported = True
                log.warning(
                    "the inbound log cannot delete records (%s): envelopes stay until the "
                    "topics' own retention (set retention.ms on tip.inbound.*)",
                    exc.code,
                )
                return done
            self._cut[(topic, partition)] = low
            done[(topic, partition)] = low
            self.store.append(
                [InboundDeleted(new_event_id(), topic, partition, low, now_ms)],
                None,
                INBOUND_RETENTION,
            )
        return done

    def _cut_below(self, topic: str, partition: int, committed: int, cutoff_ms: int) -> int | None:
        """One past the last offset taken in at or before ``cutoff_ms`` (None: nothing yet)."""
        e = stored_events.c
        with self.store.engine.connect() as conn:
            last = conn.execute(
                select(func.max(e.offset)).where(
                    e.topic == topic,
                    e.partition == partition,
                    e.recorded_at_ms <= cutoff_ms,
                    e.offset < committed,
                )
            ).scalar()
        return None if last is None else int(last) + 1
