"""Agreement format 6: how long the inbound log keeps a source's envelopes after the trust took
them in; older formats read with the default, and the key refused in them."""

from __future__ import annotations

import pytest

from trust.stewardship.agreement import (
    DEFAULT_ENVELOPE_RETENTION_DAYS,
    FORMAT,
    AgreementError,
    parse_agreement,
)

BASE = {
    "source_id": "police",
    "version": 1,
    "in_force_from": "2024-01-01",
    "fields_shared": ["$"],
}


def test_format_6_reads_and_writes_the_envelope_retention() -> None:
    a = parse_agreement({"format": 6, **BASE, "envelope_retention_days": 0})
    assert a.envelope_retention_days == 0
    assert FORMAT == 6 and parse_agreement(a.to_mapping()) == a
    assert parse_agreement({"format": 6, **BASE}).envelope_retention_days == 7


@pytest.mark.parametrize("fmt", [1, 2, 3, 4, 5])
def test_older_formats_read_with_the_default_and_refuse_the_key(fmt: int) -> None:
    assert parse_agreement({"format": fmt, **BASE}).envelope_retention_days == (
        DEFAULT_ENVELOPE_RETENTION_DAYS
    )
    with pytest.raises(AgreementError) as refused:
        parse_agreement({"format": fmt, **BASE, "envelope_retention_days": 3})
    assert "$.envelope_retention_days: needs format 6" in refused.value.problems


@pytest.mark.parametrize("days", [-1, 3651])
def test_a_retention_out_of_range_is_refused_by_path(days: int) -> None:
    with pytest.raises(AgreementError) as refused:
        parse_agreement({"format": 6, **BASE, "envelope_retention_days": days, "version": 0})
    assert refused.value.problems == [
        "$.version: a whole number from 1",
        "$.envelope_retention_days: a whole number of days from 0 to 3650",
    ]


def test_legal_bases_classification_and_contact_are_read_and_checked() -> None:
    a = parse_agreement(
        {
            "format": 6,
            **BASE,
            "legal_bases_accepted": ["Consent", "OfficialAuthority"],
            "field_classification": {"$.event.location": "confidential"},
            "steward_contact": {"name": "Data protection office", "email": "dpo@example.org"},
        }
    )
    assert a.legal_bases_accepted == ("Consent", "OfficialAuthority")
    assert a.steward_contact is not None and a.steward_contact.email == "dpo@example.org"
    assert a.classification("$.event.location.city") == "confidential"  # its own listing
    assert a.classification("$.victims[].identifiers.surnames") == "secret"  # the default
    assert a.classification("$.event.year_of_exploitation") == "restricted"
    assert parse_agreement(a.to_mapping()) == a
    assert parse_agreement({"format": 6, **BASE}).legal_bases_accepted is None  # any

    with pytest.raises(AgreementError) as refused:
        parse_agreement(
            {
                "format": 6,
                **BASE,
                "legal_bases_accepted": ["Consent", "Whatever"],
                "field_classification": {"event": "top-secret"},
                "steward_contact": {"name": " "},
            }
        )
    assert refused.value.problems == [
        "$.legal_bases_accepted[1]: one of Consent, OfficialAuthority, PublicInterest, "
        "VitalInterests, Unknown",
        "$.field_classification: keys are field paths ($ or $.…)",
        "$.field_classification: levels are secret, confidential, restricted, public",
        "$.steward_contact.name: the role or office that answers, not empty",
    ]
