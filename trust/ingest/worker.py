"""The ingest worker loop: poll → process → append (events + source positions, one transaction)
→ receipts → commit offsets.

Exactly-once effects on an at-least-once log: the store writes each message's effect together
with its (topic, partition, offset); on start the worker seeks to the store's positions, not the
broker's, so a message whose effect was committed is never processed again, and one whose effect
was not is processed again from scratch. Event ids dedupe what a producer sent twice. Offsets go to
the broker only after the store commit (for lag monitoring; correctness never rests on them).

Receipts for rejections go to ``tip.rejected.<source>`` after the store commit; a receipt cursor in
the store (advanced after the log acknowledged them) lets a restarted worker resend any that a
crash cut off.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemas.codec import default_registry
from schemas.errors import ReasonCode
from transport import EventLog, LogConsumer, LogRecord, topics
from trust.ingest.pipeline import IngestPipeline, Outcome, Rejection
from trust.store.events import Event, MessageRejected
from trust.store.eventstore import EventStore, Position

INGEST_CONSUMER = "trust-ingest"
RECEIPT_CURSOR = "trust-receipts"
_CURSOR_TOPIC = "stored_events"

_RECEIPT = default_registry().current("receipt")


@dataclass
class IngestStats:
    messages: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    caught_up: bool = False

    def add(self, other: IngestStats) -> None:
        self.messages += other.messages
        self.accepted += other.accepted
        self.rejected.update(other.rejected)
        self.batches += other.batches


def receipt_bytes(ev: MessageRejected) -> bytes:
    return _RECEIPT.encode(
        {
            "source_id": ev.source_id,
            "event_id": ev.event_id,
            "reason": ev.reason,
            "field_path": ev.field_path,
            "detail": ev.detail,
            "topic": ev.topic,
            "partition": ev.partition,
            "offset": ev.offset,
            "received_at": ev.received_at_ms,
        }
    )


class IngestWorker:
    """Consumes every ``tip.inbound.*`` topic into the trust's event store."""

    def __init__(
        self,
        *,
        log: EventLog,
        store: EventStore,
        pipeline: IngestPipeline,
        poll_max: int = 1000,
        poll_timeout: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.store = store
        self.pipeline = pipeline
        self.poll_max = poll_max
        self.poll_timeout = poll_timeout
        self.clock = clock
        self._consumer: LogConsumer | None = None
        self._topics: list[str] = []

    def start(self) -> None:
        self._topics = self.log.list_topics(topics.INBOUND_PREFIX)
        self._consumer = self.log.consumer(INGEST_CONSUMER, self._topics)
        # the store's positions are the truth: every partition resumes there, or at 0 if this
        # store never read it (whatever the broker's committed offsets say)
        stored = self.store.positions(INGEST_CONSUMER)
        for topic in self._topics:
            for partition in range(self.log.partitions(topic)):
                self._consumer.seek(topic, partition, stored.get((topic, partition), 0))
        self._resend_receipts()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def step(self) -> IngestStats:
        """Process one poll's worth of messages; returns what happened."""
        if self._consumer is None:
            self.start()
        assert self._consumer is not None
        stats = IngestStats()
        records = self._consumer.poll(self.poll_max, self.poll_timeout)
        if not records:
            stats.caught_up = self._consumer.at_end()
            return stats
        outcomes = self._dedupe(self.pipeline.process_batch(records))
        now = int(self.clock() * 1000)
        items: list[tuple[list[Event], Position]] = []
        rejected: list[MessageRejected] = []
        for o in outcomes:
            if o.accepted is not None:
                items.append(
                    (
                        [o.accepted],
                        Position(o.delivery.topic, o.delivery.partition, o.delivery.offset),
                    )
                )
                stats.accepted += 1
            else:
                assert o.rejection is not None
                ev = MessageRejected(
                    o.event_id,
                    o.source_id,
                    o.rejection.reason.value,
                    o.rejection.field_path,
                    o.rejection.detail,
                    o.delivery.topic,
                    o.delivery.partition,
                    o.delivery.offset,
                    now,
                )
                rejected.append(ev)
                items.append(
                    ([ev], Position(o.delivery.topic, o.delivery.partition, o.delivery.offset))
                )
                stats.rejected[ev.reason] += 1
        result = self.store.append_batch(items, INGEST_CONSUMER)
        if rejected:
            self._publish_receipts(rejected)
        if result.last_seq is not None:
            self.store.append([], Position(_CURSOR_TOPIC, 0, result.last_seq), RECEIPT_CURSOR)
        self._consumer.commit(_next_offsets(records))
        stats.messages = len(records)
        stats.batches = 1
        return stats

    def _dedupe(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        ids = [o.event_id for o in outcomes if o.accepted is not None and o.event_id is not None]
        known = self.store.accepted_among(ids) if ids else set()
        seen: set[str] = set()
        out: list[Outcome] = []
        for o in outcomes:
            eid = o.event_id
            if o.accepted is not None and eid is not None:
                if eid in known or eid in seen:
                    o = Outcome(
                        o.delivery,
                        o.source_id,
                        o.event_id,
                        rejection=Rejection(
                            ReasonCode.DUPLICATE_EVENT, None, "event id already accepted"
                        ),
                    )
                else:
                    seen.add(eid)
            out.append(o)
        return out

    def _publish_receipts(self, rejected: Sequence[MessageRejected]) -> None:
        for ev in rejected:
            topic = topics.rejected(ev.source_id)
            self.log.append(
                topic, receipt_bytes(ev), key=ev.event_id.encode() if ev.event_id else None
            )
        self.log.flush()

    def _resend_receipts(self) -> None:
        """After a crash: publish receipts for rejections stored after the receipt cursor."""
        cursor = self.store.positions(RECEIPT_CURSOR).get((_CURSOR_TOPIC, 0), 0)
        if cursor >= self.store.last_seq() + 1:
            return
        missed = [
            ev
            for _, ev in self.store.read(after_seq=max(cursor - 1, 0))
            if isinstance(ev, MessageRejected)
        ]
        if missed:
            self._publish_receipts(missed)
        last = self.store.last_seq()
        if last:
            self.store.append([], Position(_CURSOR_TOPIC, 0, last), RECEIPT_CURSOR)


def _next_offsets(records: Sequence[LogRecord]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        out[key] = max(out.get(key, 0), r.offset + 1)
    return out
