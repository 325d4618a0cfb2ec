"""The ingest worker loop: poll → process → append (events + source positions + the vault's new
person keys, one transaction) → commit offsets.

Exactly-once effects on an at-least-once log: the store writes each message's effect together
with its (topic, partition, offset); on start the worker seeks to the store's positions, not the
broker's, so a message whose effect was committed is never processed again, and one whose effect
was not is processed again from scratch. Event ids, scoped by the source that signed them, dedupe
what a producer sent twice. Offsets go to the broker only after the store commit (for lag
monitoring; correctness never rests on them).

**Nothing about one message can stop the worker.** Whatever fails while handling one message —
a contract error, a topic that names no valid source, an oversized field, a clash with what the
store holds, an unexpected error in a step — becomes a ``MessageRejected`` event with a reason code
at that message's position (the quarantine; a receipt follows where the source is known), and the
worker moves on. Only a failure of the store or the log themselves stops it, losing nothing.

Receipts are not sent from here: :class:`trust.ingest.receipts.ReceiptPublisher` follows the store.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from schemas.errors import ReasonCode
from transport import EventLog, LogConsumer, LogRecord, topics
from trust.ingest.pipeline import IngestPipeline, Outcome, Rejection
from trust.store.errors import DuplicateEvent
from trust.store.events import Event, MessageRejected
from trust.store.eventstore import EventStore, PositionLike
from trust.store.vault import KeysTaken

INGEST_CONSUMER = "trust-ingest"
_SEAL_ATTEMPTS = 3  # a batch whose new keys another writer took meanwhile is sealed again

log = logging.getLogger(__name__)


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


def _is_message_fault(exc: BaseException) -> bool:
    """Whether a store error was caused by the data of the message being written (so it is that
    message's fault), rather than by the database itself (which must stop the worker): a
    constraint or data error, or a value the driver refused before it reached the database (e.g.
    psycopg and a NUL byte). Anything else — a full disk, a lock, a lost connection — is the
    store's."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _store_reason(exc: BaseException) -> Rejection:
    if isinstance(exc, IntegrityError):
        return Rejection(
            ReasonCode.CONFLICTING_IDENTITY, None, "conflicts with records the trust holds"
        )
    return Rejection(
        ReasonCode.PROCESSING_FAILED, None, f"the store refused it ({type(exc).__name__})"
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
        # every topic with the inbound prefix is read, whether or not its name is a valid source
        # id: a message on an invalid topic is rejected (and quarantined), never a reason to stop
        self._topics = self.log.list_topics(topics.INBOUND_PREFIX)
        self._consumer = self.log.consumer(INGEST_CONSUMER, self._topics)
        # the store's positions are the truth: every partition resumes there, or at 0 if this
        # store never read it (whatever the broker's committed offsets say)
        stored = self.store.positions(INGEST_CONSUMER)
        for topic in self._topics:
            for partition in range(self.log.partitions(topic)):
                self._consumer.seek(topic, partition, stored.get((topic, partition), 0))

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
        for attempt in range(_SEAL_ATTEMPTS):
            # the new persons' keys are written in the append transaction, not one of their own
            outcomes = self.pipeline.process_batch(records, defer_keys=True)
            try:
                stored = self._store(outcomes)
                break
            except KeysTaken:
                # another writer made (or shredded) one of these keys meanwhile: seal again
                self.pipeline.vault.discard_pending()
                if attempt == _SEAL_ATTEMPTS - 1:
                    raise
            except BaseException:
                self.pipeline.vault.discard_pending()
                raise
        for o in stored:
            if o.accepted is not None:
                stats.accepted += 1
            else:
                assert o.rejection is not None
                stats.rejected[o.rejection.reason.value] += 1
                log.info(
                    "ingest.rejected reason=%s topic=%s partition=%d offset=%d",
                    o.rejection.reason.value,
                    o.delivery.topic,
                    o.delivery.partition,
                    o.delivery.offset,
                )
        self._consumer.commit(_next_offsets(records))
        stats.messages = len(records)
        stats.batches = 1
        log.info(
            "ingest.batch messages=%d accepted=%d rejected=%d",
            stats.messages,
            stats.accepted,
            sum(stats.rejected.values()),
        )
        return stats

    def _store(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Append every outcome with its position in one transaction — an event id its source
        already had accepted (in the store or earlier in this batch) stored as that message's
        rejection instead, found by the append's own query; if the store refuses the batch
        because of one message's data, append them one by one and turn each refused one into a
        rejection at its position. Returns the outcomes as finally stored."""
        now = int(self.clock() * 1000)
        duplicates: list[int] = []

        def refuse(i: int) -> list[Event]:
            duplicates.append(i)
            return self._item(_duplicate(outcomes[i]), now)[0]

        try:
            self._append([self._item(o, now) for o in outcomes], on_duplicate=refuse)
            stored = list(outcomes)
            for i in duplicates:
                stored[i] = _duplicate(outcomes[i])
            return stored
        except DuplicateEvent:
            pass  # another writer accepted one of these ids meanwhile: settle them one by one
        except StatementError as exc:
            if not _is_message_fault(exc):
                raise
        stored = []
        for o in outcomes:
            try:
                self._append([self._item(o, now)])
            except DuplicateEvent:
                o = _duplicate(o)
                self._append([self._item(o, now)])
            except StatementError as exc:
                if not _is_message_fault(exc):
                    raise
                o = _rejected(o, _store_reason(exc))
                self._append([self._item(o, now)])
            stored.append(o)
        return stored

    def _append(
        self,
        items: Sequence[tuple[list[Event], PositionLike]],
        on_duplicate: Callable[[int], Sequence[Event]] | None = None,
    ) -> None:
        """One append, with the vault's new keys written in its transaction."""
        vault = self.pipeline.vault
        self.store.append_batch(
            items, INGEST_CONSUMER, on_duplicate=on_duplicate, effect=vault.write_pending_in
        )
        vault.keep_pending()

    @staticmethod
    def _item(o: Outcome, now_ms: int) -> tuple[list[Event], PositionLike]:
        pos = o.delivery  # where the message was read is its position (no copy per message)
        if o.accepted is not None:
            return [o.accepted], pos
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
            now_ms,
        )
        return [ev], pos


def _rejected(o: Outcome, rejection: Rejection) -> Outcome:
    return Outcome(o.delivery, o.source_id, o.event_id, rejection=rejection)


def _duplicate(o: Outcome) -> Outcome:
    """``o`` refused: its source already had an event with this id accepted. Another source's
    ids are another namespace: they never collide."""
    return _rejected(o, Rejection(ReasonCode.DUPLICATE_EVENT, None, "event id already accepted"))


def _next_offsets(records: Sequence[LogRecord]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        out[key] = max(out.get(key, 0), r.offset + 1)
    return out
