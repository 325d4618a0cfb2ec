"""The producer refuses, before sealing, what the trust would refuse for its size."""

from __future__ import annotations

from pathlib import Path

from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher
from schemas.errors import ReasonCode
from schemas.keys import SigningKey, TrustKeyPair
from schemas.rules import MAX_PAYLOAD_BYTES
from transport import open_log, topics


def _record(case_id: str, victims: int, name_chars: int) -> dict[str, object]:
    return {
        "case_id": case_id,
        "reporting_entity": {
            "source_id": "police",
            "organisation_type": "Police",
            "legal_basis": "OfficialAuthority",
        },
        "event": {"year_of_exploitation": 2023, "forms_of_exploitation": ["ForcedLabour"]},
        "victims": [
            {
                "victim_id": f"V{i}",
                "sex": "Feminine",
                "identifiers": {"given_names": "A" * name_chars, "surnames": "B" * name_chars},
            }
            for i in range(victims)
        ],
        "perpetrators": [],
    }


def test_a_record_too_large_for_the_trust_is_reported_not_sent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(url) as log, Outbox(tmp_path / "outbox.db") as outbox:
        pub = Publisher(
            log=log,
            source_key=SigningKey.generate("police"),
            trust_key=TrustKeyPair.generate().public,
            outbox=outbox,
            keyer=MessageKeyer.generate(),
            destination=url,
        )
        big = _record("C-big", 200, 1000)  # every field within its own limit, the whole too big
        small = _record("C-small", 1, 10)
        report = pub.publish(
            [
                Outgoing("RecordUpsert", "case:C-big", big, rows=(1,)),
                Outgoing("RecordUpsert", "case:C-small", small, rows=(2,)),
            ]
        )
        assert report.published == 1
        assert [(p.row, p.code) for p in report.problems] == [(1, ReasonCode.TOO_LARGE)]
        assert str(MAX_PAYLOAD_BYTES) in report.problems[0].expected
        assert len(log.read_all(topics.inbound("police"))) == 1
