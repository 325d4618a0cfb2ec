"""The trust's store: append-only events, live projections, and the person-key vault.

``open_store(url)`` gives an :class:`EventStore` over SQLite (the default) or PostgreSQL,
migrated to head; :class:`Vault` seals each person's identifiers under their own key.
"""

from trust.store.errors import DuplicateEvent, KeyShredded
from trust.store.events import (
    EVENT_TYPES,
    ConsentWithdrawn,
    DisposalRequested,
    Event,
    MessageRejected,
    RecordAccepted,
    RecordRetracted,
    ReleaseIssued,
    SealedBlob,
)
from trust.store.eventstore import AppendResult, EventStore, Position, open_store
from trust.store.vault import Vault

__all__ = [
    "EVENT_TYPES",
    "AppendResult",
    "ConsentWithdrawn",
    "DisposalRequested",
    "DuplicateEvent",
    "Event",
    "EventStore",
    "KeyShredded",
    "MessageRejected",
    "Position",
    "RecordAccepted",
    "RecordRetracted",
    "ReleaseIssued",
    "SealedBlob",
    "Vault",
    "open_store",
]
