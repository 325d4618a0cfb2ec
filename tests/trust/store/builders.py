"""Builders of realistic store events for the store's tests (fastavro dict form records)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from schemas.codec import default_registry
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    MessageRejected,
    RecordAccepted,
    RecordRetracted,
    ReleaseIssued,
    SealedBlob,
)

VictimSpec = tuple[str, str, int | None]  # victim_id, sex, age_at_identification


def eid() -> str:
    return str(uuid.uuid4())


def case_record(
    source_id: str,
    case_id: str,
    victims: Sequence[VictimSpec] = (("v1", "Feminine", 23),),
    *,
    year: int | None = 2024,
    country: str = "NL",
    forms: Sequence[str] = ("SexualExploitation",),
) -> dict[str, Any]:
    """A minimised case record: every field of case_record.avsc, identifiers ``None`` — as the
    trust holds it, i.e. as the Avro decoder gives it back (defaults filled in)."""
    record = {
        "case_id": case_id,
        "reporting_entity": {
            "source_id": source_id,
            "organisation_type": "Police",
            "date_recorded": date(2024, 3, 1),
            "identification_status": "ActualVictimOfTrafficking",
            "identified_by": "Police",
            "referred_from": [],
            "referred_to": ["NGO"],
            "legal_basis": "OfficialAuthority",
            "consent_scope": ["Statistics"],
        },
        "event": {
            "year_of_exploitation": year,
            "country_of_exploitation": country,
            "forms_of_exploitation": list(forms),
            "methods_of_recruitment": ["ThroughOnlineSocialNetworks"],
            "methods_of_control": ["DebtBondage", "WithholdsDocuments"],
            "industry": "Unknown",
            "countries_of_recruitment": ["RO"],
            "countries_of_transit": [],
            "countries_of_exploitation": [country],
            "regions_of_exploitation": [],
            "start_date": date(2023, 6, 1),
            "end_date": None,
        },
        "victims": [
            {
                "victim_id": vid,
                "sex": sex,
                "age_at_identification": age,
                "citizenships": ["RO"],
                "age_first_trafficked": None,
                "relationship_to_trafficker": "Acquainted",
                "migration_status": "LabourMigrant",
                "country_of_residence": "RO",
                "identifiers": None,
            }
            for vid, sex, age in victims
        ],
        "perpetrators": [
            {
                "perpetrator_id": "p1",
                "sex": "Masculine",
                "age_group": "Age25To34",
                "citizenships": ["NL"],
                "roles": ["RecruiterOrIntermediary"],
                "legal_status": "Suspected",
            }
        ],
    }
    return _CASE.decode(_CASE.encode(record))


_CASE = default_registry().current("case_record")


def accepted(
    source_id: str = "src-a",
    case_id: str = "case-1",
    victims: Sequence[VictimSpec] = (("v1", "Feminine", 23),),
    *,
    event_id: str | None = None,
    sealed: dict[str, SealedBlob] | None = None,
    **record_kw: Any,
) -> RecordAccepted:
    return RecordAccepted(
        event_id=event_id or eid(),
        source_id=source_id,
        case_id=case_id,
        record=case_record(source_id, case_id, victims, **record_kw),
        sealed_identifiers=sealed or {},
        produced_at_ms=1_700_000_000_000,
        accepted_at_ms=1_700_000_000_500,
    )


def retracted(source_id: str = "src-a", case_id: str = "case-1") -> RecordRetracted:
    return RecordRetracted(eid(), source_id, case_id, "entered in error", 1_700_000_001_000)


def consent(source_id: str, case_id: str, victim_id: str) -> ConsentWithdrawn:
    return ConsentWithdrawn(eid(), source_id, case_id, victim_id, ["Statistics"], 1_700_000_002_000)


def disposal(source_id: str, case_id: str, victim_id: str | None) -> DisposalRequested:
    return DisposalRequested(eid(), source_id, case_id, victim_id, "retention", 1_700_000_003_000)


def rejected(
    source_id: str | None = "src-a", reason: str = "invalid_record", offset: int = 0
) -> MessageRejected:
    return MessageRejected(
        event_id=eid(),
        source_id=source_id,
        reason=reason,
        field_path="$.victims[0].sex",
        detail="unknown code",
        topic=f"tip.inbound.{source_id or 'Not-A-Source'}",
        partition=0,
        offset=offset,
        received_at_ms=1_700_000_004_000,
    )


def release(stream: str = "sdg-16-2-2", sequence: int = 1) -> ReleaseIssued:
    return ReleaseIssued(
        release_id=eid(),
        stream=stream,
        sequence=sequence,
        issued_at_ms=1_700_000_005_000,
        period="2024",
        cells_digest="ab" * 32,
        signature_b64="c2lnbmF0dXJl",
        metadata={"k": 10, "sources": ["src-a"], "as_of": "2024-12-31"},
    )
