"""Ingest decodes and validates a payload in one pass where it can (``decode_checked``), and every
message is still accepted or rejected exactly as decoding and then validating says: the same
reason code, field path and detail for a value breaking a rule, a malformed payload or one of an
older schema — for the first message of a kind (decoded before its validator is made) and for
every later one."""

from __future__ import annotations

import copy
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas.codec import default_registry
from schemas.envelope import EventHeader, seal_batch
from schemas.errors import ContractError
from schemas.keys import Keyring, SigningKey, TrustKeyPair
from schemas.validate import validator_for
from transport import LogRecord, topics
from trust.ingest.pipeline import IngestPipeline, Rejection
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.eventstore import open_store
from trust.store.vault import Vault

REGISTRY = default_registry()
CASE = REGISTRY.current("case_record")
OLD_CASE = next(s for s in REGISTRY.shipped() if s.name == "case_record" and s is not CASE)
TRUST = TrustKeyPair.generate()
POLICE = SigningKey.generate("police")
TODAY = dt.date.today()


def record(case_id: str) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "reporting_entity": {
            "source_id": "police",
            "organisation_type": "Police",
            "legal_basis": "OfficialAuthority",
        },
        "event": {
            "year_of_exploitation": 2023,
            "country_of_exploitation": "NL",
            "forms_of_exploitation": ["ForcedLabour"],
            "start_date": dt.date(2022, 1, 5),
        },
        "victims": [
            {
                "victim_id": "V-1",
                "sex": "Feminine",
                "age_at_identification": 30,
                "citizenships": ["NG"],
                "identifiers": {
                    "given_names": "Amina",
                    "surnames": "Okafor",
                    "date_of_birth": dt.date(1993, 4, 2),
                    "documents": [],
                    "phone": None,
                },
            }
        ],
        "perpetrators": [],
    }


# a value breaking each kind of rule: ranges, control characters, dates, the cross-field rules
BROKEN: dict[str, Callable[[dict[str, Any]], Any]] = {
    "age": lambda r: r["victims"][0].update(age_at_identification=121),
    "nul": lambda r: r.update(case_id="C\x003"),
    "future": lambda r: r["event"].update(start_date=TODAY + dt.timedelta(days=5)),
    "order": lambda r: r["event"].update(end_date=dt.date(2021, 1, 1)),
    "twins": lambda r: r["victims"].append(copy.deepcopy(r["victims"][0])),
    "minor": lambda r: r["victims"][0].update(majority_status="Minor"),
    "source": lambda r: r["reporting_entity"].update(source_id="police\n"),
}


def broken(i: int, name: str) -> bytes:
    rec = record(f"C-{i}")
    BROKEN[name](rec)
    return CASE.encode(rec)


# (what the payload is, the writer schema's fingerprint, its bytes): valid records, each rule
# broken, malformed bytes and a record of the older schema
PAYLOADS: list[tuple[str, bytes, bytes]] = [
    ("valid", CASE.fingerprint, CASE.encode(record("C-1"))),
    *((name, CASE.fingerprint, broken(i, name)) for i, name in enumerate(BROKEN, 2)),
    ("cut", CASE.fingerprint, CASE.encode(record("C-20"))[:-2]),
    ("trailing", CASE.fingerprint, CASE.encode(record("C-21")) + b"\x00"),
    ("old", OLD_CASE.fingerprint, OLD_CASE.encode(CASE.decode(CASE.encode(record("C-22"))))),
    ("valid again", CASE.fingerprint, CASE.encode(record("C-23"))),
]


def expected(fingerprint: bytes, payload: bytes) -> Rejection | None:
    """What decoding, then validating, says of a payload: None (accepted) or its rejection."""
    try:
        datum = REGISTRY.decode_payload("RecordUpsert", fingerprint, payload)
        validator_for(CASE, decoded=True).check(datum)
    except ContractError as err:
        return Rejection(err.code, err.field_path, err.message)
    return None


def batch(offset: int) -> list[LogRecord]:
    ms = int(time.time() * 1000)
    pairs = [
        (
            EventHeader(
                "police", uuid.uuid4(), "RecordUpsert", fp, ms, TRUST.key_id, POLICE.key_id
            ),
            payload,
        )
        for _, fp, payload in PAYLOADS
    ]
    envelopes = seal_batch(pairs, trust_key=TRUST.public, source_key=POLICE)
    topic = topics.inbound("police")
    return [LogRecord(topic, 0, offset + i, b"k", env, (), ms) for i, env in enumerate(envelopes)]


def test_each_message_is_accepted_or_rejected_as_decoding_then_validating_says(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        agreement = Agreement(
            "police", 1, dt.date(2000, 1, 1), None, ("$",), (ReleaseGrant("m", ("statistics",)),)
        )
        pipeline = IngestPipeline(
            keyring=Keyring([TRUST], [POLICE.public]),
            policy=Policy(Agreements([agreement], CASE)),
            registry=REGISTRY,
            vault=Vault(store.engine, os.urandom(32)),
        )
        want = [expected(fp, payload) for _, fp, payload in PAYLOADS]
        assert want[0] is None and want[-1] is None  # the valid ones are accepted
        assert sum(w is not None for w in want) == len(PAYLOADS) - 3  # all else: refused
        # the first batch meets the kind first (two passes for its first message), the second
        # finds its validator made (the one pass for every message it can take)
        for offset in (0, len(PAYLOADS)):
            outcomes = pipeline.process_batch(batch(offset))
            got = [o.rejection for o in outcomes]
            assert got == want, [
                name for (name, _, _), g, w in zip(PAYLOADS, got, want, strict=True) if g != w
            ]
            for (name, _, _), o in zip(PAYLOADS, outcomes, strict=True):
                assert (o.accepted is None) == (o.rejection is not None), name
        one_pass = pipeline._payloads._checked[("RecordUpsert", CASE.fingerprint)][1]
        assert one_pass(PAYLOADS[0][2]) is not None
        assert list(pipeline._payloads._checked) == [("RecordUpsert", CASE.fingerprint)]
    finally:
        store.close()
