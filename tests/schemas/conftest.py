from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from schemas.keys import Keyring, SigningKey, TrustKeyPair


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
