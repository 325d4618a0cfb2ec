"""Events: JSON-safe round trips, the registry, and the guards against stray plaintext."""

from __future__ import annotations

import json
from datetime import date

import pytest

from trust.store.events import (
    EVENT_TYPES,
    Event,
    RecordAccepted,
    SealedBlob,
    SubscriptionAdded,
    SubscriptionRemoved,
    decode,
)

from .builders import accepted, case_record, consent, disposal, rejected, release, retracted


def every_event() -> list[Event]:
    blob = SealedBlob("ab" * 32, "bm9uY2U=", "Y2lwaGVy")
    return [
        accepted(sealed={"v1": blob}),
        retracted(),
        consent("s", "c", "v"),
        disposal("s", "c", None),
        disposal("s", "c", "v"),
        rejected(),
        rejected(source_id=None),
        release(),
        SubscriptionAdded("e1", "ministry", "victims_by_sex_age_form", "statistics", 1),
        SubscriptionRemoved("e2", "ministry", "victims_by_sex_age_form", 2),
    ]


@pytest.mark.parametrize("event", every_event(), ids=lambda e: type(e).__name__)
def test_round_trip_through_json(event: Event) -> None:
    as_json = json.dumps(event.to_dict())  # JSON-safe: would raise on a date or bytes
    again = decode(event.event_type, json.loads(as_json))
    assert again == event
    assert type(again) is type(event)


def test_registry_names_every_type() -> None:
    assert set(EVENT_TYPES) == {
        "RecordAccepted",
        "RecordRetracted",
        "ConsentWithdrawn",
        "DisposalRequested",
        "MessageRejected",
        "ReleaseIssued",
        "SubscriptionAdded",
        "SubscriptionRemoved",
    }
    with pytest.raises(ValueError, match="unknown event type"):
        decode("Nope", {})


def test_record_dates_come_back_as_dates() -> None:
    ev = accepted()
    d = ev.to_dict()
    assert d["record"]["reporting_entity"]["date_recorded"] == "2024-03-01"
    back = RecordAccepted.from_dict(json.loads(json.dumps(d)))
    assert back.record["event"]["start_date"] == date(2023, 6, 1)
    assert back.record["event"]["end_date"] is None


def test_a_record_with_identifiers_in_clear_is_refused() -> None:
    record = case_record("s", "c")
    record["victims"][0]["identifiers"] = {"given_names": "Zelda", "documents": []}
    with pytest.raises(ValueError, match=r"\$\.victims\[0\]\.identifiers") as info:
        RecordAccepted("e", "s", "c", record, {}, 0, 0)
    assert "Zelda" not in str(info.value)


def test_a_rejection_reason_must_be_a_reason_code() -> None:
    with pytest.raises(ValueError):
        rejected(reason="victim Zelda had a bad date")


def test_reprs_show_no_content() -> None:
    text = repr(accepted(victims=[("v1", "Feminine", 41)]))
    assert "Feminine" not in text and "SexualExploitation" not in text
