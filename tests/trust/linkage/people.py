"""What the linkage tests' victims state besides their identifiers."""

from __future__ import annotations

from typing import Any


def age_on_record(identifiers: dict[str, Any] | None) -> int | None:
    """The age the record states: consistent with the date of birth on the record's date
    (``case_record``'s 2024-03-01), unknown without one (linkage compares age with dates)."""
    dob = (identifiers or {}).get("date_of_birth")
    if dob is None:
        return None
    return 2024 - dob.year - (1 if (dob.month, dob.day) > (3, 1) else 0)
