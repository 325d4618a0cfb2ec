"""Revoking a source's signing key: what it signs afterwards is rejected.

A source whose signing key leaked (or left with a departing system) must be able to stop it
speaking for the source. A custodian revokes the key (:func:`revoke_source_key`): a
``SourceKeyRevoked`` event in the store, so the audit log has it. From then on every envelope
signed with that key is rejected with ``revoked_source_key`` — also envelopes signed before the
revocation and still unread on the log, since a signature carries no time the trust could trust
(the source re-sends them under its new key: ``tiptrust publish --resend``). What the trust
accepted before stays.

Revocation is by key id and permanent: registering the same public key again does not bring it
back. The trust's keyring is built with every revocation in the store (:func:`revoked_keys`), and
a running trust applies a new one at its next round (:class:`RevocationFollower`, first among the
followers). The usual sequence for a source: ``tiptrust keys rotate-source`` (a new active key),
``tiptrust trust register --public-key NEW``, then ``tiptrust trust revoke-key`` of the old one.
"""

from __future__ import annotations

import time
from enum import StrEnum

from sqlalchemy import Connection

from schemas.errors import UnknownSource, UnknownSourceKey
from schemas.keys import Keyring
from trust.follow import Batch
from trust.refusal import Refusal
from trust.store.events import SourceKeyRevoked, new_event_id
from trust.store.eventstore import EventStore

__all__ = [
    "REVOKER",
    "RevocationError",
    "RevocationFollower",
    "RevocationReason",
    "revoke_source_key",
    "revoked_keys",
]

REVOKER = "key-revocation"
"""The store consumer name revocations are appended under."""


class RevocationReason(StrEnum):
    UNKNOWN_KEY = "unknown_key"
    ALREADY_REVOKED = "already_revoked"


class RevocationError(Refusal):
    """A revocation refused; ``code`` is a :class:`RevocationReason` value."""


def revoked_keys(store: EventStore) -> set[tuple[str, str]]:
    """Every (source, key id) revoked so far."""
    return {
        (ev.source_id, ev.key_id)
        for _, ev in store.all_of({SourceKeyRevoked.event_type})
        if isinstance(ev, SourceKeyRevoked)
    }


def revoke_source_key(
    store: EventStore, keyring: Keyring, source_id: str, key_id: str, revoked_by: str
) -> SourceKeyRevoked:
    """Revoke ``source_id``'s key ``key_id`` (registered in ``keyring``).

    Raises:
        RevocationError: ``unknown_key`` (no such registered key), ``already_revoked``.
    """
    if (source_id, key_id) in revoked_keys(store):
        raise RevocationError(
            RevocationReason.ALREADY_REVOKED, f"{source_id}'s key {key_id} is revoked already"
        )
    try:
        keyring.source_key(source_id, key_id)
    except (UnknownSource, UnknownSourceKey):
        raise RevocationError(
            RevocationReason.UNKNOWN_KEY, f"{source_id} has no registered key {key_id}"
        ) from None
    event = SourceKeyRevoked(new_event_id(), source_id, key_id, revoked_by, time.time_ns() // 10**6)
    store.append([event], None, REVOKER)
    keyring.revoke_source_key(source_id, key_id)
    return event


class RevocationFollower:
    """Applies revocations recorded while the trust runs to its keyring (a follower of the
    store's ``SourceKeyRevoked`` events; in memory, so it has no tables: the keyring is built
    with every revocation when the trust starts). Put it first among the followers."""

    name = "trust-key-revocations"
    event_types = frozenset({SourceKeyRevoked.event_type})
    version = "1"
    reads_records = False

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def apply(self, conn: Connection, events: Batch) -> None:
        for _, ev in events:
            if isinstance(ev, SourceKeyRevoked):
                self.keyring.revoke_source_key(ev.source_id, ev.key_id)

    def clear(self, conn: Connection) -> None:
        """Nothing to empty: the keyring is rebuilt from the store when the trust starts."""
