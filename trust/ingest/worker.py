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

**Several workers, one store.** Workers may run in several processes as members of one consumer
group (``trust-ingest``): on Kafka each holds the partitions the group assigns it, so the CPU-heavy
steps (verify, decrypt, decode, validate, seal) run in parallel, while every append goes through
the store's single-writer lock (see :mod:`trust.store.eventstore`), so seq order stays commit
order. The store's positions fence them: inside its append transaction, under that lock, a worker
checks that each partition of its batch continues exactly where the store's position for it stands.
A message the store already holds (a partition reassigned after a rebalance, read again from the
broker's committed offset; a worker that lost its partitions but still appends) is dropped, never
processed or stored twice; a batch that would leave a hole (a read that starts past the store's
position) is not stored, and its partition is sought back to the store's position. A worker killed
mid-batch loses nothing: its transaction is rolled back and the partition's next owner resumes at
the store's position.

On the embedded SQLite log a group has one member (every consumer reads every partition): run ONE
ingest worker there (the single-writer mode). A second one is still correct — the fence drops
whatever the first stored — but never faster. A SQLite store serialises the writers of any log
with its write lock (``BEGIN IMMEDIATE``); PostgreSQL with an advisory lock.

Receipts are not sent from here: :class:`trust.ingest.receipts.ReceiptPublisher` follows the store.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from schemas.errors import ReasonCode
from transport import EventLog, LogConsumer, LogRecord, TransportError, topics
from trust.ingest.pipeline import IngestPipeline, Outcome, Rejection
from trust.store.db import select_in
from trust.store.errors import DuplicateEvent
from trust.store.events import Event, MessageRejected
from trust.store.eventstore import EventStore, PositionLike
from trust.store.tables import positions as _positions_table
from trust.store.vault import KeysTaken

INGEST_CONSUMER = "trust-ingest"
_SEAL_ATTEMPTS = 3  # a batch whose new keys another writer took meanwhile is sealed again
_FENCE_ATTEMPTS = 5  # a batch another worker stored part of meanwhile is filtered again
_POSITION_COLUMNS = ("topic", "partition", "next_offset")

# a commit the group refused because it is rebalancing: the effects are stored (the store's
# positions are the truth), so this member goes on; the partition's next owner resumes there
_REBALANCE_CODES = frozenset(
    {
        "kafka_illegal_generation",
        "kafka_unknown_member_id",
        "kafka_rebalance_in_progress",
        "kafka_fenced_instance_id",
        "kafka_state",
    }
)

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    caught_up: bool = False

    skipped: int = 0  # polled again but already stored (by this worker or another)

    def add(self, other: IngestStats) -> None:
        self.messages += other.messages
        self.accepted += other.accepted
        self.rejected.update(other.rejected)
        self.batches += other.batches
        self.skipped += other.skipped


class _Moved(Exception):
    """Inside the append: the store's position of a partition of the batch is not where the batch
    continues (another worker stored some of it meanwhile). Nothing was written."""


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


# How often a running worker lists the inbound topics again (seconds): a new agency's first
# messages wait at most this long (a metadata request on Kafka, a query on the embedded log).
TOPIC_REFRESH_S = 5.0


class IngestWorker:
    """Consumes every ``tip.inbound.*`` topic into the trust's event store (topics that appear
    while it runs included: it lists them again every ``topic_refresh_s``)."""

    def __init__(
        self,
        *,
        log: EventLog,
        store: EventStore,
        pipeline: IngestPipeline,
        poll_max: int = 1000,
        poll_timeout: float = 0.2,
        clock: Callable[[], float] = time.time,
        topic_refresh_s: float = TOPIC_REFRESH_S,
    ) -> None:
        self.log = log
        self.store = store
        self.pipeline = pipeline
        self.poll_max = poll_max
        self.poll_timeout = poll_timeout
        self.clock = clock
        self.topic_refresh_s = topic_refresh_s
        self._consumer: LogConsumer | None = None
        self._topics: list[str] = []
        self._listed_at = 0.0  # when the inbound topics were last listed (``clock``)
        # the store's next offset per partition as this worker last saw it (its own appends
        # included): a batch that continues it needs no look at the store before processing
        self._next: dict[tuple[str, int], int] = {}
        # partitions sought back to their stored position after a hole (see _continuing)
        self._sought: dict[tuple[str, int], int] = {}

    def start(self) -> None:
        # every topic with the inbound prefix is read, whether or not its name is a valid source
        # id: a message on an invalid topic is rejected (and quarantined), never a reason to stop
        self._topics = self.log.list_topics(topics.INBOUND_PREFIX)
        self._listed_at = self.clock()
        self._consumer = self.log.consumer(INGEST_CONSUMER, self._topics)
        # the store's positions are the truth: every partition resumes there, or at 0 if this
        # store never read it (whatever the broker's committed offsets say)
        stored = self._next = self.store.positions(INGEST_CONSUMER)
        for topic in self._topics:
            for partition in range(self.log.partitions(topic)):
                self._consumer.seek(topic, partition, stored.get((topic, partition), 0))

    def _refresh_topics(self) -> None:
        """List the inbound topics again: an agency that publishes for the first time while
        the trust runs has a topic this consumer does not read yet. With a new one, the consumer
        starts again over all of them (each partition from the store's position, as at start)."""
        listed = self.log.list_topics(topics.INBOUND_PREFIX)
        self._listed_at = self.clock()
        if set(listed) != set(self._topics):
            log.info("ingest.topics_changed topics=%d was=%d", len(listed), len(self._topics))
            self.close()
            self.start()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def step(self) -> IngestStats:
        """Process one poll's worth of messages; returns what happened."""
        if self._consumer is None:
            self.start()
        elif self.clock() - self._listed_at >= self.topic_refresh_s:
            self._refresh_topics()
        assert self._consumer is not None
        stats = IngestStats()
        polled = self._consumer.poll(self.poll_max, self.poll_timeout)
        if not polled:
            stats.caught_up = self._consumer.at_end()
            return stats
        records, seeks, expect = _continuing(polled, self._next)
        if seeks or len(records) < len(polled):
            # a partition moved to this worker, or another worker stored part of it: the store says
            records, expect = self._unstored(polled)
        stored: list[Outcome] = []
        for fence in range(_FENCE_ATTEMPTS):
            try:
                stored = self._process_and_store(records, expect) if records else []
                break
            except _Moved:
                if fence == _FENCE_ATTEMPTS - 1:
                    raise
                records, expect = self._unstored(polled)
        stats.skipped = len(polled) - len(records)
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
        done = _next_offsets(records)
        for key, offset in done.items():
            self._next[key] = max(self._next.get(key, 0), offset)
        # every record polled kept (the usual case): the same partitions, not walked again
        read = done if len(records) == len(polled) else _next_offsets(polled)
        self._commit({k: self._next[k] for k in read if k in self._next})
        stats.messages = len(records)
        stats.batches = 1 if records else 0
        if polled:
            log.info(
                "ingest.batch messages=%d accepted=%d rejected=%d skipped=%d",
                stats.messages,
                stats.accepted,
                sum(stats.rejected.values()),
                stats.skipped,
            )
        return stats

    def _process_and_store(self, records: Sequence[LogRecord], expect: Expect) -> list[Outcome]:
        for attempt in range(_SEAL_ATTEMPTS):
            # the new persons' keys are written in the append transaction, not one of their own
            outcomes = self.pipeline.process_batch(records, defer_keys=True)
            try:
                return self._store(outcomes, expect)
            except KeysTaken:
                # another writer made (or shredded) one of these keys meanwhile: seal again
                self.pipeline.vault.discard_pending()
                if attempt == _SEAL_ATTEMPTS - 1:
                    raise
            except BaseException:
                self.pipeline.vault.discard_pending()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _unstored(self, polled: Sequence[LogRecord]) -> tuple[list[LogRecord], Expect]:
        """The polled records the store does not hold yet, by its positions read now, and those
        positions; a partition read off its position is sought there (see :func:`_continuing`)."""
        self._next = self.store.positions(INGEST_CONSUMER)
        records, seeks, expect = _continuing(polled, self._next, self._sought)
        for key, offset in expect.items():
            if offset is not None and self._sought.pop(key, None) is not None:
                first = next(r.offset for r in records if (r.topic, r.partition) == key)
                if first > offset:
                    log.warning(
                        "ingest.gap topic=%s partition=%d from=%d to=%d: gone from the log",
                        key[0],
                        key[1],
                        offset,
                        first,
                    )
        assert self._consumer is not None
        for (topic, partition), offset in sorted(seeks.items()):
            log.info("ingest.seek topic=%s partition=%d to=%d", topic, partition, offset)
            self._consumer.seek(topic, partition, offset)
            self._sought[(topic, partition)] = offset
        return records, expect

    def _commit(self, positions: dict[tuple[str, int], int]) -> None:
        """Commit the stored positions to the broker (for lag monitoring and a rebalance's
        starting point; correctness never rests on them)."""
        if not positions:
            return
        assert self._consumer is not None
        try:
            self._consumer.commit(positions)
        except TransportError as exc:
            if exc.code not in _REBALANCE_CODES:
                raise
            log.info("ingest.commit_skipped code=%s", exc.code)

    def _store(self, outcomes: Sequence[Outcome], expect: Expect) -> list[Outcome]:
        """Append every outcome with its position in one transaction — an event id its source
        already had accepted (in the store or earlier in this batch) stored as that message's
        rejection instead, found by the append's own query; if the store refuses the batch
        because of one message's data, append them one by one and turn each refused one into a
        rejection at its position. Returns the outcomes as finally stored.

        Every append checks, under the store's write lock, that the store's positions of the
        batch's partitions are still those it was filtered against, ``expect`` (:class:`_Moved`
        if not, with nothing written)."""
        now = int(self.clock() * 1000)
        duplicates: list[int] = []

        def refuse(i: int) -> list[Event]:
            duplicates.append(i)
            return self._item(_duplicate(outcomes[i]), now)[0]

        try:
            item = self._item
            self._append(
                # an accepted message's item written out (most of a batch); where it was read is
                # its position (no copy per message)
                [
                    ([o.accepted], o.delivery) if o.accepted is not None else item(o, now)
                    for o in outcomes
                ],
                expect,
                on_duplicate=refuse,
            )
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
        position = dict(expect)
        for o in outcomes:
            # one by one, each continues the position the previous one left
            key = (o.delivery.topic, o.delivery.partition)
            at = {key: position[key]}
            position[key] = o.delivery.offset + 1
            try:
                self._append([self._item(o, now)], at)
            except DuplicateEvent:
                o = _duplicate(o)
                self._append([self._item(o, now)], at)
            except StatementError as exc:
                if not _is_message_fault(exc):
                    raise
                o = _rejected(o, _store_reason(exc))
                self._append([self._item(o, now)], at)
            stored.append(o)
        return stored

    def _append(
        self,
        items: Sequence[tuple[list[Event], PositionLike]],
        expect: Expect,
        on_duplicate: Callable[[int], Sequence[Event]] | None = None,
    ) -> None:
        """One append, with the vault's new keys written in its transaction — if the store's
        positions of the batch's partitions are still ``expect`` (:class:`_Moved` if not)."""
        vault = self.pipeline.vault

        def effect(conn: Connection) -> None:
            _check_positions(conn, expect)
            vault.write_pending_in(conn)

        self.store.append_batch(items, INGEST_CONSUMER, on_duplicate=on_duplicate, effect=effect)
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


def _check_positions(conn: Connection, expect: Expect) -> None:
    """Raise :class:`_Moved` unless the store's next offset of each partition in ``expect`` is
    still the one given (None: still none). Runs inside the append, under the store's
    single-writer lock, so no other worker can move a position between check and write."""
    if not expect:
        return
    # through the driver (select_in): a statement SQLAlchemy builds costs more than the query,
    # and this one runs under the lock once per append
    rows = select_in(
        conn,
        _positions_table,
        _POSITION_COLUMNS,
        "topic",
        sorted({k[0] for k in expect}),
        where={"consumer": INGEST_CONSUMER},
    )
    actual = {(topic, partition): int(n) for topic, partition, n in rows}
    for key, offset in expect.items():
        if actual.get(key) != offset:
            raise _Moved(f"{key[0]}[{key[1]}] is at {actual.get(key)}, the batch expected {offset}")


Expect = dict[tuple[str, int], int | None]
"""Per partition of a batch, the store's next offset the batch was filtered against (None: the store
had never read the partition); the append checks, under the store's lock, that it still is."""


def _continuing(
    records: Sequence[LogRecord],
    next_offsets: dict[tuple[str, int], int],
    gaps: dict[tuple[str, int], int] | None = None,
) -> tuple[list[LogRecord], dict[tuple[str, int], int], Expect]:
    """The records that continue each partition's position in ``next_offsets``, in order; where
    to seek the partitions whose reading is off that position; and the positions they were
    filtered against (:data:`Expect`).

    A record below the position is stored already: dropped (and if all of a partition's records
    are, the partition is sought forward to its position, so what lies between is not read only to
    be dropped). At a hole (the partition's records start past its position) they are all dropped
    and the partition is sought back to its position — unless ``gaps`` says it was sought back
    there already and the log still starts past it (the records between are gone from the log):
    then the records are kept. A partition without a position starts at its first record."""
    kept: list[LogRecord] = []
    seeks: dict[tuple[str, int], int] = {}
    expect: Expect = {}
    seen: set[tuple[str, int]] = set()
    holes: set[tuple[str, int]] = set()
    last: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        last[key] = r.offset
        stored = next_offsets.get(key)
        if key not in seen:
            seen.add(key)
            if stored is not None and r.offset > stored and (gaps or {}).get(key) != stored:
                holes.add(key)
                seeks[key] = stored
        if key in holes or (stored is not None and r.offset < stored):
            continue
        kept.append(r)
        expect[key] = stored
    for key, offset in last.items():
        stored = next_offsets.get(key)
        if key not in holes and stored is not None and offset + 1 < stored:
            seeks[key] = stored  # everything read is stored already: on to the position
    return kept, seeks, expect


def _next_offsets(records: Sequence[LogRecord]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        if out.get(key, 0) <= r.offset:
            out[key] = r.offset + 1
    return out
