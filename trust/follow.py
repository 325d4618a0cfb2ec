"""Followers: stages that read the trust's event store after their own tracked position.

Ingest is the only writer of inbound facts. Every other stage follows the store: it reads the
events of the types it cares about after the last seq it handled, does its work, and records its
new position — so each stage can stop, crash or be added later and resume exactly where it was.

Two kinds, by where the effect lands:

- :class:`StoreFollower` — the effect is in the store (its own tables): written together with the
  new position in ONE transaction, so it happens exactly once.
- :class:`LogPublisher` — the effect leaves the trust (bytes on a log topic): sent and flushed
  first, the position recorded after. A crash in between sends the same bytes again on restart,
  never different ones: what leaves is always recorded in the store first (the transactional
  outbox), and receivers drop identical re-sends.

Appends are serialised, so seq order is commit order: when :func:`follow` reads up to the seq it
saw last, no event with a lower seq can still commit after it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Protocol, cast, runtime_checkable

from sqlalchemy import Connection

from trust.store.events import Event
from trust.store.eventstore import EventStore

Batch = Sequence[tuple[int, Event]]

log = logging.getLogger(__name__)


@runtime_checkable
class StoreFollower(Protocol):
    """A stage whose effect is written to the store with its position, atomically.

    ``version`` names what builds its tables (e.g. a digest of the definitions it counts by):
    when it changes, :func:`follow` empties them (:meth:`clear`) and starts again from 0.
    ``reads_records``: False for a follower that needs only which case an event is about — it
    then receives each ``RecordAccepted`` with an empty ``record`` (the body is not decoded,
    which is most of the cost of reading an accepted record).
    """

    name: str
    event_types: frozenset[str]
    version: str
    reads_records: bool

    def apply(self, conn: Connection, events: Batch) -> None:
        """Apply ``events`` (seq order) inside the caller's transaction."""
        ...

    def clear(self, conn: Connection) -> None:
        """Empty the follower's tables inside the caller's transaction."""
        ...


@runtime_checkable
class BuildsFromState(Protocol):
    """A store follower whose tables are a function of the store's other tables (projections it
    reads, not the events themselves): from position 0 it can fill them in one pass over that
    state, which ends where following every event would, instead of one update per page of
    events (a rebuild or a first run over a large store)."""

    def build(self, conn: Connection) -> None:
        """Fill the (empty) tables from the current state, inside the caller's transaction."""
        ...


@runtime_checkable
class LogPublisher(Protocol):
    """A stage whose effect is sent out of the trust; sending the same events twice is harmless."""

    name: str
    event_types: frozenset[str]

    def send(self, events: Batch) -> None:
        """Send ``events`` (seq order) and return only once the log made them durable."""
        ...


def follow(store: EventStore, follower: StoreFollower | LogPublisher, *, page: int = 1000) -> int:
    """Bring ``follower`` up to the store's current end; returns how many events it handled."""
    # what kind of follower it is, asked once (a runtime protocol check walks its attributes)
    in_store: StoreFollower | None = follower if isinstance(follower, StoreFollower) else None
    records = in_store.reads_records if in_store is not None else True
    # where it stands, the store's end and its first page, in one read
    view = store.follow_view(follower.name, follower.event_types, page, records=records)
    state, upto, first = view.state, view.upto, view.first_page
    after = state.last_seq
    version = in_store.version if in_store is not None else ""
    if in_store is not None and state.last_seq and state.version != version:
        # built by other definitions: start again from the whole store
        log.info("follow.rebuilding follower=%s", follower.name)
        store.reset_follower(follower.name, in_store.clear)
        after = 0
        first = None
    if upto <= after:
        return 0
    if after == 0 and in_store is not None and isinstance(in_store, BuildsFromState):
        if not store.advance_follower(follower.name, 0, upto, in_store.build, version):
            return 0  # another process built it meanwhile
        counts = store.count_by_type()
        log.info("follow.built follower=%s last_seq=%d", follower.name, upto)
        return sum(counts.get(t, 0) for t in follower.event_types)
    handled = 0
    while True:
        if first is not None:  # the page read with the position
            events, first = first, None
        else:
            events = store.read_types(follower.event_types, after, upto, page, records=records)
        # done at a short page, or when the page ends at the store's end as read (a page of
        # exactly ``page`` events: no second read and empty transaction just to find nothing)
        done = len(events) < page or events[-1][0] >= upto
        last = upto if done else events[-1][0]
        if in_store is not None:
            applied = store.advance_follower(
                follower.name,
                after,
                last,
                functools.partial(in_store.apply, events=events),
                version,
            )
            if not applied:
                return handled  # another process advanced this follower meanwhile
        else:
            if events:
                cast(LogPublisher, follower).send(events)
            if not store.advance_follower(follower.name, after, last):
                return handled
        handled += len(events)
        after = last
        if events:
            log.debug(
                "follow.advanced follower=%s events=%d last_seq=%d",
                follower.name,
                len(events),
                last,
            )
        if done:
            return handled
