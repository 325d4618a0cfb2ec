"""Replaced trust keys are destroyed once nothing left on the inbound log is sealed to them, and
not before their grace has passed; the active key never."""

from __future__ import annotations

import pytest

from schemas.codec import default_registry
from schemas.envelope import EventHeader, new_event_id, seal_batch
from schemas.keys import Keyring, KeyState, SigningKey, TrustKeyPair
from transport import EventLog, topics
from trust.stewardship.trust_keys import TrustKeyRetirement
from trust.store.events import TrustKeyRetired
from trust.store.eventstore import EventStore

DAY = 86_400.0
NOW = 1_800_000_000.0
SOURCE = SigningKey.generate("police")
OLD, NEW = TrustKeyPair.generate(), TrustKeyPair.generate()
CASE = default_registry().current("case_record")


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


@pytest.fixture
def log(sqlite_log: EventLog) -> EventLog:
    return sqlite_log


def _sealed_to(log: EventLog, key: TrustKeyPair, n: int = 2) -> None:
    header = EventHeader(
        "police", new_event_id(), "RecordRetraction", CASE.fingerprint, 0, key.key_id,
        SOURCE.key_id,
    )  # fmt: skip
    events = [(header, b"\x00")] * n
    for raw in seal_batch(events, trust_key=key.public, source_key=SOURCE):
        log.append(topics.inbound("police"), raw)
    log.flush()


def test_a_replaced_key_goes_once_nothing_on_the_log_needs_it(
    store: EventStore, log: EventLog
) -> None:
    state = KeyState(NEW.key_id, [OLD.key_id, NEW.key_id], [], {OLD.key_id: int(NOW * 1000)})
    ring = Keyring([OLD, NEW], [SOURCE.public])
    retired: list[str] = []

    def retire(kid: str) -> None:
        retired.append(kid)
        state.held.remove(kid)

    clock = [NOW + DAY]
    step = TrustKeyRetirement(
        log, store, ring, lambda: state, retire, grace_days=30, clock=lambda: clock[0]
    )
    _sealed_to(log, OLD)
    _sealed_to(log, NEW)
    assert step.run_now() == []  # within its grace
    clock[0] = NOW + 31 * DAY
    assert step.run_now() == []  # envelopes sealed to it are still on the log
    log.delete_before(topics.inbound("police"), 0, 2)  # inbound retention took them away
    assert step.run_now() == [OLD.key_id]
    assert retired == [OLD.key_id]
    with pytest.raises(Exception, match="does not hold"):
        ring.trust_key(OLD.key_id)
    assert ring.trust_key(NEW.key_id) is NEW  # the active key stays, whatever the log holds
    [event] = [e for _, e in store.read() if isinstance(e, TrustKeyRetired)]
    assert event.key_id == OLD.key_id
    assert step.run_now() == []  # nothing more to destroy
