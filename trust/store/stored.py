"""How a domain event lies in ``stored_events``: its row on the way in, the event on the way out."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from trust.store.events import Event, decode
from trust.store.tables import stored_events as _events


def _iso(value: object) -> str:
    # A safety net for a date outside the paths ``to_dict`` knows; anything else is an error.
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} in an event payload")


def event_row(
    event: Event, recorded_at_ms: int, topic: str | None, partition: int | None, offset: int | None
) -> dict[str, Any]:
    """The ``stored_events`` values of ``event`` (without ``seq``, which the database assigns)."""
    return {
        "event_type": event.event_type,
        "event_id": event.event_id,
        "source_id": event.source_id,
        "payload": json.dumps(
            event.to_dict(), separators=(",", ":"), ensure_ascii=False, default=_iso
        ),
        "recorded_at_ms": recorded_at_ms,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }


def read_page(
    conn: Connection,
    after_seq: int,
    limit: int,
    *,
    types: Collection[str] | None = None,
    upto_seq: int | None = None,
) -> list[tuple[int, Event]]:
    """Up to ``limit`` stored events with ``seq > after_seq`` (and ``<= upto_seq``; of the
    named ``types`` only, if given), in seq order."""
    stmt = (
        select(_events.c.seq, _events.c.event_type, _events.c.payload)
        .where(_events.c.seq > after_seq)
        .order_by(_events.c.seq)
        .limit(limit)
    )
    if types is not None:
        stmt = stmt.where(_events.c.event_type.in_(sorted(types)))
    if upto_seq is not None:
        stmt = stmt.where(_events.c.seq <= upto_seq)
    return [(seq, decode(t, json.loads(p))) for seq, t, p in conn.execute(stmt)]
