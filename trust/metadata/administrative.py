"""Administrative metadata: the terms the trust holds each source's data under, as the agreement
in force says them — its version, the purposes releases may and may not serve, the retention
term, and how its fields are classified (the manual's table 2 levels).

This is what an auditor or a source's steward checks the trust against, so it is read from the
same :class:`~trust.stewardship.agreement.Agreements` the policy point enforces, at the same
moment rule (a version applies from its effective date, never before the trust received it).
"""

from __future__ import annotations

from dataclasses import dataclass

from trust.stewardship.agreement import DEFAULT_CLASSIFICATION, Agreement, Agreements


@dataclass(frozen=True)
class Terms:
    """One source's agreement in force (``agreement`` None: none is — nothing is accepted)."""

    source_id: str
    agreement: Agreement | None
    versions_held: int

    def to_json(self) -> dict[str, object]:
        a = self.agreement
        if a is None:
            return {"source": self.source_id, "in_force": None, "versions_held": self.versions_held}
        contact = a.steward_contact
        return {
            "source": self.source_id,
            "versions_held": self.versions_held,
            "in_force": {
                "version": a.version,
                "in_force_from": a.in_force_from.isoformat(),
                "in_force_until": a.in_force_until.isoformat() if a.in_force_until else None,
                "purposes": {g.consumer: list(g.purposes) for g in a.releases_allowed},
                "purposes_forbidden": list(a.purposes_forbidden),
                "retention": (
                    None
                    if a.retention is None
                    else {
                        "years": a.retention.years,
                        "days": a.retention.days,
                        "at_end": a.retention.at_end,
                        "describe": a.retention.describe(),
                    }
                ),
                "envelope_retention_days": a.envelope_retention_days,
                "min_cell_size": a.min_cell_size,
                "classification": classification(a),
                "legal_bases_accepted": (
                    None if a.legal_bases_accepted is None else list(a.legal_bases_accepted)
                ),
                "steward_contact": None if contact is None else contact.__dict__,
            },
        }


def classification(agreement: Agreement) -> dict[str, str]:
    """The field classification in force: the defaults, overridden and extended by the
    agreement's own (by field path prefix; the longest listed prefix of a path decides)."""
    return {**DEFAULT_CLASSIFICATION, **agreement.field_classification}


def terms_in_force(
    agreements: Agreements, at_ms: int, sources: list[str] | None = None
) -> list[Terms]:
    """Per source (every source holding an agreement, or those named), the terms in force at
    ``at_ms``."""
    names = agreements.sources if sources is None else sources
    return [
        Terms(s, agreements.in_force_at_or_none(s, at_ms), len(agreements.versions(s)))
        for s in names
    ]
