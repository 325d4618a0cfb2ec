"""A store holding events of every stored layout reads as one: rows written before the
version-3 body (version 2: the fields and the JSON-sealed identifiers in the JSON part) keep
reading — identifiers included — beside version-3 rows, through every reader (the event reader,
the replay, a rebuild), and crypto-shredding a person makes their identifiers unreadable in
either layout. A link's evidence, packed since ``RecordLinked`` version 2, reads back as it
was, and version-1 links keep reading."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from schemas.codec import default_registry
from trust.convert import converter
from trust.store import projections
from trust.store.db import writer
from trust.store.errors import KeyShredded
from trust.store.events import LinkDecision, PairEvidence, RecordAccepted, RecordLinked, VictimRef
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.stored import UnreadableEvent, decode, encode_record, event_row, read_page
from trust.store.tables import stored_events
from trust.store.vault import Vault, identifiers_aad

from .builders import case_record, eid

KEK = bytes(range(32))
SOURCE = "police"
IDS: dict[str, dict[str, Any]] = {
    "v1": {
        "given_names": "Ana",
        "surnames": "Dumitru",
        "date_of_birth": date(1994, 11, 12),
        "documents": [{"number": "X1234567", "issuing_country": "RO"}],
        "phone": None,
        "shared_ids": [{"scheme": "nrm_referral", "value": "NRM-17"}],
    },
    "v2": {
        "given_names": None,
        "surnames": "Ionescu",
        "date_of_birth": None,
        "documents": [],
        "phone": "+40 700 000 000",
        "shared_ids": [],
    },
}
OPENED = {
    v: {**ids, "date_of_birth": ids["date_of_birth"] and ids["date_of_birth"].isoformat()}
    for v, ids in IDS.items()
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


def _record(case_id: str, with_ids: bool) -> dict[str, Any]:
    record = case_record(SOURCE, case_id, (("v1", "Feminine", 23), ("v2", "Masculine", None)))
    if with_ids:
        for victim in record["victims"]:
            victim["identifiers"] = IDS[victim["victim_id"]]
    return record


def _version_2_row(vault: Vault, case_id: str, seq: int) -> tuple[dict[str, Any], RecordAccepted]:
    """A row exactly as the code before version 3 wrote it: the identifiers sealed as their JSON
    (orjson, dates as ISO), the event's fields and the blobs (three fields each) in the JSON."""
    record = _record(case_id, with_ids=False)
    sealed = {
        v: vault.seal(
            vault.person_key_id(SOURCE, case_id, v),
            orjson.dumps(ids),
            identifiers_aad(SOURCE, case_id, v),
        )
        for v, ids in IDS.items()
    }
    event = RecordAccepted(
        eid(),
        SOURCE,
        case_id,
        record,
        sealed,
        1_700_000_000_000 + seq,
        1_700_000_000_900 + seq,
        agreement_version=1,
    )
    payload = {
        "event_id": event.event_id,
        "source_id": SOURCE,
        "case_id": case_id,
        "sealed_identifiers": {
            v: {"person_key_id": b.person_key_id, "nonce": b.nonce, "ciphertext": b.ciphertext}
            for v, b in sealed.items()
        },
        "produced_at_ms": event.produced_at_ms,
        "accepted_at_ms": event.accepted_at_ms,
        "kind": "RecordUpsert",
        "agreement_version": 1,
        "v": 2,
    }
    row = {
        "seq": seq,
        "event_type": "RecordAccepted",
        "event_id": event.event_id,
        "source_id": SOURCE,
        "payload": orjson.dumps(payload).decode(),
        "body": encode_record(record),
        "body_schema": default_registry().current("case_record").fingerprint,
        "recorded_at_ms": 1,
        "topic": "tip.inbound.police",
        "partition": 0,
        "offset": seq - 1,
    }
    return row, event


def _fill(store: EventStore, vault: Vault) -> dict[str, RecordAccepted]:
    """Two cases stored as version 2 (written straight into the table), then two through the
    real append with the vault's sealing (version 3)."""
    expected: dict[str, RecordAccepted] = {}
    rows = []
    for seq, case_id in enumerate(("old-1", "old-2"), start=1):
        row, event = _version_2_row(vault, case_id, seq)
        rows.append(row)
        expected[case_id] = event
    with writer(store.engine).begin() as conn:
        conn.execute(stored_events.insert(), rows)
    store.rebuild_projections()
    for offset, case_id in enumerate(("new-1", "new-2"), start=2):
        record, sealed = vault.seal_identifiers(SOURCE, case_id, _record(case_id, with_ids=True))
        event = RecordAccepted(
            eid(),
            SOURCE,
            case_id,
            record,
            sealed,
            1_700_000_001_000,
            1_700_000_001_250,
            agreement_version=1,
        )
        store.append([event], Position("tip.inbound.police", 0, offset), "trust-ingest")
        expected[case_id] = event
    return expected


def test_old_and_new_rows_read_alike_through_every_reader(store: EventStore) -> None:
    vault = Vault(store.engine, KEK)
    expected = _fill(store, vault)
    with store.engine.connect() as conn:
        layouts = dict(conn.execute(select(stored_events.c.seq, stored_events.c.payload)).all())
    assert [json.loads(p)["v"] for _, p in sorted(layouts.items())] == [2, 2, 3, 3]

    read = {ev.case_id: ev for _, ev in store.read() if isinstance(ev, RecordAccepted)}
    assert read == expected
    for case_id, ev in read.items():
        new = case_id.startswith("new")
        assert all((b.schema is not None) is new for b in ev.sealed_identifiers.values())
        for v, blob in ev.sealed_identifiers.items():
            assert vault.open_identifiers(SOURCE, case_id, v, blob) == OPENED[v]

    # records=False: everything but the record; the replay: everything but the sealed blobs
    with store.engine.connect() as conn, conn.begin():
        light = read_page(conn, 0, 100, records=False)
        replayed = projections.replay_page(conn, 0, 100)
    for (_, lite), (_, full) in zip(light, store.read(), strict=True):
        assert isinstance(lite, RecordAccepted) and isinstance(full, RecordAccepted)
        assert lite == dataclasses.replace(full, record={})
    for (_, fast), (_, full) in zip(replayed, store.read(), strict=True):
        assert isinstance(fast, RecordAccepted) and isinstance(full, RecordAccepted)
        assert fast == dataclasses.replace(full, sealed_identifiers={})
    before = projections.snapshot(store.engine)
    assert store.rebuild_projections() == 4
    assert projections.snapshot(store.engine) == before


def test_a_shredded_person_is_unreadable_in_either_layout(store: EventStore) -> None:
    vault = Vault(store.engine, KEK)
    _fill(store, vault)
    for case_id in ("old-1", "new-1"):
        assert vault.shred(vault.person_key_id(SOURCE, case_id, "v1"))
    fresh = Vault(store.engine, KEK)  # no cached key
    for _, ev in store.read():
        assert isinstance(ev, RecordAccepted)
        for v, blob in ev.sealed_identifiers.items():
            if ev.case_id.endswith("-1") and v == "v1":
                with pytest.raises(KeyShredded):
                    fresh.open_identifiers(SOURCE, ev.case_id, v, blob)
            else:
                assert fresh.open_identifiers(SOURCE, ev.case_id, v, blob) == OPENED[v]


def test_an_avro_sealed_blob_opens_only_as_what_it_was_sealed_as(store: EventStore) -> None:
    vault = Vault(store.engine, KEK)
    _, sealed = vault.seal_identifiers(SOURCE, "c", _record("c", with_ids=True))
    blob = sealed["v1"]
    assert blob.schema is not None
    # the form is bound into the associated data: neither the JSON form nor another schema
    for other in (
        dataclasses.replace(blob, schema=None),
        dataclasses.replace(blob, schema=bytes(32)),
    ):
        with pytest.raises(Exception):  # noqa: B017 - InvalidTag, or an unknown schema
            vault.open_identifiers(SOURCE, "c", "v1", other)
    with pytest.raises(Exception):  # noqa: B017 - bound to its victim record too
        vault.open_identifiers(SOURCE, "c", "v2", blob)
    assert vault.open_identifiers(SOURCE, "c", "v1", blob) == OPENED["v1"]


def test_an_identifier_value_the_generated_encoder_leaves_is_sealed_as_json(
    store: EventStore,
) -> None:
    vault = Vault(store.engine, KEK)
    record = _record("c", with_ids=True)
    record["victims"][1]["identifiers"] = {
        "surnames": "Ionescu",
        "documents": [],
    }  # fields left out
    _, sealed = vault.seal_identifiers(SOURCE, "c", record)
    assert sealed["v1"].schema is not None and sealed["v2"].schema is None
    assert vault.open_identifiers(SOURCE, "c", "v2", sealed["v2"]) == {
        "surnames": "Ionescu",
        "documents": [],
    }
    # a field the schema does not have: Avro would drop it, so JSON keeps it
    extra = _record("d", with_ids=True)
    extra["victims"][0]["identifiers"] = {**IDS["v1"], "nickname": "Ani"}
    _, more = vault.seal_identifiers(SOURCE, "d", extra)
    assert more["v1"].schema is None and more["v2"].schema is not None
    assert vault.open_identifiers(SOURCE, "d", "v1", more["v1"])["nickname"] == "Ani"
    event = RecordAccepted(
        eid(),
        SOURCE,
        "c",
        record | {"victims": [{**v, "identifiers": None} for v in record["victims"]]},
        sealed,
        1,
        2,
    )
    store.append([event], None, "x")
    ((_, back),) = list(store.read())
    assert back == event
    assert isinstance(back, RecordAccepted)
    assert (
        vault.open_identifiers(SOURCE, "c", "v2", back.sealed_identifiers["v2"])["surnames"]
        == "Ionescu"
    )


def test_version_3_rows_are_smaller(store: EventStore) -> None:
    vault = Vault(store.engine, KEK)
    _fill(store, vault)
    with store.engine.connect() as conn:
        sizes = [
            len(p.encode()) + len(b)
            for p, b in conn.execute(
                select(stored_events.c.payload, stored_events.c.body).order_by(stored_events.c.seq)
            )
        ]
    old, new = sizes[:2], sizes[2:]
    assert max(new) * 2 < min(old)


# --- a link's evidence: packed in version 2, the converter's form in version 1 ---------------------

_refs = st.builds(VictimRef, st.text(max_size=8), st.text(max_size=8), st.text(max_size=8))
_names = ("given_name", "surname", "date_of_birth", "document")
_same_levels = st.fixed_dictionaries({n: st.integers(0, 5) for n in _names})
_other_levels = st.dictionaries(st.text(max_size=6), st.integers(-1, 9), max_size=4)
_pairs = st.builds(
    PairEvidence,
    _refs,
    st.floats(0, 1),
    st.floats(-60, 60),
    st.one_of(_same_levels, _same_levels, _other_levels),
)


def _row_of(event: RecordLinked) -> dict[str, Any]:
    row = event_row(event, 1, None, None, None)
    return json.loads(row["payload"])  # type: ignore[no-any-return]


@given(victim=_refs, evidence=st.lists(_pairs, max_size=5))
def test_a_links_evidence_is_stored_packed_and_reads_back_as_it_was(
    victim: VictimRef, evidence: list[PairEvidence]
) -> None:
    event = RecordLinked(eid(), victim, "P-1", LinkDecision.JOINED, "fs1-x", evidence, 7)
    stored = _row_of(event)
    assert stored["v"] == 2
    assert "event_id" not in stored  # the row's column holds it
    assert decode("RecordLinked", stored, event_id=event.event_id) == event
    with pytest.raises(UnreadableEvent, match="event_id"):
        decode("RecordLinked", stored)
    # version 1, as the code before it wrote it: the converter's JSON, every key in every pair
    v1 = {**converter.unstructure(event), "v": 1}
    assert decode("RecordLinked", json.loads(json.dumps(v1))) == event
    if evidence:
        assert stored["evidence"]["levels"] == list(evidence[0].levels)


def test_packed_evidence_is_a_fraction_of_the_converters() -> None:
    pairs = [
        PairEvidence(
            VictimRef("police", f"C-{i}", f"VW{i:07d}"),
            0.9999871,
            14.25,
            {n: 3 for n in _names},
        )
        for i in range(4)
    ]
    event = RecordLinked(eid(), VictimRef("ngo", "N-1", "V1"), "P-1", "joined", "fs1-x", pairs, 7)
    packed = event_row(event, 1, None, None, None)["payload"]
    v1 = json.dumps({**converter.unstructure(event), "v": 1}, separators=(",", ":"))
    assert len(packed) < 0.55 * len(v1)
    assert set(json.loads(packed)["victim"]) == {"source_id", "case_id", "victim_id"}
