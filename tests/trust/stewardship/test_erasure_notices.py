"""Erasure notices: when a record is erased at one source, every other source holding a record
linked with it gets one signed notice on its receipt topic, naming only its own record."""

from __future__ import annotations

import pytest

from schemas.keys import SigningKey
from schemas.receipt import verify_receipt
from tests.trust.store.builders import accepted, eid
from transport import EventLog, topics
from trust.follow import follow
from trust.stewardship.erasure_notices import ErasureNotices, notices_for
from trust.store.events import LinkDecision, RecordLinked, RecordUnlinked, VictimRef
from trust.store.eventstore import EventStore, Position

KEY = SigningKey.generate("trust")
POLICE, NGO, NRM = (
    VictimRef("police", "P-7", "v1"),
    VictimRef("ngo", "N-3", "v1"),
    VictimRef("nrm", "R-9", "v2"),
)


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


@pytest.fixture
def log(sqlite_log: EventLog) -> EventLog:
    return sqlite_log


def _one_person(store: EventStore) -> dict[str, str]:
    """Three sources' records of one person (P-1); returns each source's accepted event id."""
    ids = {}
    for i, ref in enumerate((POLICE, NGO, NRM)):
        ev = accepted(ref.source_id, ref.case_id, ((ref.victim_id, "Feminine", 30),))
        ids[ref.source_id] = ev.event_id
        store.append_batch([([ev], Position(topics.inbound(ref.source_id), 0, i))], "ingest")
    store.append(
        [
            RecordLinked(eid(), ref, "P-1", LinkDecision.JOINED, "fs1-x", [], 1)
            for ref in (POLICE, NGO, NRM)
        ],
        None,
        "linkage",
    )
    return ids


def test_the_other_sources_of_an_erased_person_are_told(store: EventStore, log: EventLog) -> None:
    ids = _one_person(store)
    store.append([RecordUnlinked(eid(), POLICE, "P-1", "disposed", 2)], None, "linkage")
    follow(store, ErasureNotices(store, log, KEY))

    assert log.read_all(topics.rejected("police")) == []  # the erasing source is not told
    for ref in (NGO, NRM):
        [raw] = log.read_all(topics.rejected(ref.source_id))
        notice = verify_receipt(raw.value, {KEY.key_id: KEY.public})
        assert notice.reason == "linked_person_erased"
        assert notice.event_id == ids[ref.source_id]  # its own record, by its own event id
        assert notice.topic == topics.inbound(ref.source_id)
        assert ref.victim_id in notice.detail
        assert "police" not in notice.detail and "P-7" not in notice.detail
    follow(store, ErasureNotices(store, log, KEY))  # nothing new: nothing sent again
    assert len(log.read_all(topics.rejected("ngo"))) == 1


@pytest.mark.parametrize("reason", ["retracted", "superseded", "operator"])
def test_an_unlink_that_is_no_erasure_tells_nobody(store: EventStore, reason: str) -> None:
    _one_person(store)
    assert notices_for(store, RecordUnlinked(eid(), POLICE, "P-1", reason, 2)) == []
    erased = notices_for(store, RecordUnlinked(eid(), POLICE, "P-1", "consent_withdrawn", 2))
    assert sorted(n.source_id for n in erased) == ["ngo", "nrm"]
