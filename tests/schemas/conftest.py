from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from schemas.keys import Keyring, SigningKey, TrustKeyPair


def victims_rule(
    condition: str, seen: list[str] | None = None
) -> Callable[[Any, Any, str, int], None]:
    """Rule lines (a checked encoder's or decoder's) refusing a case record whose victims list
    meets ``condition`` (its variable as ``{v}``: ``"{v}"`` refuses any victim, ``"not {v}"``
    none); ``seen`` collects the variables they were emitted for."""

    def rule(src: Any, node: Any, v: str, depth: int) -> None:
        if node.path == "$.victims":
            if seen is not None:
                seen.append(v)
            src.add(depth, f"if {condition.format(v=v)}:")
            src.add(depth + 1, "raise _Unfit")

    return rule


def sample_record(
    case_id: str = "C-1", name: str = "Amina", dob: dt.date | None = dt.date(1999, 4, 2)
) -> dict[str, Any]:
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
            "forms_of_exploitation": ["SexualExploitation", "ForcedCriminality"],
            "start_date": dt.date(2022, 1, 5),
        },
        "victims": [
            {
                "victim_id": "V-1",
                "sex": "Feminine",
                "age_at_identification": 17,
                "citizenships": ["NG"],
                "identifiers": {
                    "given_names": name,
                    "surnames": "Okafor",
                    "date_of_birth": dob,
                    "documents": [{"number": "A1234567", "issuing_country": "NG"}],
                    "phone": None,
                },
            }
        ],
        "perpetrators": [{"perpetrator_id": "P-1", "sex": "Masculine", "roles": ["Exploiter"]}],
    }


@pytest.fixture(scope="session")
def trust_key() -> TrustKeyPair:
    return TrustKeyPair.generate()


@pytest.fixture(scope="session")
def source_key() -> SigningKey:
    return SigningKey.generate("police")


@pytest.fixture(scope="session")
def keyring(trust_key: TrustKeyPair, source_key: SigningKey) -> Keyring:
    return Keyring([trust_key], [source_key.public])
