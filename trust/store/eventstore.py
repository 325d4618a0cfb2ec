"""The trust's append-only event store, with source positions and live projections.

One transaction per append (or per batch of messages) writes: the events, the accepted inbound
event ids (the idempotency key), the consumer's source position, and the projections. So a replay
after a crash either finds everything of a message or nothing of it, and a re-delivered message is
either skipped by position or refused by its event id.

**The single-writer rule.** Followers read the store by ``seq`` and remember the last one they
handled, so seq order must be commit order: were two writers to commit seq 10 before seq 9, a
follower reading in between would pass 10 and never see 9. Every append therefore holds the store's
write lock from before it takes its seqs until it commits (:func:`trust.store.db.serialise_appends`:
on SQLite the writer transaction's ``BEGIN IMMEDIATE``, on PostgreSQL a transaction-scoped advisory
lock), whichever process it runs in. Several ingest workers (one per partition of a consumer group,
:mod:`trust.ingest.worker`) do their CPU-heavy work in parallel and take this lock in turn for their
appends only; each checks, under the lock, that the store's source positions are where its batch
continues, so two workers never store one message twice. On a SQLite file the appenders also queue
on an OS file lock beside it (``<store>-append.lock``) before ``BEGIN IMMEDIATE``: the kernel wakes
the next one as the lock is released, where SQLite's busy handler would poll with back-off sleeps.
The database lock stays the rule; the file lock only orders appenders among themselves.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.exc import IntegrityError

from schemas.errors import Delivery
from trust.store import projections
from trust.store.db import (
    dialect_insert,
    insert_values,
    make_engine,
    migrate,
    param_mark,
    select_in,
    serialise_appends,
    upsert_increasing,
    writer,
)
from trust.store.errors import DuplicateEvent
from trust.store.events import Event
from trust.store.stored import EVENT_COLUMNS, event_values, read_page
from trust.store.tables import accepted_event_ids as _accepted
from trust.store.tables import follower_positions as _followers
from trust.store.tables import positions as _positions
from trust.store.tables import proj_rejections as _rejections
from trust.store.tables import stored_events as _events

_EVENT_INSERT = (*EVENT_COLUMNS, "seq")  # an event row's values, then its seq
_ACCEPTED_COLUMNS = ("source_id", "event_id", "seq")
_POSITION_KEY = ("consumer", "topic", "partition")

AcceptedKey = tuple[str, str]
"""An accepted inbound event's identity: (the source that signed it, its event id)."""


def _accepted_key(event: Event) -> AcceptedKey | None:
    if event.accepted and event.event_id is not None and event.source_id is not None:
        return (event.source_id, event.event_id)
    return None


def _where(pos: PositionLike | None) -> tuple[str | None, int | None, int | None]:
    return (None, None, None) if pos is None else (pos.topic, pos.partition, pos.offset)


def _delivery(item: tuple[Sequence[Event], PositionLike | None]) -> Delivery | None:
    pos = item[1]
    return None if pos is None else Delivery(pos.topic, pos.partition, pos.offset)


def _refuse_repeats(
    items: Sequence[tuple[Sequence[Event], PositionLike | None]], keys: Sequence[list[AcceptedKey]]
) -> None:
    """Raise :class:`DuplicateEvent` for an inbound id that repeats within one append."""
    seen: set[AcceptedKey] = set()
    for item, ks in zip(items, keys, strict=True):
        for key in ks:
            if key in seen:
                raise DuplicateEvent(
                    "event id repeats within the append", event_id=key[1], delivery=_delivery(item)
                )
            seen.add(key)


class PositionLike(Protocol):
    """Where a message was read: :class:`Position`, or ``schemas.errors.Delivery``."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Position:
    """The source position of the message that produced some events."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The store sequence numbers given to the appended events, in order."""

    seqs: tuple[int, ...]

    @property
    def last_seq(self) -> int | None:
        return self.seqs[-1] if self.seqs else None


@dataclass(frozen=True, slots=True)
class FollowerState:
    """A follower's tracked position and the version of it that built its tables."""

    last_seq: int
    version: str


@dataclass(frozen=True, slots=True)
class FollowView:
    """What a follower needs to start a :func:`trust.follow.follow`, read in one short
    transaction: where it stands, the store's end, and its first page of events after where it
    stands, up to that end (None: not read, when it stands at 0 or at the end)."""

    state: FollowerState
    upto: int
    first_page: list[tuple[int, Event]] | None


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One refused inbound message as the operator sees it (no content)."""

    seq: int
    source_id: str | None
    reason: str
    field_path: str | None
    topic: str
    partition: int
    offset: int
    recorded_at_ms: int


def _max_seq(conn: Connection) -> int:
    """The largest stored seq (0: none), through the driver."""
    return int(conn.exec_driver_sql(_MAX_SEQ).scalar_one())


_MAX_SEQ = "SELECT coalesce(max(seq), 0) FROM stored_events"


def follower_state_in(conn: Connection, follower: str) -> FollowerState:
    """Where ``follower`` stands (0 and "" if it never ran), inside the caller's transaction,
    through the driver (read for every batch of every follower)."""
    mark = param_mark(conn)
    row = conn.exec_driver_sql(
        f"SELECT last_seq, version FROM {_followers.name} WHERE follower = {mark}", (follower,)
    ).first()
    return FollowerState(int(row[0]), str(row[1])) if row else FollowerState(0, "")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _AppendQueue:
    """Appenders of one SQLite store file wait for each other here, before ``BEGIN IMMEDIATE``:
    a thread lock within the process, an exclusive ``flock`` on ``<store>-append.lock`` across
    processes (released by unlock, or by the process's end). Nothing else: the database's write
    lock is what makes appends exclusive; this only spares the waiters SQLite's busy polling."""

    def __init__(self, path: str) -> None:
        self._path = f"{path}-append.lock"
        self._thread = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        import fcntl  # only built on POSIX (see _append_queue)

        with self._thread:
            if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


def _append_queue(engine: Engine) -> _AppendQueue | None:
    """The append queue of a SQLite store file (None: PostgreSQL, whose advisory lock queues its
    waiters itself; an in-memory SQLite database; or a platform without ``flock``)."""
    if engine.dialect.name != "sqlite" or sys.platform == "win32":
        return None
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return _AppendQueue(path)


class EventStore:
    """Append-only store of the trust's events over SQLAlchemy (SQLite or PostgreSQL).

    The engine's schema must be migrated (``open_store`` does it). Thread-safe as far as the
    engine is; appends from several processes are serialised by the store's write lock (the
    single-writer rule, see the module notes), so their seqs increase in commit order.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._queue = _append_queue(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def __repr__(self) -> str:
        return f"EventStore({self._engine.url.render_as_string(hide_password=True)!r})"

    # -- writing ------------------------------------------------------------------------------

    def append(
        self, events: Sequence[Event], position: PositionLike | None, consumer: str
    ) -> AppendResult:
        """Append ``events`` (from the message at ``position``, if any) in one transaction.

        Writes the events, their accepted ids, ``consumer``'s next offset for the position's
        partition (``offset + 1``, never moving back) and the projections, or nothing at all.

        Raises:
            DuplicateEvent: an inbound event id was already accepted (or repeats in ``events``);
                nothing was written.
        """
        return self.append_batch([(events, position)], consumer)

    def append_batch(
        self,
        items: Sequence[tuple[Sequence[Event], PositionLike | None]],
        consumer: str,
        *,
        on_duplicate: Callable[[int], Sequence[Event]] | None = None,
        effect: Callable[[Connection], None] | None = None,
    ) -> AppendResult:
        """Append many messages' events and positions in ONE transaction (for throughput).

        Same guarantees as :meth:`append`, for the batch as a whole. Without ``on_duplicate``,
        one duplicate rolls back every message of the batch. With it, the item at index ``i``
        whose inbound event id its source already had accepted (in the store, or earlier in
        ``items``) is stored as ``on_duplicate(i)`` instead (events that are not inbound, e.g.
        its rejection), found by the one query the append makes anyway (before the write lock).
        ``effect`` runs inside the transaction, under the lock, before the events are written
        (another writer's rows that must commit with them, e.g. the vault's new keys).

        Only what needs the lock is done under it: the rows' values, the dedupe query and the
        projections' rows (:func:`projections.prepare`) are worked out before; under it, the
        seqs are taken and the rows written, the projections finished from what the tables hold.

        Raises:
            DuplicateEvent: as for :meth:`append` (``event_id`` names the first duplicate), or a
                concurrent writer accepted one of the ids after the query (the table's unique key
                refuses it under the lock); nothing was written.
        """
        now = _now_ms()
        values: list[list[tuple[Any, ...]]] = []
        evs: list[Sequence[Event]] = []
        keys: list[list[AcceptedKey]] = []
        all_keys: list[AcceptedKey] = []
        next_offsets: dict[tuple[str, int], int] = {}
        for events, pos in items:  # one pass, written out: every message of a batch comes here
            if pos is None:
                topic = partition = offset = None
            else:
                topic, partition, offset = pos.topic, pos.partition, pos.offset
                k = (topic, partition)
                if next_offsets.get(k, 0) <= offset:
                    next_offsets[k] = offset + 1
            values.append([event_values(ev, now, topic, partition, offset) for ev in events])
            evs.append(events)
            ks = []
            for ev in events:
                if ev.accepted and ev.event_id is not None and ev.source_id is not None:
                    ks.append((ev.source_id, ev.event_id))
            keys.append(ks)
            all_keys += ks
        if on_duplicate is None:
            _refuse_repeats(items, keys)

        # Which ids were accepted already is asked BEFORE the write lock is taken: an id another
        # writer accepts meanwhile is refused under the lock by the table's unique key (the
        # guarantee either way), and the append raises DuplicateEvent with nothing written.
        already = self._accepted_before(all_keys) if all_keys else set()
        if already and on_duplicate is None:
            i, first = next((i, k) for i, ks in enumerate(keys) for k in ks if k in already)
            raise DuplicateEvent(
                "event id already accepted", event_id=first[1], delivery=_delivery(items[i])
            )
        if on_duplicate is not None and (already or len(set(all_keys)) < len(all_keys)):
            seen = set(already)
            for i, ks in enumerate(keys):
                if seen.isdisjoint(ks) and len(set(ks)) == len(ks):
                    seen.update(ks)
                    continue
                instead = list(on_duplicate(i))
                if any(_accepted_key(ev) is not None for ev in instead):
                    raise ValueError("a duplicate's replacement must not be an inbound event")
                pos = items[i][1]
                values[i] = [event_values(ev, now, *_where(pos)) for ev in instead]
                evs[i], keys[i] = instead, []
        # everything the rows need but their seqs, worked out before the lock too
        flat = [ev for events in evs for ev in events]
        flat_values = [v for item_values in values for v in item_values]
        id_rows = [
            (i, ev.source_id, ev.event_id)
            for i, ev in enumerate(flat)
            if ev.accepted and ev.event_id is not None and ev.source_id is not None
        ]
        prepared = projections.prepare(flat)

        queued = self._queue.held() if self._queue is not None else contextlib.nullcontext()
        with queued, self._writer.begin() as conn:
            serialise_appends(conn)
            if effect is not None:
                effect(conn)
            seqs = self._insert_events(conn, flat_values)
            if id_rows:
                try:
                    # A savepoint is not needed: any failure aborts the whole append.
                    insert_values(
                        conn, _accepted, _ACCEPTED_COLUMNS, [(s, e, seqs[i]) for i, s, e in id_rows]
                    )
                except IntegrityError as exc:  # a concurrent writer accepted one first
                    raise DuplicateEvent("event id already accepted (concurrent)") from exc
            if next_offsets:
                self._advance(conn, consumer, next_offsets)
            projections.apply_run(conn, seqs, flat, prepared)
        return AppendResult(tuple(seqs))

    def _accepted_before(self, keys: Sequence[AcceptedKey]) -> set[AcceptedKey]:
        """:meth:`_accepted_among` in a short read transaction of its own (an append asks it
        before it takes the store's write lock)."""
        with self._engine.connect() as conn, conn.begin():
            return self._accepted_among(conn, keys)

    @classmethod
    def append_in(cls, conn: Connection, events: Sequence[Event]) -> list[int]:
        """Append events the trust decided itself (no inbound id, no source position) inside
        the caller's writer transaction, projections included; returns their seqs.

        For a follower that decides (linkage): its decisions commit together with its new
        position (:meth:`advance_follower`), so each is made exactly once.
        """
        if not events:
            return []
        if any(_accepted_key(ev) is not None for ev in events):
            raise ValueError("inbound events are appended by append(), with their position")
        serialise_appends(conn)
        now = _now_ms()
        seqs = cls._insert_events(conn, [event_values(ev, now, None, None, None) for ev in events])
        projections.apply_run(conn, seqs, events)
        return seqs

    @staticmethod
    def _insert_events(conn: Connection, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert event rows (:func:`event_values`' tuples); their seqs, in order. Appends are
        serialised by the caller."""
        if not rows:
            return []
        seqs: list[int]
        if conn.dialect.name == "postgresql":
            # Take the seqs from the column's own sequence in one round trip; the append lock
            # (serialise_appends) makes them increase in commit order.
            seqs = [
                int(s)
                for s in conn.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence('stored_events', 'seq')) "
                    f"FROM generate_series(1, {len(rows)})"
                ).scalars()
            ]
            insert_values(
                conn, _events, _EVENT_INSERT, [(*r, s) for r, s in zip(rows, seqs, strict=True)]
            )
            return seqs
        # SQLite cannot return ordered seqs from a multi-row insert (SQLAlchemy would go row by
        # row); under BEGIN IMMEDIATE we are the only writer, and SQLite gives each row without
        # a seq one more than the largest (the column is the table's rowid, no AUTOINCREMENT):
        # the rows go as they are, and the largest seq after them says they took these.
        last = _max_seq(conn)
        insert_values(conn, _events, EVENT_COLUMNS, rows)
        if _max_seq(conn) != last + len(rows):  # pragma: no cover - SQLite's documented rule
            raise RuntimeError("stored_events' seqs did not follow the largest one")
        return list(range(last + 1, last + 1 + len(rows)))

    @staticmethod
    def _advance(conn: Connection, consumer: str, next_offsets: dict[tuple[str, int], int]) -> None:
        upsert_increasing(
            conn,
            _positions,
            _POSITION_KEY,
            "next_offset",
            [(consumer, t, p, n) for (t, p), n in sorted(next_offsets.items())],
        )

    # -- reading ------------------------------------------------------------------------------

    def is_accepted(self, source_id: str, event_id: str) -> bool:
        """Whether ``source_id`` already had an inbound event with this id accepted."""
        return bool(self.accepted_among([(source_id, event_id)]))

    def accepted_among(self, keys: Iterable[AcceptedKey]) -> set[AcceptedKey]:
        """The subset of ``(source_id, event_id)`` keys already accepted (one query per source
        and 500 ids)."""
        with self._engine.connect() as conn, conn.begin():
            return self._accepted_among(conn, list(keys))

    @staticmethod
    def _accepted_among(conn: Connection, keys: Sequence[AcceptedKey]) -> set[AcceptedKey]:
        by_source: dict[str, list[str]] = {}
        for source_id, event_id in keys:
            by_source.setdefault(source_id, []).append(event_id)
        found: set[AcceptedKey] = set()
        for source_id, ids in sorted(by_source.items()):
            rows = select_in(
                conn, _accepted, ["event_id"], "event_id", ids, where={"source_id": source_id}
            )
            found.update((source_id, e) for (e,) in rows)
        return found

    def positions(self, consumer: str) -> dict[tuple[str, int], int]:
        """``consumer``'s next offset per (topic, partition), as committed with the events."""
        stmt = select(_positions.c.topic, _positions.c.partition, _positions.c.next_offset).where(
            _positions.c.consumer == consumer
        )
        with self._engine.connect() as conn, conn.begin():
            return {(t, p): n for t, p, n in conn.execute(stmt)}

    def read(self, after_seq: int = 0, limit: int | None = None) -> Iterator[tuple[int, Event]]:
        """Stored events with ``seq > after_seq`` in seq order, at most ``limit`` of them.

        Reads in pages, each in its own short transaction, so a long read never holds a lock.
        """
        remaining = limit
        page_size = 1000
        while remaining is None or remaining > 0:
            n = page_size if remaining is None else min(page_size, remaining)
            with self._engine.connect() as conn, conn.begin():
                page = read_page(conn, after_seq, n)
            yield from page
            if len(page) < n:
                return
            after_seq = page[-1][0]
            if remaining is not None:
                remaining -= len(page)

    def all_of(
        self, types: Collection[str], *, records: bool = False, page: int = 1000
    ) -> Iterator[tuple[int, Event]]:
        """Every stored event of ``types`` up to the store's end now, in seq order, read page
        by page (each page its own short transaction); accepted records' bodies unread unless
        ``records``."""
        after, upto = 0, self.last_seq()
        while True:
            found = self.read_types(types, after, upto, page, records=records)
            yield from found
            if len(found) < page:
                return
            after = found[-1][0]

    def read_types(
        self,
        types: Collection[str],
        after_seq: int,
        upto_seq: int,
        limit: int = 1000,
        *,
        records: bool = True,
    ) -> list[tuple[int, Event]]:
        """Up to ``limit`` stored events of the named types with ``after_seq < seq <= upto_seq``,
        in seq order (one short transaction); ``records=False`` leaves accepted records' bodies
        unread (their ``record`` is empty)."""
        with self._engine.connect() as conn, conn.begin():
            return read_page(
                conn, after_seq, limit, types=types, upto_seq=upto_seq, records=records
            )

    def follower_position(self, follower: str) -> int:
        """The last stored seq ``follower`` has handled (0 if it never ran)."""
        return self.follower_state(follower).last_seq

    def follower_state(self, follower: str) -> FollowerState:
        """Where ``follower`` is and what version of it built its tables (0 and "" if it never
        ran)."""
        with self._engine.connect() as conn, conn.begin():
            return follower_state_in(conn, follower)

    def follow_view(
        self, follower: str, types: Collection[str], page: int, *, records: bool = True
    ) -> FollowView:
        """:meth:`follower_state`, :meth:`last_seq` and the first :meth:`read_types` page after
        the follower's position, in ONE short read transaction (a live trust follows after
        every batch: three transactions were most of what a batch of one event cost a follower
        beside its own work). The page is left unread at position 0 (a follower that builds
        from state does not read events)."""
        with self._engine.connect() as conn, conn.begin():
            state = follower_state_in(conn, follower)
            upto = _max_seq(conn)
            first: list[tuple[int, Event]] | None = None
            if 0 < state.last_seq < upto:
                first = read_page(
                    conn, state.last_seq, page, types=types, upto_seq=upto, records=records
                )
        return FollowView(state, upto, first)

    def advance_follower(
        self,
        follower: str,
        after: int,
        last_seq: int,
        effect: Callable[[Connection], None] | None = None,
        version: str = "",
    ) -> bool:
        """Record that ``follower`` has handled everything from ``after`` up to ``last_seq``,
        together with ``effect`` (writes to the follower's own tables) in ONE transaction.

        The follower's row is locked first and must still say ``after``: if another process
        advanced it meanwhile, nothing is applied and False is returned (so two processes never
        apply the same events twice).
        """
        with self._writer.begin() as conn:
            # through the driver: these run for every batch of every follower
            mark = param_mark(conn)
            lock = f"SELECT last_seq FROM {_followers.name} WHERE follower = {mark}"
            if conn.dialect.name == "postgresql":
                lock += " FOR UPDATE"
            at = conn.exec_driver_sql(lock, (follower,)).scalar()
            if at is None:  # its first advance: the row is made (by whichever process is first)
                ins = dialect_insert(conn, _followers)
                conn.execute(
                    ins.on_conflict_do_nothing(index_elements=[_followers.c.follower]),
                    {"follower": follower, "last_seq": 0, "version": version},
                )
                at = conn.exec_driver_sql(lock, (follower,)).scalar_one()
            if int(at) != after:
                return False
            if effect is not None:
                effect(conn)
            conn.exec_driver_sql(
                f"UPDATE {_followers.name} SET last_seq = {mark}, version = {mark} "
                f"WHERE follower = {mark}",
                (last_seq, version, follower),
            )
        return True

    def reset_follower(self, follower: str, clear: Callable[[Connection], None]) -> None:
        """Empty ``follower``'s tables (``clear``) and move it back to position 0, in one
        transaction: its next run rebuilds them from the whole store."""
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    select(_followers.c.follower)
                    .where(_followers.c.follower == follower)
                    .with_for_update()
                )
            clear(conn)
            conn.execute(delete(_followers).where(_followers.c.follower == follower))

    def last_seq(self) -> int:
        """The highest stored seq (0 when empty)."""
        with self._engine.connect() as conn, conn.begin():
            return _max_seq(conn)

    def count_by_type(self) -> dict[str, int]:
        """How many events of each type are stored."""
        stmt = select(_events.c.event_type, func.count()).group_by(_events.c.event_type)
        with self._engine.connect() as conn, conn.begin():
            return {t: int(n) for t, n in conn.execute(stmt)}

    def rejection_counts(self) -> dict[str, int]:
        """Rejected messages per reason code (from the projection)."""
        stmt = select(_rejections.c.reason, func.count()).group_by(_rejections.c.reason)
        with self._engine.connect() as conn, conn.begin():
            return {r: int(n) for r, n in conn.execute(stmt)}

    def quarantine(self, limit: int = 50) -> list[QuarantineEntry]:
        """The newest ``limit`` refused inbound messages: position and reason, never content."""
        r, e = _rejections, _events
        stmt = (
            select(
                r.c.seq,
                r.c.source_id,
                r.c.reason,
                r.c.field_path,
                e.c.topic,
                e.c.partition,
                e.c.offset,
                e.c.recorded_at_ms,
            )
            .join(e, e.c.seq == r.c.seq)
            .order_by(r.c.seq.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn, conn.begin():
            return [QuarantineEntry(*row) for row in conn.execute(stmt)]

    def rebuild_projections(self) -> int:
        """Empty and replay every projection from the stored events; returns events replayed."""
        return projections.rebuild(self._engine)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
        self._engine.dispose()


def open_store(url: str) -> EventStore:
    """Open (creating and migrating to head as needed) the store at ``url``.

    ``sqlite:///path/store.db`` or ``postgresql+psycopg://user@host/db`` (plain
    ``postgresql://`` is taken to mean psycopg 3).
    """
    engine = make_engine(url)
    migrate(engine)
    return EventStore(engine)
