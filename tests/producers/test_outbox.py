"""The outbox remembers what went where: per-destination sent state, resend, old outboxes.

Real parts only: the simulator's police export, the real mapping, sealing, SQLite logs and outbox
files; the trust's keys open what was sent.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.message_key import KEY_BYTES, MessageKeyer
from producers.outbox import UNRECORDED, Outbox, OutboxEntry
from producers.publisher import Outgoing, Publisher
from producers.simulate import simulate
from producers.workflow import (
    ExportConsumedError,
    SourceSetup,
    destination_of,
    publish_export,
    read_export,
    retraction,
)
from schemas.codec import default_registry
from schemas.envelope import EventHeader, new_event_id, open_event, seal_batch
from schemas.keys import Keyring, SigningKey, TrustKeyPair
from transport import open_log, topics


@dataclass(frozen=True)
class World:
    sim: Path
    messages: list[Outgoing]
    source: SigningKey
    trust: TrustKeyPair

    @property
    def ring(self) -> Keyring:
        return Keyring([self.trust], [self.source.public])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    sim = tmp_path_factory.mktemp("sim")
    simulate(3, 200, sim)
    export = read_export("police", sim / "police" / "records.csv", sim / "police" / "mapping.yaml")
    assert len(export.messages) >= 20
    return World(sim, export.messages[:20], SigningKey.generate("police"), TrustKeyPair.generate())


def _publisher(w: World, log_url: str, outbox: Outbox, keyer: MessageKeyer) -> Publisher:
    return Publisher(
        log=open_log(log_url),
        source_key=w.source,
        trust_key=w.trust.public,
        outbox=outbox,
        keyer=keyer,
        destination=destination_of(log_url),
        batch_size=7,
    )


def _on_log(w: World, log_url: str) -> list[tuple[str, bytes | None, bytes]]:
    """(event id, key, envelope) of every record on police's inbound topic, opened by the trust."""
    out = []
    with open_log(log_url) as log:
        for r in log.read_all(topics.inbound("police")):
            opened = open_event(r.value, keyring=w.ring)
            assert r.headers == (("event_id", opened.header.event_id.bytes),)
            out.append((str(opened.header.event_id), r.key, r.value))
    return out


def test_a_second_log_gets_everything_with_the_same_event_ids(world: World, tmp_path: Path) -> None:
    test_log, real_log = f"sqlite:///{tmp_path / 'test.db'}", f"sqlite:///{tmp_path / 'real.db'}"
    keyer = MessageKeyer.generate()
    with Outbox(tmp_path / "outbox.db") as outbox:
        first = _publisher(world, test_log, outbox, keyer).publish(world.messages)
        assert first.published == 20 and first.unchanged == 0
        second = _publisher(world, real_log, outbox, keyer).publish(world.messages)
        assert second.published == 20 and second.unchanged == 0
        again = _publisher(world, real_log, outbox, keyer).publish(world.messages)
        assert again.published == 0 and again.unchanged == 20
        assert outbox.counts(destination_of(real_log)) == {"sent": 20, "pending": 0}
        assert outbox.counts() == {"sent": 40, "pending": 0}
        assert set(outbox.destinations()) == {destination_of(test_log), destination_of(real_log)}
    on_test, on_real = _on_log(world, test_log), _on_log(world, real_log)
    assert sorted(e for e, _, _ in on_test) == sorted(e for e, _, _ in on_real)
    assert len({e for e, _, _ in on_real}) == 20
    # a case has the same message key on both logs, and it is the keyed hash of its case id
    by_event = {e: k for e, k, _ in on_test}
    assert all(by_event[e] == k for e, k, _ in on_real)
    keys = {keyer.key(m.partition_key) for m in world.messages}
    assert {k for _, k, _ in on_real} == keys
    for m in world.messages:
        for _, k, _ in on_real:
            assert k is not None and len(k) == KEY_BYTES and m.partition_key.encode() not in k


def test_what_waits_for_one_log_is_not_sent_to_another(world: World, tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    keyer = MessageKeyer.generate()
    header = EventHeader(
        "police",
        new_event_id(),
        "RecordRetraction",
        default_registry().for_kind("RecordRetraction").fingerprint,
        int(time.time() * 1000),
        world.trust.key_id,
        world.source.key_id,
    )
    payload = default_registry().for_kind("RecordRetraction").encode(retraction("X-1").datum)
    (env,) = seal_batch([(header, payload)], trust_key=world.trust.public, source_key=world.source)
    with Outbox(tmp_path / "outbox.db") as outbox:
        outbox.put(
            destination_of(a), [OutboxEntry(header.event_id, "tip.inbound.police", b"k", env)]
        )
        assert _publisher(world, b, outbox, keyer).resend_pending() == 0
        assert outbox.pending(destination_of(a))
        assert _publisher(world, a, outbox, keyer).resend_pending() == 1
        assert outbox.counts() == {"sent": 1, "pending": 0}
    assert _on_log(world, b) == []
    assert [e for e, _, _ in _on_log(world, a)] == [str(header.event_id)]


def test_resend_reseals_with_the_same_event_ids(world: World, tmp_path: Path) -> None:
    log = f"sqlite:///{tmp_path / 'log.db'}"
    keyer = MessageKeyer.generate()
    with Outbox(tmp_path / "outbox.db") as outbox:
        _publisher(world, log, outbox, keyer).publish(world.messages)
        report = _publisher(world, log, outbox, keyer).publish(world.messages[:5], resend=True)
        assert report.published == report.republished == 5 and report.unchanged == 0
        assert outbox.counts() == {"sent": 20, "pending": 0}
    on_log = _on_log(world, log)
    assert len(on_log) == 25
    copies = Counter(e for e, _, _ in on_log)
    assert sorted(copies.values()) == [1] * 15 + [2] * 5
    for eid in (e for e, n in copies.items() if n == 2):
        (k1, v1), (k2, v2) = [(k, v) for e, k, v in on_log if e == eid]
        assert k1 == k2 and v1 != v2  # same case key, freshly sealed


def test_batches_of_sent_and_new_records_send_each_with_its_own_event_id(
    world: World, tmp_path: Path
) -> None:
    """Batches (of 7) where some records were sent before and others are new: what is sent
    carries its own event id in the log's header (checked by ``_on_log`` against the envelope),
    without resend only the new ones, with it every one again."""
    log = f"sqlite:///{tmp_path / 'log.db'}"
    keyer = MessageKeyer.generate()
    odd = world.messages[1::2]
    with Outbox(tmp_path / "outbox.db") as outbox:
        _publisher(world, log, outbox, keyer).publish(odd)
        report = _publisher(world, log, outbox, keyer).publish(world.messages)
        assert (report.published, report.unchanged, report.republished) == (10, 10, 0)
        report = _publisher(world, log, outbox, keyer).publish(world.messages, resend=True)
        assert (report.published, report.unchanged, report.republished) == (20, 0, 20)
        assert outbox.counts() == {"sent": 20, "pending": 0}
    copies = Counter(e for e, _, _ in _on_log(world, log))
    assert len(copies) == 20 and set(copies.values()) == {2}


def test_destinations_name_the_log_not_its_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert destination_of("sqlite:///log.db") == f"sqlite:///{tmp_path / 'log.db'}"
    assert destination_of(f"sqlite:///{tmp_path}/sub/../log.db") == destination_of(
        "sqlite:///log.db"
    )
    assert destination_of("sqlite:///other.db") != destination_of("sqlite:///log.db")
    assert destination_of("kafka://B:9092,a:9092") == destination_of("kafka://a:9092, b:9092")
    assert destination_of("kafka://a:9092") != destination_of("kafka://a:9093")
    with Outbox(tmp_path / "outbox.db") as outbox, pytest.raises(ValueError):
        outbox.pending(UNRECORDED)


# --- an outbox written by the publisher before destinations and keyed message keys ----------------

OLD_DDL = """
CREATE TABLE IF NOT EXISTS event_ids (
    record_key TEXT NOT NULL,
    digest BLOB NOT NULL,
    event_id BLOB NOT NULL,
    PRIMARY KEY (record_key, digest)
);
CREATE TABLE IF NOT EXISTS envelopes (
    event_id BLOB PRIMARY KEY,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    key BLOB,
    envelope BLOB NOT NULL,
    sealed_at_ms INTEGER NOT NULL,
    sent_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS envelopes_pending ON envelopes (sent_at_ms, seq);
"""


def _old_outbox(w: World, path: Path) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """An outbox as the old publisher left it for ``w.messages``: the first 12 sent, 8 pending
    (a crash before the log acknowledged), keys the clear case ids. Returns (sent, pending) ids."""
    reg = default_registry()
    now = int(time.time() * 1000)
    schema = reg.for_kind("RecordUpsert")
    rows, ids = [], []
    for m in w.messages:
        payload = schema.encode(m.datum)
        # the old publisher digested the record as its schema (the 0.1.0 release) encoded it:
        # what content_bytes gives for a record without the fields added since
        content = reg.content_bytes(schema.name, payload)
        digest = hashlib.sha256(b"RecordUpsert\x00" + content).digest()
        eid = new_event_id()
        ids.append(eid)
        header = EventHeader(
            "police", eid, m.kind, schema.fingerprint, now, w.trust.key_id, w.source.key_id
        )
        rows.append((m, digest, header, payload))
    envelopes = seal_batch(
        [(h, p) for _, _, h, p in rows], trust_key=w.trust.public, source_key=w.source
    )
    db = sqlite3.connect(path)
    db.executescript(OLD_DDL)
    for seq, ((m, digest, h, _), env) in enumerate(zip(rows, envelopes, strict=True), 1):
        db.execute(
            "INSERT INTO event_ids VALUES (?, ?, ?)",
            (f"{m.kind}:{m.record_key}", digest, h.event_id.bytes),
        )
        db.execute(
            "INSERT INTO envelopes VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                h.event_id.bytes,
                seq,
                topics.inbound("police"),
                m.partition_key.encode(),
                env,
                now,
                now if seq <= 12 else None,
            ),
        )
    db.commit()
    db.close()
    return ids[:12], ids[12:]


def test_an_old_outbox_is_migrated_in_place(world: World, tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    sent, pending = _old_outbox(world, path)
    log = f"sqlite:///{tmp_path / 'log.db'}"
    keyer = MessageKeyer.generate()
    with Outbox(path) as outbox:
        assert outbox.destinations() == [UNRECORDED]
        assert outbox.counts() == {"sent": 12, "pending": 8}
        dest = destination_of(log)
        # old rows belong to whatever destination asks: sent ones count as sent there ...
        assert outbox.already_sent(dest, sent + pending) == set(sent + pending)
        assert [e.event_id for e in outbox.pending(dest)] == pending
        assert all(e.clear_key for e in outbox.pending(dest))
        # ... and the pending ones go to the next log published to, re-keyed
        report = _publisher(world, log, outbox, keyer).publish(world.messages)
        assert report.resent == 8 and report.published == 0 and report.unchanged == 20
        assert outbox.counts() == {"sent": 20, "pending": 0}
    on_log = _on_log(world, log)
    assert sorted(e for e, _, _ in on_log) == sorted(str(e) for e in pending)
    case_ids = {m.partition_key for m in world.messages}
    assert {k for _, k, _ in on_log} <= {keyer.key(c) for c in case_ids}
    assert not any(c.encode() in (k or b"") for c in case_ids for _, k, _ in on_log)
    # opened again: the same, nothing migrated twice; the schema has its destination column
    with Outbox(path) as outbox:
        assert outbox.counts() == {"sent": 20, "pending": 0}
    db = sqlite3.connect(path)
    assert "destination" in {r[1] for r in db.execute("PRAGMA table_info(envelopes)")}
    assert db.execute("PRAGMA user_version").fetchone() == (4,)
    # acknowledged envelopes keep their row, not their bytes or message key
    assert db.execute("SELECT COUNT(*) FROM envelopes WHERE length(envelope) > 0").fetchone() == (
        0,
    )
    assert db.execute("SELECT COUNT(*) FROM envelopes WHERE key IS NOT NULL").fetchone() == (0,)
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master")} >= {
        "event_ids",
        "envelopes",
        "envelopes_pending",
    }
    assert "envelopes_v1" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    db.close()


def test_acknowledged_envelopes_leave_no_bytes_in_the_file(world: World, tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    log = f"sqlite:///{tmp_path / 'log.db'}"
    with Outbox(path) as outbox:
        report = _publisher(world, log, outbox, MessageKeyer.generate()).publish(world.messages)
        assert report.published == 20 and outbox.counts() == {"sent": 20, "pending": 0}
        # still known as sent: publishing the same records again sends nothing
        again = _publisher(world, log, outbox, MessageKeyer.generate()).publish(world.messages)
        assert again.unchanged == 20 and again.published == 0
    envelopes = [value for _, _, value in _on_log(world, log)]
    data = b"".join(p.read_bytes() for p in tmp_path.glob("outbox.db*"))
    assert envelopes and not any(e[16:80] in data for e in envelopes)


def test_old_rows_can_be_sent_anywhere_with_resend(world: World, tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    _old_outbox(world, path)
    log = f"sqlite:///{tmp_path / 'log.db'}"
    with Outbox(path) as outbox:
        report = _publisher(world, log, outbox, MessageKeyer.generate()).publish(
            world.messages, resend=True
        )
    assert report.resent == 8 and report.republished == report.published == 20
    assert len({e for e, _, _ in _on_log(world, log)}) == 20


def test_a_new_file_publishes_through_the_workflow(world: World, tmp_path: Path) -> None:
    setup = SourceSetup(
        world.source, world.trust.public, MessageKeyer.generate(), tmp_path / "o.db"
    )
    files = (world.sim / "police" / "records.csv", world.sim / "police" / "mapping.yaml")
    export = read_export("police", *files)
    log = f"sqlite:///{tmp_path / 'log.db'}"
    report = publish_export(setup, log, export)  # streamed: read once
    with pytest.raises(ExportConsumedError):
        publish_export(setup, log, export)
    again = read_export("police", *files)
    assert report.published == len(again.messages) and not report.rejected_rows
    assert publish_export(setup, log, again).unchanged == len(again.messages)


# --- a model: whatever is published where, each log gets each event id once (or on --resend) -----

steps = st.lists(
    st.tuples(
        st.integers(0, 2),  # which log
        st.sets(st.integers(0, 9), min_size=1),  # which records
        st.booleans(),  # --resend
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps)
def test_each_log_gets_what_it_has_not_had(
    world: World, plan: list[tuple[int, set[int], bool]]
) -> None:
    messages = world.messages[:10]
    keyer = MessageKeyer.generate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        logs = [f"sqlite:///{root / f'log{i}.db'}" for i in range(3)]
        had: list[set[int]] = [set(), set(), set()]
        copies: list[Counter[int]] = [Counter(), Counter(), Counter()]
        with Outbox(root / "outbox.db") as outbox:
            for i, chosen, resend in plan:
                batch = [messages[j] for j in sorted(chosen)]
                report = _publisher(world, logs[i], outbox, keyer).publish(batch, resend=resend)
                sent = chosen if resend else chosen - had[i]
                assert report.published == len(sent)
                assert report.unchanged == len(chosen) - len(sent)
                assert report.republished == (len(chosen & had[i]) if resend else 0)
                had[i] |= chosen
                copies[i].update(sent)
        ids: dict[str, set[str]] = {}
        for i, log in enumerate(logs):
            on_log = Counter(e for e, _, _ in _on_log(world, log))
            assert sorted(on_log.values()) == sorted(copies[i].values())
            for e in on_log:
                ids.setdefault(log, set()).add(e)
        # one record, one event id, on every log
        all_ids = set().union(*ids.values()) if ids else set()
        assert len(all_ids) == len(set().union(*had))


def _entry(topic: str = "tip.inbound.police") -> OutboxEntry:
    return OutboxEntry(new_event_id(), topic, b"k", b"sealed")


def _seqs(path: Path) -> list[tuple[bytes, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT event_id, seq FROM envelopes ORDER BY seq").fetchall()


def test_two_outboxes_on_one_file_never_hand_out_the_same_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first, second = Outbox(path), Outbox(path)  # both opened before either wrote
    try:
        a = [_entry() for _ in range(3)]
        b = [_entry() for _ in range(2)]
        first.put("sqlite:///a.db", a[:2])
        second.put("sqlite:///a.db", b)
        first.put("sqlite:///a.db", a[2:])
        seqs = [seq for _, seq in _seqs(path)]
        assert seqs == [1, 2, 3, 4, 5]
        pending = [e.event_id for e in second.pending("sqlite:///a.db")]
        assert pending == [e.event_id for e in (*a[:2], *b, a[2])]  # in the order they were put
    finally:
        first.close()
        second.close()


def test_a_batch_transaction_keeps_its_ids_and_envelopes_together_or_neither(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    digest = hashlib.sha256(b"record").digest()
    with Outbox(path) as outbox:
        with pytest.raises(RuntimeError, match="sealing failed"), outbox.transaction():
            ((eid, known),) = outbox.event_ids([("RecordUpsert:C-1", digest)], iter([uuid.uuid4()]))
            assert not known
            outbox.put("sqlite:///a.db", [OutboxEntry(eid, "t", b"k", b"sealed")])
            raise RuntimeError("sealing failed")
        assert outbox.pending("sqlite:///a.db") == []
        fresh = uuid.uuid4()
        ((again, known),) = outbox.event_ids([("RecordUpsert:C-1", digest)], iter([fresh]))
        assert (again, known) == (fresh, False)  # the rolled-back id was not remembered
        with outbox.transaction():
            outbox.put("sqlite:///a.db", [OutboxEntry(again, "t", b"k", b"sealed")])
        assert [e.event_id for e in outbox.pending("sqlite:///a.db")] == [again]
        with (
            pytest.raises(RuntimeError, match="already open"),
            outbox.transaction(),
            outbox.transaction(),
        ):
            pass


def test_mark_sent_of_more_than_one_statement_of_ids_drops_every_envelope(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        entries = [_entry() for _ in range(1203)]
        outbox.put("sqlite:///a.db", entries)
        outbox.mark_sent("sqlite:///a.db", [e.event_id for e in entries[:-1]])
        assert outbox.counts("sqlite:///a.db") == {"sent": 1202, "pending": 1}
        assert [e.event_id for e in outbox.pending("sqlite:///a.db")] == [entries[-1].event_id]
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        kept = db.execute("SELECT COUNT(*) FROM envelopes WHERE length(envelope) > 0").fetchone()
    assert kept == (1,)


def _holds_bytes(path: Path) -> dict[tuple[str, bytes], bool]:
    """Per (destination, event id): whether its row still holds envelope bytes."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT destination, event_id, length(envelope) > 0 FROM envelopes"
        ).fetchall()
    return {(dest, eid): bool(full) for dest, eid, full in rows}


def test_mark_sent_of_what_a_put_kept_marks_that_put_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    a, b = "sqlite:///a.db", "sqlite:///b.db"
    with Outbox(path) as outbox:
        first = [_entry() for _ in range(4)]
        kept = outbox.put(a, first)
        assert list(kept) == [e.event_id for e in first] and len(kept) == 4
        assert kept.seqs == range(1, 5)
        later = outbox.put(a, [_entry() for _ in range(2)])  # another batch, not yet sent
        other_log = outbox.put(b, first[:1])  # the same event sealed for another log
        # one of the first batch sealed again (resend) before the first was acknowledged:
        # the fresh envelope is not the one the log acknowledged
        resealed = OutboxEntry(first[3].event_id, first[3].topic, b"k", b"sealed again")
        outbox.put(a, [resealed])
        outbox.mark_sent(a, kept)
        assert outbox.counts(a) == {"sent": 3, "pending": 3}
        pending = [e.event_id for e in outbox.pending(a)]
        assert pending == [*later, first[3].event_id]
        assert outbox.pending(b) == [
            OutboxEntry(first[0].event_id, first[0].topic, b"k", b"sealed")
        ]
        full = _holds_bytes(path)
        assert [full[(a, e.event_id.bytes)] for e in first] == [False, False, False, True]
        assert full[(b, first[0].event_id.bytes)]
        # handed to another destination, what a put kept counts as event ids
        outbox.mark_sent(b, kept)
        assert outbox.pending(b) == []
        outbox.mark_sent(a, later)
        outbox.mark_sent(b, other_log)  # already marked: nothing changes
        assert outbox.counts(a) == {"sent": 5, "pending": 1}
        assert outbox.counts(b) == {"sent": 1, "pending": 0}


def test_what_one_outbox_kept_marks_nothing_in_another_by_its_seqs(tmp_path: Path) -> None:
    first, second = Outbox(tmp_path / "one.db"), Outbox(tmp_path / "two.db")
    try:
        entries = [_entry() for _ in range(3)]
        kept = first.put("sqlite:///a.db", entries)
        second.put("sqlite:///a.db", [_entry() for _ in range(3)])  # the same seqs, 1 to 3
        second.mark_sent("sqlite:///a.db", kept)  # by event id: none of them is in this file
        assert second.counts("sqlite:///a.db") == {"sent": 0, "pending": 3}
        first.mark_sent("sqlite:///a.db", kept)
        assert first.counts("sqlite:///a.db") == {"sent": 3, "pending": 0}
    finally:
        first.close()
        second.close()


def test_an_outbox_file_made_with_other_pages_keeps_them_and_works(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as db:  # a file an older publisher made: 4 KiB pages
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE unrelated (x)")
    entries = [_entry() for _ in range(5)]
    with Outbox(path) as outbox:
        outbox.mark_sent("sqlite:///a.db", outbox.put("sqlite:///a.db", entries[:3]))
        outbox.put("sqlite:///a.db", entries[3:])
        assert outbox.counts("sqlite:///a.db") == {"sent": 3, "pending": 2}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA page_size").fetchone() == (4096,)
    with Outbox(tmp_path / "new.db"), sqlite3.connect(tmp_path / "new.db") as db:
        assert db.execute("PRAGMA page_size").fetchone() == (16384,)


def test_event_ids_are_fresh_uuid7s_of_the_moment_they_were_drawn(
    world: World, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    before = int(time.time() * 1000)
    with Outbox(tmp_path / "outbox.db") as outbox:
        report = _publisher(world, url, outbox, MessageKeyer.generate()).publish(world.messages)
    after = int(time.time() * 1000)
    ids = [uuid.UUID(e) for e, _, _ in _on_log(world, url)]
    assert report.published == len(ids) == len(set(ids)) == len(world.messages)
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert all(before <= u.int >> 80 <= after for u in ids)
    assert len({u.int & ((1 << 62) - 1) for u in ids}) == len(ids)  # random bits differ


def test_put_sealed_keeps_one_topics_batch_and_refuses_lists_that_do_not_pair(
    tmp_path: Path,
) -> None:
    ids = [new_event_id() for _ in range(3)]
    with Outbox(tmp_path / "outbox.db") as outbox:
        with pytest.raises(ValueError), outbox.transaction():
            outbox.put_sealed("sqlite:///a.db", "t", ids, [b"k1", b"k2"], [b"e1", b"e2", b"e3"])
        assert outbox.counts() == {"sent": 0, "pending": 0}
        kept = outbox.put_sealed(
            "sqlite:///a.db", "t", ids, [b"k1", None, b"k3"], [b"1", b"2", b"3"]
        )
        assert list(kept) == ids and kept.seqs == range(1, 4)
        assert outbox.pending("sqlite:///a.db") == [
            OutboxEntry(ids[0], "t", b"k1", b"1"),
            OutboxEntry(ids[1], "t", None, b"2"),
            OutboxEntry(ids[2], "t", b"k3", b"3"),
        ]
        outbox.mark_sent("sqlite:///a.db", kept)
        assert outbox.counts("sqlite:///a.db") == {"sent": 3, "pending": 0}


def test_what_the_log_acknowledged_is_marked_sent_by_the_time_publish_ends(
    world: World, tmp_path: Path
) -> None:
    """A batch the log acknowledged is marked sent in the next batch's outbox transaction, the
    last one before ``publish`` returns — and also when ``publish`` ends early by raising."""
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    dest = destination_of(log_url)
    with Outbox(tmp_path / "outbox.db") as outbox:
        publisher = _publisher(world, log_url, outbox, MessageKeyer.generate())
        seen: list[dict[str, int]] = []

        def progress(n: int) -> None:  # between batches: the batch before is not marked yet
            seen.append(outbox.counts(dest))

        report = publisher.publish(world.messages, on_progress=progress)
        assert report.published == 20
        assert seen == [
            {"sent": 0, "pending": 7},
            {"sent": 7, "pending": 7},
            {"sent": 14, "pending": 6},
        ]
        assert outbox.counts(dest) == {"sent": 20, "pending": 0}

    def stop(n: int) -> None:
        raise RuntimeError("stopped after the first batch")

    with Outbox(tmp_path / "outbox-2.db") as outbox:
        publisher = _publisher(world, log_url, outbox, MessageKeyer.generate())
        with pytest.raises(RuntimeError, match="stopped"):
            publisher.publish(world.messages, on_progress=stop)
        assert outbox.counts(dest) == {"sent": 7, "pending": 0}
        again = publisher.publish(world.messages)  # the rest, and nothing twice
        assert (again.resent, again.published, again.unchanged) == (0, 13, 7)
        assert outbox.counts(dest) == {"sent": 20, "pending": 0}
