"""Events: JSON-safe round trips, the registry, and the guards against stray plaintext."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import ReasonCode
from trust.store.events import (
    EVENT_TYPES,
    AccessRefused,
    ConsentWithdrawn,
    DisposalRequested,
    Event,
    IdentifiersViewed,
    InboundDeleted,
    LinkDecision,
    LinkModelAdopted,
    LinkOverridden,
    LinkReviewOpened,
    MessageRejected,
    PairEvidence,
    PersonsMerged,
    PersonSplit,
    RecordAccepted,
    RecordLinked,
    RecordRetracted,
    RecordUnlinked,
    ReleaseIssued,
    SealedBlob,
    SourceKeyRevoked,
    SubscriptionAdded,
    SubscriptionApproved,
    SubscriptionRemoved,
    TrustKeyRetired,
    VictimRef,
    json_safe,
)
from trust.store.stored import UnreadableEvent, decode, event_row

from .builders import accepted, case_record, consent, disposal, rejected, release, retracted


def every_event() -> list[Event]:
    blob = SealedBlob("ab" * 32, "bm9uY2Vub25jZTEy", "Y2lwaGVy")  # a 12-byte nonce, as the vault's
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
        SubscriptionAdded("e1b", "ministry", "victims_by_year_sex", "statistics", 1, "alice"),
        SubscriptionApproved(
            "e1c", "e1b", "ministry", "victims_by_year_sex", "statistics", "ab" * 16, "bob", 2
        ),
        SubscriptionRemoved("e2", "ministry", "victims_by_sex_age_form", 2),
        AccessRefused("e2b", "", "manage_subscriptions", "no_token", 3),
        SourceKeyRevoked("e2c", "police", "ab12cd34", "operator", 4),
        InboundDeleted("e2d", "tip.inbound.police", 0, 120, 5),
        TrustKeyRetired("e2e", "0123abcd", 6),
        *linkage_events(),
    ]


def linkage_events() -> list[Event]:
    a, b = VictimRef("police", "c1", "v1"), VictimRef("ngo", "c9", "v2")
    pair = PairEvidence(b, 0.97, 5.25, {"given_name": 1, "surname": 0, "date_of_birth": 3})
    return [
        RecordLinked("e3", a, "P-1", LinkDecision.JOINED, "fs1-x", [pair], 3),
        RecordLinked("e4", b, "P-2", LinkDecision.NEW_PERSON, "fs1-x", [], 4),
        RecordUnlinked("e5", a, "P-1", "retracted", 5),
        PersonsMerged("e6", "P-1", ["P-2"], "operator review", [pair], 6),
        PersonSplit("e7", "P-1", "P-3", [a], "re-resolved", 7),
        LinkReviewOpened("e8", "r1", a, "P-4", {"P-1": [pair]}, "fs1-x", 8),
        LinkOverridden("e9", a, [b], True, "r1", "operator-1", 9),
        LinkOverridden("e10", a, [b], False, None, "operator-1", 10),
        IdentifiersViewed("e11", "operator-1", [a, b], "linkage review r1", 11),
        LinkModelAdopted("e12", {"prior": 0.01, "comparisons": []}, 120, "operator-1", 12),
    ]


def _stored(event: Event) -> Event:
    row = event_row(event, 1, "t", 0, 0)
    return decode(
        row["event_type"],
        json.loads(row["payload"]),
        row["body"],
        row["body_schema"],
        event_id=row["event_id"],
        source_id=row["source_id"],
    )


@pytest.mark.parametrize("event", every_event(), ids=lambda e: type(e).__name__)
def test_round_trip_through_a_stored_row(event: Event) -> None:
    again = _stored(event)
    assert again == event
    assert type(again) is type(event)
    assert json.loads(event_row(event, 1, None, None, None)["payload"])["v"] == event.version


sealed_blobs = st.builds(
    SealedBlob,
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.binary(min_size=12, max_size=12).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
)
ids = st.uuids().map(str)
names = st.from_regex(r"[a-z][a-z0-9_-]{1,20}", fullmatch=True)
refs = st.text(min_size=1, max_size=40)
ms = st.integers(0, 2**45)
any_event = st.one_of(
    st.builds(
        accepted,
        source_id=names,
        case_id=refs,
        victims=st.lists(
            st.tuples(
                refs,
                st.sampled_from(["Feminine", "Masculine", "Unknown"]),
                st.one_of(st.none(), st.integers(0, 120)),
            ),
            max_size=3,
            unique_by=lambda v: v[0],
        ),
        sealed=st.dictionaries(refs, sealed_blobs, max_size=3),
    ),
    st.builds(RecordRetracted, ids, names, refs, st.text(max_size=20), ms),
    st.builds(
        ConsentWithdrawn,
        ids,
        names,
        refs,
        refs,
        st.lists(st.sampled_from(["Statistics", "Research"])),
        ms,
    ),
    st.builds(
        DisposalRequested, ids, names, refs, st.one_of(st.none(), refs), st.text(max_size=20), ms
    ),
    st.builds(
        MessageRejected,
        st.one_of(st.none(), ids),
        st.one_of(st.none(), names),
        st.sampled_from([c.value for c in ReasonCode]),
        st.one_of(st.none(), st.just("$.case_id")),
        st.text(max_size=30),
        st.just("tip.inbound.x"),
        st.integers(0, 9),
        st.integers(0, 2**40),
        ms,
    ),
    st.builds(
        ReleaseIssued,
        ids,
        names,
        st.integers(1, 10**6),
        ms,
        st.text(max_size=10),
        st.text(alphabet="0123456789abcdef", max_size=64),
        st.text(max_size=20),
        st.dictionaries(names, st.one_of(st.integers(), st.text(max_size=10)), max_size=3),
        st.text(max_size=30),
        st.text(max_size=30),
        names,
        names,
    ),
    st.builds(SubscriptionAdded, ids, names, names, names, ms),
    st.builds(SubscriptionRemoved, ids, names, names, ms),
)


@given(any_event)
def test_every_event_round_trips_through_the_converter_and_the_store_row(event: Event) -> None:
    assert _stored(event) == event


def test_a_version_1_record_is_upcast() -> None:
    # how 0.1.0 stored an accepted record: the record in the JSON with ISO dates, no version
    ev = accepted()
    v1 = {
        "event_id": ev.event_id,
        "source_id": ev.source_id,
        "case_id": ev.case_id,
        "kind": "RecordUpsert",
        "record": json_safe(ev.record),
        "sealed_identifiers": {},
        "produced_at_ms": ev.produced_at_ms,
        "accepted_at_ms": ev.accepted_at_ms,
    }
    back = decode("RecordAccepted", json.loads(json.dumps(v1)))
    assert back == ev
    assert back.record["event"]["start_date"] == date(2023, 6, 1)


def test_a_record_read_without_its_body_keeps_everything_else() -> None:
    # a version-2 row (a nonce the version-3 body does not hold): its body is the record alone
    ev = accepted(sealed={"v1": SealedBlob("ab" * 32, "bm9uY2U=", "Y3Q=")})
    row = event_row(ev, 1, "t", 0, 0)
    payload = json.loads(row["payload"])
    assert payload["v"] == 2
    light = decode("RecordAccepted", payload, None, row["body_schema"], records=False)
    assert isinstance(light, RecordAccepted)
    assert light.record == {}
    assert dataclasses.replace(light, record=ev.record) == ev
    with pytest.raises(UnreadableEvent, match="no body"):
        decode("RecordAccepted", payload, None, row["body_schema"])


def test_a_version_3_record_read_without_its_record_keeps_everything_else() -> None:
    ev = accepted(sealed={"v1": SealedBlob("ab" * 32, "bm9uY2Vub25jZTEy", "Y3Q=")})
    row = event_row(ev, 1, "t", 0, 0)
    assert row["payload"] == '{"v":3}'
    ids = {"event_id": row["event_id"], "source_id": row["source_id"]}
    light = decode(
        "RecordAccepted", {"v": 3}, row["body"], row["body_schema"], records=False, **ids
    )
    assert isinstance(light, RecordAccepted)
    assert light.record == {}
    assert dataclasses.replace(light, record=ev.record) == ev
    with pytest.raises(UnreadableEvent, match="no body"):
        decode("RecordAccepted", {"v": 3}, None, row["body_schema"], **ids)
    with pytest.raises(UnreadableEvent, match="event_id and source_id"):
        decode("RecordAccepted", {"v": 3}, row["body"], row["body_schema"])
    with pytest.raises(UnreadableEvent, match="unreadable"):
        decode("RecordAccepted", {"v": 3}, row["body"][:-3], row["body_schema"], **ids)


def test_integers_beyond_64_bits_survive_the_store_row() -> None:
    # orjson writes no such integer and reads one back as a float: neither may reach the store
    event = dataclasses.replace(release(), metadata={"big": -(2**63) - 1, "huge": 2**70})
    assert _stored(event) == event


def test_unknown_types_and_future_versions_are_errors() -> None:
    with pytest.raises(UnreadableEvent, match="unknown event type"):
        decode("Nope", {})
    with pytest.raises(UnreadableEvent, match="newer"):
        decode("RecordRetracted", {"v": 99})


def test_registry_names_every_type() -> None:
    assert set(EVENT_TYPES) == {
        "RecordAccepted",
        "RecordRetracted",
        "SubscriptionApproved",
        "AccessRefused",
        "SourceKeyRevoked",
        "InboundDeleted",
        "TrustKeyRetired",
        "ConsentWithdrawn",
        "DisposalRequested",
        "MessageRejected",
        "ReleaseIssued",
        "SubscriptionAdded",
        "SubscriptionRemoved",
        "RecordLinked",
        "RecordUnlinked",
        "PersonsMerged",
        "PersonSplit",
        "LinkReviewOpened",
        "LinkOverridden",
        "IdentifiersViewed",
        "LinkModelAdopted",
        "PersonKeysShredded",
        "KekRotated",
        "PrincipalAdded",
        "PrincipalRevoked",
        "AgreementSubmitted",
        "RetentionApplied",
    }


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
