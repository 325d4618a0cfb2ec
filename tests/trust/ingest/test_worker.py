"""The ingest worker on a real embedded log and real stores: one bad message never stops it, and no
source can touch another source's records.

Each test seals real envelopes (HPKE + signed Merkle batch) as an agency would, puts them on the
log, and runs the worker until caught up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from schemas.codec import default_registry
from schemas.envelope import EventHeader, seal_batch
from schemas.errors import ReasonCode
from schemas.keys import Keyring, SigningKey, TrustKeyPair
from schemas.receipt import verify_receipt
from schemas.rules import MAX_MESSAGE_BYTES
from transport import EventLog, open_log, topics
from trust.follow import follow
from trust.ingest.pipeline import IngestPipeline
from trust.ingest.receipts import ReceiptPublisher
from trust.ingest.worker import IngestWorker
from trust.release.counts import counted_persons
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import RecordAccepted
from trust.store.eventstore import EventStore, open_store
from trust.store.tables import proj_rejections
from trust.store.vault import Vault

REGISTRY = default_registry()
CASE = REGISTRY.current("case_record")
TRUST = TrustKeyPair.generate()
KEYS = {s: SigningKey.generate(s) for s in ("police", "ngo")}
RELEASE_KEY = SigningKey.generate("trust")


def record(source: str, case_id: str, victims: list[str], year: int = 2023) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "reporting_entity": {
            "source_id": source,
            "organisation_type": "Police" if source == "police" else "NGO",
            "legal_basis": "OfficialAuthority",
        },
        "event": {
            "year_of_exploitation": year,
            "country_of_exploitation": "NL",
            "forms_of_exploitation": ["ForcedLabour"],
        },
        "victims": [
            {"victim_id": v, "sex": "Feminine", "age_at_identification": 30, "citizenships": []}
            for v in victims
        ],
        "perpetrators": [],
    }


def seal(
    source: str,
    datums: list[dict[str, Any]],
    *,
    event_ids: list[uuid.UUID] | None = None,
    produced_at: dt.datetime | None = None,
    kind: str = "RecordUpsert",
) -> list[bytes]:
    """Envelopes for ``datums`` as ``source`` seals them (encoded without validation, as an
    agency with a broken or hostile publisher could)."""
    ms = int((produced_at or dt.datetime.now(dt.UTC)).timestamp() * 1000)
    ids = event_ids or [uuid.uuid4() for _ in datums]
    key = KEYS[source]
    schema = REGISTRY.for_kind(kind)
    pairs = [
        (
            EventHeader(source, eid, kind, schema.fingerprint, ms, TRUST.key_id, key.key_id),
            schema.encode(d),
        )
        for eid, d in zip(ids, datums, strict=True)
    ]
    return seal_batch(pairs, trust_key=TRUST.public, source_key=key)


def agreement(
    source: str, start: dt.date = dt.date(2000, 1, 1), end: dt.date | None = None
) -> Agreement:
    return Agreement(source, 1, start, end, ("$",), (ReleaseGrant("ministry", ("statistics",)),))


class Trust:
    """A worker over a real log and store, with every agency registered."""

    def __init__(
        self,
        log: EventLog,
        store: EventStore,
        agreements: list[Agreement],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.store = store
        pipeline = IngestPipeline(
            clock=clock,
            keyring=Keyring([TRUST], [k.public for k in KEYS.values()]),
            policy=Policy(Agreements(agreements, CASE)),
            registry=REGISTRY,
            vault=Vault(store.engine, os.urandom(32)),
        )
        self.worker = IngestWorker(log=log, store=store, pipeline=pipeline, poll_timeout=0.05)

    def run(self) -> dict[str, int]:
        rejected: dict[str, int] = {}
        for _ in range(1000):
            s = self.worker.step()
            for reason, n in s.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + n
            if s.messages == 0 and s.caught_up:
                self.worker.close()
                follow(self.store, ReceiptPublisher(self.log, RELEASE_KEY))
                return rejected
        raise AssertionError("the worker never caught up")

    def counted(self, source: str) -> int:
        return sum(1 for p in counted_persons(self.store) if p.person_id[0] == source)


def send(log: EventLog, source: str, envelopes: list[bytes], topic: str | None = None) -> None:
    t = topic or topics.inbound(source)
    log.create_topic(t, 2)
    for env in envelopes:
        log.append(t, env, key=b"k")
    log.flush()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def trust(tmp_path: Path, store_url: str) -> Iterator[Trust]:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(store_url)
    try:
        yield Trust(log, store, [agreement("police"), agreement("ngo")])
    finally:
        store.close()
        log.close()


def test_a_topic_that_names_no_source_is_quarantined_and_ingest_goes_on(trust: Trust) -> None:
    send(
        trust.log, "police", seal("police", [record("police", "C-1", ["V1"])]), "tip.inbound.Police"
    )
    send(trust.log, "police", seal("police", [record("police", "C-2", ["V1"])]))
    assert trust.run() == {"invalid_topic": 1}
    assert trust.counted("police") == 1
    # a second start reads the same topics again and does not stop either
    assert trust.run() == {}
    with trust.store.engine.connect() as conn:
        rows = conn.execute(select(proj_rejections.c.source_id, proj_rejections.c.reason)).all()
    assert [tuple(r) for r in rows] == [(None, "invalid_topic")]


def test_an_oversized_message_is_refused_by_size(trust: Trust) -> None:
    send(trust.log, "police", [b"\x00" * (MAX_MESSAGE_BYTES + 1)])
    send(trust.log, "police", seal("police", [record("police", "C-2", ["V1"])]))
    assert trust.run() == {"too_large": 1}
    assert trust.counted("police") == 1
    receipts = trust.log.read_all(topics.rejected("police"))
    assert len(receipts) == 1
    receipt = verify_receipt(receipts[0].value, {RELEASE_KEY.key_id: RELEASE_KEY.public})
    assert receipt.reason == "too_large" and receipt.topic == topics.inbound("police")


@pytest.mark.parametrize(
    "case_id", ["C" * 300, "CR-2024\x00-7"], ids=["300-character reference", "NUL in reference"]
)
def test_a_reference_the_store_cannot_hold_is_rejected_with_a_reason(
    trust: Trust, case_id: str
) -> None:
    bad = record("police", case_id, ["V1"])
    good = [record("police", f"C-{i}", ["V1"]) for i in range(3)]
    send(trust.log, "police", seal("police", [good[0], bad, *good[1:]]))
    assert trust.run() == {"invalid_record": 1}
    assert trust.counted("police") == 3


def test_victim_ids_that_join_alike_are_two_persons(trust: Trust) -> None:
    send(
        trust.log,
        "police",
        seal(
            "police",
            [record("police", "CR:2024:7", ["V1"]), record("police", "CR:2024", ["7:V1"])],
        ),
    )
    assert trust.run() == {}
    assert trust.counted("police") == 2


def test_an_agency_cannot_squat_another_agencys_event_ids(trust: Trust) -> None:
    police_ids = [uuid.uuid4() for _ in range(20)]
    police = seal(
        "police", [record("police", f"P-{i}", ["V1"]) for i in range(20)], event_ids=police_ids
    )
    # the ngo copies the ids it can read in the police envelopes' headers and goes first
    forged = seal("ngo", [record("ngo", f"N-{i}", ["V1"]) for i in range(20)], event_ids=police_ids)
    send(trust.log, "ngo", forged)
    assert trust.run() == {}
    send(trust.log, "police", police)
    assert trust.run() == {}
    assert trust.counted("police") == 20 and trust.counted("ngo") == 20
    # and a re-send of the same police events is still refused as a duplicate of police's own
    send(trust.log, "police", police[:3])
    assert trust.run() == {"duplicate_event": 3}


def test_a_backdated_header_cannot_select_an_expired_agreement(
    tmp_path: Path, store_url: str
) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(store_url)
    try:
        expired = agreement("police", dt.date(2000, 1, 1), dt.date(2020, 1, 1))
        trust = Trust(log, store, [expired])
        backdated = dt.datetime(2019, 6, 1, tzinfo=dt.UTC)
        send(
            log, "police", seal("police", [record("police", "C-1", ["V1"])], produced_at=backdated)
        )
        assert trust.run() == {ReasonCode.NO_AGREEMENT.value: 1}
        assert trust.counted("police") == 0
    finally:
        store.close()
        log.close()


def test_a_message_the_store_refuses_becomes_a_rejection(tmp_path: Path) -> None:
    # a store constraint this message alone breaks (a trigger stands in for any such clash)
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON proj_records WHEN NEW.case_id = 'C-bad' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        trust = Trust(log, store, [agreement("police")])
        datums = [record("police", c, ["V1"]) for c in ("C-1", "C-bad", "C-2")]
        send(log, "police", seal("police", datums))
        assert trust.run() == {ReasonCode.CONFLICTING_IDENTITY.value: 1}
        assert trust.counted("police") == 2
        receipts = log.read_all(topics.rejected("police"))
        assert len(receipts) == 1
    finally:
        store.close()
        log.close()


def test_a_withdrawal_of_consent_counts_after_the_agreement_lapsed(
    tmp_path: Path, store_url: str
) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(store_url)
    now = [dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp()]
    try:
        lapsing = agreement("police", dt.date(2000, 1, 1), dt.date(2030, 1, 1))
        trust = Trust(log, store, [lapsing], clock=lambda: now[0])
        send(log, "police", seal("police", [record("police", "C-1", ["V1", "V2"])]))
        assert trust.run() == {} and trust.counted("police") == 2
        now[0] = dt.datetime(2031, 6, 1, tzinfo=dt.UTC).timestamp()
        withdrawal = {"case_id": "C-1", "victim_id": "V1", "withdrawn_scopes": ["All"]}
        send(log, "police", seal("police", [withdrawal], kind="ConsentWithdrawal"))
        send(log, "police", seal("police", [record("police", "C-2", ["V1"])]))
        assert trust.run() == {"no_agreement": 1}  # new data needs an agreement; a withdrawal not
        assert trust.counted("police") == 1
    finally:
        store.close()
        log.close()


def test_each_batch_is_admitted_under_the_agreements_in_force_when_it_arrived(
    tmp_path: Path,
) -> None:
    # the pipeline asks the policy once per source and kind in a batch: a source without an
    # agreement is still refused message by message, and the next batch is judged afresh
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    now = [dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp()]
    try:
        lapsing = agreement("police", dt.date(2000, 1, 1), dt.date(2030, 1, 1))
        trust = Trust(log, store, [lapsing], clock=lambda: now[0])
        send(log, "police", seal("police", [record("police", f"C-{i}", ["V1"]) for i in range(3)]))
        send(log, "ngo", seal("ngo", [record("ngo", f"N-{i}", ["V1"]) for i in range(2)]))
        assert trust.run() == {ReasonCode.NO_AGREEMENT.value: 2}
        assert trust.counted("police") == 3 and trust.counted("ngo") == 0
        now[0] = dt.datetime(2031, 6, 1, tzinfo=dt.UTC).timestamp()
        send(log, "police", seal("police", [record("police", f"D-{i}", ["V1"]) for i in range(2)]))
        assert trust.run() == {ReasonCode.NO_AGREEMENT.value: 2}
        assert trust.counted("police") == 3
    finally:
        store.close()
        log.close()


def test_each_accepted_record_names_the_agreement_version_it_was_admitted_under(
    tmp_path: Path,
) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        first = agreement("police", dt.date(2000, 1, 1), dt.date(2030, 1, 1))
        second = dataclasses.replace(
            first, version=2, in_force_from=dt.date(2030, 1, 1), in_force_until=None
        )
        now = [dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp()]
        trust = Trust(log, store, [first, second], clock=lambda: now[0])
        send(log, "police", seal("police", [record("police", "C-1", ["V1"])]))
        assert trust.run() == {}
        now[0] = dt.datetime(2031, 6, 1, tzinfo=dt.UTC).timestamp()
        send(log, "police", seal("police", [record("police", "C-2", ["V1"])]))
        assert trust.run() == {}
        versions = {
            ev.case_id: ev.agreement_version
            for _, ev in store.read()
            if isinstance(ev, RecordAccepted)
        }
        assert versions == {"C-1": 1, "C-2": 2}
    finally:
        store.close()
        log.close()


def test_a_failing_store_stops_the_worker_and_loses_nothing(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        trust = Trust(log, store, [agreement("police")])
        send(log, "police", seal("police", [record("police", "C-1", ["V1"])]))
        assert trust.run() == {}
        before = store.last_seq(), store.positions("trust-ingest")
        with (
            store.engine.begin() as conn
        ):  # the store breaks (a table is gone): not a message's fault
            conn.exec_driver_sql("DROP TABLE proj_records")
        send(log, "police", seal("police", [record("police", "C-2", ["V1"])]))
        with pytest.raises(OperationalError):
            trust.run()
        assert (store.last_seq(), store.positions("trust-ingest")) == before
    finally:
        store.close()
        log.close()


def test_a_receipt_names_no_event_id_it_could_not_verify(trust: Trust) -> None:
    [env] = seal("police", [record("police", "C-1", ["V1"])])
    tampered = bytearray(env)
    tampered[-1] ^= 1  # the ciphertext's last byte: the Merkle proof no longer reaches the root
    send(trust.log, "police", [bytes(tampered)])
    assert trust.run() == {"bad_signature": 1}
    [raw] = trust.log.read_all(topics.rejected("police"))
    receipt = verify_receipt(raw.value, {RELEASE_KEY.key_id: RELEASE_KEY.public})
    assert receipt.event_id is None  # anyone could have written the header's id


class _RacedPipeline(IngestPipeline):
    """Once, between sealing a batch and storing it, another writer makes the keys of its new
    persons (the vault's ``KeysTaken`` race)."""

    raced = False

    def process_batch(self, records: Any, *, defer_keys: bool = False) -> Any:
        out = super().process_batch(records, defer_keys=defer_keys)
        if not self.raced:
            self.raced = True
            other = Vault(self.vault._engine, KEK)
            for o in out:
                if isinstance(o.accepted, RecordAccepted):
                    for blob in o.accepted.sealed_identifiers.values():
                        other.seal(blob.person_key_id, b"another writer's", b"aad")
        return out


KEK = bytes(range(32))


def test_a_batch_whose_new_keys_were_taken_meanwhile_is_sealed_again(
    tmp_path: Path, store_url: str
) -> None:
    ids = {
        "given_names": "Ana",
        "surnames": "Pop",
        "date_of_birth": dt.date(1990, 1, 2),
        "documents": [],
        "shared_ids": [],
        "phone": None,
    }
    datum = record("police", "C-1", ["V1"])
    datum["victims"][0]["identifiers"] = ids
    with open_log(f"sqlite:///{tmp_path / 'log.db'}") as log:
        store = open_store(store_url)
        pipeline = _RacedPipeline(
            keyring=Keyring([TRUST], [k.public for k in KEYS.values()]),
            policy=Policy(Agreements([agreement("police")], CASE)),
            registry=REGISTRY,
            vault=Vault(store.engine, KEK),
        )
        worker = IngestWorker(log=log, store=store, pipeline=pipeline, poll_timeout=0.05)
        send(log, "police", seal("police", [datum]))
        stats = worker.step()
        worker.close()
        assert pipeline.raced and stats.accepted == 1 and not stats.rejected
        [(_, event)] = list(store.read())
        assert isinstance(event, RecordAccepted)
        opened = Vault(store.engine, KEK).open_identifiers(
            "police", "C-1", "V1", event.sealed_identifiers["V1"]
        )
        assert opened["surnames"] == "Pop" and opened["date_of_birth"] == "1990-01-02"
        store.close()


def test_a_record_under_a_legal_basis_the_agreement_refuses_is_rejected_with_a_receipt(
    tmp_path: Path,
) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        police = dataclasses.replace(
            agreement("police"), legal_bases_accepted=("Consent", "OfficialAuthority")
        )
        trust = Trust(log, store, [police])
        ok = record("police", "C-1", ["V1", "V2"])
        bad = record("police", "C-2", ["V1", "V2"])
        bad["reporting_entity"]["legal_basis"] = "PublicInterest"
        send(log, "police", seal("police", [ok, bad]))
        assert trust.run() == {"legal_basis_not_accepted": 1}
        accepted = [ev.case_id for _, ev in store.read() if isinstance(ev, RecordAccepted)]
        assert accepted == ["C-1"]
        with store.engine.connect() as conn:
            [(reason, path)] = conn.execute(
                select(proj_rejections.c.reason, proj_rejections.c.field_path)
            ).all()
        assert (reason, path) == ("legal_basis_not_accepted", "$.reporting_entity.legal_basis")
        [receipt] = log.read_all(topics.rejected("police"))
        signed = verify_receipt(receipt.value, {RELEASE_KEY.key_id: RELEASE_KEY.public})
        assert signed.reason == "legal_basis_not_accepted"
    finally:
        store.close()
        log.close()


def test_a_source_that_publishes_for_the_first_time_while_the_worker_runs_is_ingested(
    tmp_path: Path,
) -> None:
    """A worker that keeps running (``trust run --follow``) reads a topic made after it
    started: an agency onboarded while the trust runs is not left unread until a restart."""
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        trust = Trust(log, store, [agreement("police"), agreement("ngo")])
        worker = trust.worker
        worker.topic_refresh_s = 0.0  # list the topics at every step
        send(log, "police", seal("police", [record("police", "C-1", ["V1"])]))

        def until_caught_up() -> int:
            messages = 0
            for _ in range(200):
                s = worker.step()
                messages += s.messages
                if s.messages == 0 and s.caught_up:
                    return messages
            raise AssertionError("the worker never caught up")

        assert until_caught_up() == 1
        send(log, "ngo", seal("ngo", [record("ngo", "N-1", ["V1"]), record("ngo", "N-2", ["V1"])]))
        assert until_caught_up() == 2  # the same worker, never closed
        assert trust.counted("ngo") == 2 and trust.counted("police") == 1
        send(log, "police", seal("police", [record("police", "C-2", ["V1"])]))
        assert until_caught_up() == 1  # nothing read twice after the consumer started again
        worker.close()
    finally:
        store.close()
        log.close()
