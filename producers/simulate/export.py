"""Each agency's export as it would hand it over: its own columns, code values and date formats.

Writes ``DIR/<source>/records.csv``, ``DIR/<source>/mapping.yaml`` (the ``producers.mapping``
format, mapping that export correctly) and ``DIR/<source>/agreement.yaml`` (the agency's
data-sharing agreement with the trust: everything shared, in force since 2000, statistics for the
ministry) per agency, and ``DIR/truth.csv`` (source, row, true person, true event) which only tests
and the demo read.
"""

from __future__ import annotations

import csv
import io
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from producers.simulate import noise
from producers.simulate.agencies import AGENCIES, Agency, Detection
from producers.simulate.population import LAST_DATE, Event, Perpetrator, Victim

ISO3 = {
    "GB": "GBR", "AL": "ALB", "VN": "VNM", "RO": "ROU", "NG": "NGA", "ER": "ERI", "SD": "SDN",
    "UA": "UKR", "PL": "POL", "IN": "IND", "CN": "CHN", "PH": "PHL", "AF": "AFG", "BG": "BGR",
    "EG": "EGY", "SY": "SYR", "FR": "FRA", "BE": "BEL", "NL": "NLD", "IE": "IRL",
}  # fmt: skip
COUNTRY_NAMES = {
    "GB": "United Kingdom", "AL": "Albania", "VN": "Viet Nam", "RO": "Romania", "NG": "Nigeria",
    "ER": "Eritrea", "SD": "Sudan", "UA": "Ukraine", "PL": "Poland", "IN": "India",
    "CN": "China", "PH": "Philippines", "AF": "Afghanistan", "BG": "Bulgaria", "EG": "Egypt",
    "SY": "Syria", "FR": "France", "BE": "Belgium", "NL": "Netherlands", "IE": "Ireland",
}  # fmt: skip
ISO2 = {c: c for c in ISO3}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _columns(names: str) -> tuple[str, ...]:
    return tuple(names.split())


def _fmt(d: date | None, fmt: str) -> str:
    if d is None:
        return ""
    if fmt == "%d %b %Y":  # month names written here, not by the C library's locale
        return f"{d.day:02d} {MONTHS[d.month - 1]} {d.year}"
    return d.strftime(fmt)


def _later(d: date, rng: random.Random, lo: int, hi: int) -> date:
    return min(d + timedelta(days=rng.randint(lo, hi)), LAST_DATE)


def _codes(forward: dict[str, Any]) -> dict[str, Any]:
    """ICS-TIP code → agency value, inverted into the mapping's agency value → ICS-TIP code."""
    return {v: k for k, v in forward.items()}


@dataclass
class _Ctx:
    """One agency's export in progress: its RNG, its ids and its noise."""

    agency: Agency
    rng: random.Random
    seen: dict[str, set[str]]
    person_ids: dict[str, str]
    id_format: str
    used_ids: set[str] = field(default_factory=set)

    def person_id(self, person_id: str) -> str:
        known = self.person_ids.get(person_id)
        if known is None:
            while True:
                known = self.id_format.format(self.rng.randint(10000, 9999999))
                if known not in self.used_ids:
                    break
            self.used_ids.add(known)
            self.person_ids[person_id] = known
        return known

    def name(self, text: str) -> str:
        return noise.name(self.rng, text, self.agency.noise)

    def birth(self, v: Victim) -> date | None:
        return noise.birth_date(self.rng, v.person.birth_date, self.agency.noise)

    def age(self, v: Victim) -> int:
        return noise.age(self.rng, v.age, self.agency.noise)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


RowBuilder = Callable[[_Ctx, Detection, int, Victim, str], dict[str, str]]


@dataclass(frozen=True, slots=True)
class Layout:
    """An agency's export format and the mapping file that reads it."""

    columns: tuple[str, ...]
    mapping: dict[str, Any]
    case_id: Callable[[Event, int], str]
    person_id_format: str
    row: RowBuilder
    bom: bool = False


# --- police: formal-ish, ISO3 nationalities, dd/mm/yyyy, a primary suspect per victim -----------

POLICE_SEX = {"Feminine": "F", "Masculine": "M", "NonConforming": "X", "Unknown": "U"}
POLICE_FORMS = {
    "SexualExploitation": "MS-SEX",
    "ForcedLabour": "MS-LAB",
    "ForcedCriminality": "MS-CRIM",
    "Servitude": "MS-SERV",
    "ForcedBegging": "MS-BEG",
    "ForcedMarriage": "MS-MAR",
    "Other": "MS-OTH",
}
POLICE_SUSPECT_STATUS = {"Suspected": "SUSPECT", "Prosecuted": "CHARGED"}
POLICE_VICTIM_STATUS = {"PossibleVictimOfTrafficking": "POSS", "ActualVictimOfTrafficking": "CONF"}


def _police_row(c: _Ctx, d: Detection, i: int, v: Victim, case_id: str) -> dict[str, str]:
    e, p = d.event, v.person
    dated = c.chance(0.7)
    with_doc = p.document is not None and c.chance(0.7)
    suspect: Perpetrator | None = e.perpetrators[i % len(e.perpetrators)] if c.chance(0.7) else None
    return {
        "crime_ref": case_id,
        "victim_ref": c.person_id(p.person_id),
        "surname": c.name(p.surname).upper(),
        "forename": c.name(p.given_name),
        "gender": POLICE_SEX["Unknown" if c.chance(0.02) else p.sex],
        "dob": _fmt(c.birth(v), "%d/%m/%Y"),
        "age": str(c.age(v)),
        "nationality": ISO3[p.citizenship],
        "offence_type": "|".join(POLICE_FORMS[f] for f in e.forms),
        "offence_year": str(e.year),
        "country_offence": e.country,
        "start_date": _fmt(e.start if dated else None, "%d/%m/%Y"),
        "end_date": _fmt(e.end if dated else None, "%d/%m/%Y"),
        "date_recorded": _fmt(_later(e.identified, c.rng, 0, 20), "%d/%m/%Y"),
        "passport_no": (p.document or "") if with_doc else "",
        "passport_country": ISO3[p.citizenship] if with_doc else "",
        "phone": f"0{p.phone}" if p.phone and c.chance(0.6) else "",
        "suspect_ref": f"S-{suspect.perpetrator_id[1:]}" if suspect else "",
        "suspect_gender": POLICE_SEX[suspect.sex] if suspect else "",
        "suspect_nationality": ISO3[suspect.citizenship] if suspect else "",
        "suspect_status": POLICE_SUSPECT_STATUS["Prosecuted" if c.chance(0.3) else "Suspected"]
        if suspect
        else "",
        "victim_status": "CONF" if c.chance(0.4) else "POSS",
    }


POLICE = Layout(
    columns=_columns(
        "crime_ref victim_ref surname forename gender dob age nationality offence_type "
        "offence_year country_offence start_date end_date date_recorded passport_no "
        "passport_country phone suspect_ref suspect_gender suspect_nationality "
        "suspect_status victim_status"
    ),
    mapping={
        "source_id": "police",
        "organisation_type": "Police",
        "description": "Police crime records: one row per victim of a modern slavery crime",
        "case_column": "crime_ref",
        "victim_column": "victim_ref",
        "perpetrator_column": "suspect_ref",
        "constants": {
            "$.reporting_entity.legal_basis": "OfficialAuthority",
            "$.reporting_entity.identified_by": "Police",
        },
        "fields": {
            "$.victims[].identifiers.surnames": {"column": "surname"},
            "$.victims[].identifiers.given_names": {"column": "forename"},
            "$.victims[].sex": {"column": "gender", "codes": _codes(POLICE_SEX)},
            "$.victims[].identifiers.date_of_birth": {
                "column": "dob",
                "type": "date",
                "format": "%d/%m/%Y",
            },
            "$.victims[].age_at_identification": {"column": "age", "type": "int"},
            "$.victims[].citizenships": {"column": "nationality", "codes": _codes(ISO3)},
            "$.event.forms_of_exploitation": {
                "column": "offence_type",
                "split": "|",
                "codes": _codes(POLICE_FORMS),
            },
            "$.event.year_of_exploitation": {"column": "offence_year", "type": "int"},
            "$.event.country_of_exploitation": {"column": "country_offence"},
            "$.event.start_date": {"column": "start_date", "type": "date", "format": "%d/%m/%Y"},
            "$.event.end_date": {"column": "end_date", "type": "date", "format": "%d/%m/%Y"},
            "$.reporting_entity.date_recorded": {
                "column": "date_recorded",
                "type": "date",
                "format": "%d/%m/%Y",
            },
            "$.victims[].identifiers.documents[].number": {"column": "passport_no"},
            "$.victims[].identifiers.documents[].issuing_country": {
                "column": "passport_country",
                "codes": _codes(ISO3),
            },
            "$.victims[].identifiers.phone": {"column": "phone"},
            "$.perpetrators[].sex": {"column": "suspect_gender", "codes": _codes(POLICE_SEX)},
            "$.perpetrators[].citizenships": {
                "column": "suspect_nationality",
                "codes": _codes(ISO3),
            },
            "$.perpetrators[].legal_status": {
                "column": "suspect_status",
                "codes": _codes(POLICE_SUSPECT_STATUS),
            },
            "$.reporting_entity.identification_status": {
                "column": "victim_status",
                "codes": _codes(POLICE_VICTIM_STATUS),
            },
        },
    },
    case_id=lambda e, seq: f"CR/{e.year}/{seq:05d}",
    person_id_format="VR{:06d}",
    row=_police_row,
)

# --- ngo_haven: high coverage, low formality, words for codes, much left blank -------------------

NGO_SEX = {"Feminine": "F", "Masculine": "M", "NonConforming": "X", "Unknown": "?"}
NGO_FORMS = {
    "SexualExploitation": "sexual",
    "ForcedLabour": "labour",
    "ForcedCriminality": "criminal",
    "Servitude": "domestic",
    "ForcedBegging": "begging",
    "ForcedMarriage": "marriage",
    "Other": "other",
}
NGO_INDUSTRY = {
    "A_AgricultureForestryAndFishing": "farm",
    "C_Manufacturing": "factory",
    "F_Construction": "building site",
    "G_WholesaleAndRetailTradeRepairOfMotorVehicles": "car wash",
    "I_AccommodationAndFoodServiceActivities": "hospitality",
    "S_OtherServiceActivities": "nail bar",
    "H_TransportationAndStorage": "warehouse",
    "T_ActivitiesOfHouseholdsAsEmployers": "private home",
    "Unknown": "not known",
}
NGO_CONTROL = {
    "DebtBondage": "debt",
    "FalsePromises": "lies",
    "PhysicalThreats": "threats",
    "TakesEarnings": "took wages",
    "WithholdsDocuments": "kept passport",
    "PsychologicalAbuse": "emotional abuse",
    "ExcessiveWorkingHours": "long hours",
    "ThreatensChildrenFamily": "threats to family",
}
NGO_RECRUITMENT = {
    "ThroughFriendsOrSocialEvents": "friend",
    "ThroughFamilyOrFamilyEvents": "family",
    "ThroughOnlineSocialNetworks": "social media",
    "ThroughAnOnlineAdvertisement": "online ad",
    "AtWork": "at work",
}
NGO_REFERRED = {"NationalReferralMechanism": "NRM", "Police": "police"}


#: The age bands of the CTDC global dataset's ``ageBroad`` (its export writes ``a--b``).
CTDC_AGE_BANDS: tuple[tuple[int, int | None], ...] = (
    (0, 8),
    (9, 17),
    (18, 20),
    (21, 23),
    (24, 26),
    (27, 29),
    (30, 38),
    (39, 47),
    (48, None),
)


def _ngo_age_when_unknown(v: Victim, case_id: str) -> tuple[str, str]:
    """(age band, minor yes/no) of a victim whose exact age the NGO did not record: its
    caseworkers note a CTDC-style band for some, only whether the person is a minor for the
    others (chosen by the case id, so that no random draw of the simulation moves)."""
    if zlib.crc32(case_id.encode()) % 2:
        return "", "yes" if v.age < 18 else "no"
    for lower, upper in CTDC_AGE_BANDS:
        if upper is None or v.age <= upper:
            return (f"{lower}+" if upper is None else f"{lower}--{upper}"), ""
    raise AssertionError("the bands cover every age")


def _ngo_row(c: _Ctx, d: Detection, i: int, v: Victim, case_id: str) -> dict[str, str]:
    e, p = d.event, v.person
    referred = [k for k, p_ in (("NRM", 0.5), ("police", 0.2)) if c.chance(p_)]
    surname = "" if c.chance(c.agency.noise.missing_surname) else c.name(p.surname)
    row = {
        "case_ref": case_id,
        "client_no": c.person_id(p.person_id),
        "first_name": c.name(p.given_name),
        "last_name": surname,
        "gender": NGO_SEX["Unknown" if c.chance(0.03) else p.sex],
        "age": str(c.age(v)) if c.chance(0.9) else "unknown",
        "age_band": "",
        "minor": "",
        "dob": _fmt(c.birth(v), "%d.%m.%Y"),
        "nationality": COUNTRY_NAMES[p.citizenship],
        "exploitation": ";".join(NGO_FORMS[f] for f in e.forms),
        "industry": NGO_INDUSTRY[e.industry] if c.chance(0.7) else "",
        "year": str(e.year) if c.chance(0.85) else "",
        "recorded": _fmt(_later(e.identified, c.rng, 0, 45), "%Y-%m-%d"),
        "phone": f"+44 {p.phone[:4]} {p.phone[4:]}" if p.phone and c.chance(0.8) else "",
        "referred_to": ",".join(referred),
        "control": "; ".join(NGO_CONTROL[m] for m in e.methods_of_control),
        "recruitment": NGO_RECRUITMENT[e.method_of_recruitment] if c.chance(0.6) else "",
    }
    if row["age"] == "unknown":
        row["age_band"], row["minor"] = _ngo_age_when_unknown(v, case_id)
    return row


NGO = Layout(
    columns=_columns(
        "case_ref client_no first_name last_name gender age age_band minor dob nationality "
        "exploitation industry year recorded phone referred_to control recruitment"
    ),
    mapping={
        "source_id": "ngo_haven",
        "organisation_type": "NGO",
        "description": "Haven shelter case management export (spreadsheet)",
        "case_column": "case_ref",
        "victim_column": "client_no",
        "constants": {
            "$.reporting_entity.legal_basis": "Consent",
            "$.reporting_entity.consent_scope": ["Assistance", "Statistics"],
            "$.reporting_entity.identification_status": "PossibleVictimOfTrafficking",
            "$.reporting_entity.identified_by": "NGO",
            "$.event.country_of_exploitation": "GB",
        },
        "fields": {
            "$.victims[].identifiers.given_names": "first_name",
            "$.victims[].identifiers.surnames": "last_name",
            "$.victims[].sex": {"column": "gender", "codes": _codes(NGO_SEX)},
            "$.victims[].age_at_identification": {
                "column": "age",
                "type": "int",
                "missing": ["unknown"],
            },
            # where the age is unknown: a CTDC-style band, or only whether a minor
            "$.victims[].age_range": "age_band",
            "$.victims[].majority_status": {
                "column": "minor",
                "codes": {"yes": "Minor", "no": "Adult"},
            },
            "$.victims[].identifiers.date_of_birth": {
                "column": "dob",
                "type": "date",
                "format": "%d.%m.%Y",
            },
            "$.victims[].citizenships": {"column": "nationality", "codes": _codes(COUNTRY_NAMES)},
            "$.event.forms_of_exploitation": {
                "column": "exploitation",
                "split": ";",
                "codes": _codes(NGO_FORMS),
            },
            "$.event.industry": {"column": "industry", "codes": _codes(NGO_INDUSTRY)},
            "$.event.year_of_exploitation": {"column": "year", "type": "int"},
            "$.reporting_entity.date_recorded": {"column": "recorded", "type": "date"},
            "$.victims[].identifiers.phone": "phone",
            "$.reporting_entity.referred_to": {
                "column": "referred_to",
                "split": ",",
                "codes": _codes(NGO_REFERRED),
            },
            "$.event.methods_of_control": {
                "column": "control",
                "split": ";",
                "codes": _codes(NGO_CONTROL),
            },
            "$.event.methods_of_recruitment": {
                "column": "recruitment",
                "codes": _codes(NGO_RECRUITMENT),
            },
        },
    },
    case_id=lambda e, seq: f"H{e.year % 100:02d}-{seq:04d}",
    person_id_format="C{:06d}",
    row=_ngo_row,
    bom=True,  # saved from a spreadsheet
)

# --- labour_inspectorate: forced labour, upper-case ASCII names, yyyymmdd, numeric sex -----------

LABOUR_SEX = {"Masculine": "1", "Feminine": "2", "Unknown": "9"}
LABOUR_FINDINGS = {
    "ForcedLabour": "FL",
    "ForcedCriminality": "FC",
    "SexualExploitation": "SE",
    "Servitude": "DS",
    "ForcedBegging": "OT",
    "ForcedMarriage": "OT",
    "Other": "OT",
}
LABOUR_FINDING_CODES = {"FL": "ForcedLabour", "FC": "ForcedCriminality", "SE": "SexualExploitation",
                        "DS": "Servitude", "OT": "Other"}  # fmt: skip
LABOUR_SECTOR = {
    "A_AgricultureForestryAndFishing": "A",
    "C_Manufacturing": "C",
    "F_Construction": "F",
    "G_WholesaleAndRetailTradeRepairOfMotorVehicles": "G",
    "H_TransportationAndStorage": "H",
    "I_AccommodationAndFoodServiceActivities": "I",
    "S_OtherServiceActivities": "S",
    "T_ActivitiesOfHouseholdsAsEmployers": "T",
    "Unknown": "Z",
}
LABOUR_CONTROL = {
    "DebtBondage": "DEBT",
    "FalsePromises": "DECEPT",
    "PhysicalThreats": "THREAT",
    "TakesEarnings": "PAY",
    "WithholdsDocuments": "DOCS",
    "PsychologicalAbuse": "INTIM",
    "ExcessiveWorkingHours": "HOURS",
    "ThreatensChildrenFamily": "THREAT-FAM",
}


def _labour_row(c: _Ctx, d: Detection, i: int, v: Victim, case_id: str) -> dict[str, str]:
    e, p = d.event, v.person
    with_doc = p.document is not None and c.chance(0.8)
    return {
        "inspection_no": case_id,
        "worker_id": c.person_id(p.person_id),
        "family_name": noise.ascii_fold(c.name(p.surname)).upper(),
        "given_name": noise.ascii_fold(c.name(p.given_name)).upper(),
        "sex": LABOUR_SEX.get(p.sex, "9"),
        "birth_date": _fmt(c.birth(v), "%Y%m%d"),
        "nationality": p.citizenship,
        "id_number": (p.document or "") if with_doc else "",
        "id_country": p.citizenship if with_doc else "",
        "sector": LABOUR_SECTOR[e.industry],
        "finding": "+".join(dict.fromkeys(LABOUR_FINDINGS[f] for f in e.forms)),
        "inspection_date": _fmt(_later(e.identified, c.rng, 0, 10), "%Y%m%d"),
        "year": str(e.year),
        "controls": ",".join(LABOUR_CONTROL[m] for m in e.methods_of_control),
    }


LABOUR = Layout(
    columns=_columns(
        "inspection_no worker_id family_name given_name sex birth_date nationality "
        "id_number id_country sector finding inspection_date year controls"
    ),
    mapping={
        "source_id": "labour_inspectorate",
        "organisation_type": "LabourInspectorate",
        "description": "Labour inspectorate findings of forced labour, one row per worker",
        "case_column": "inspection_no",
        "victim_column": "worker_id",
        "constants": {
            "$.reporting_entity.legal_basis": "PublicInterest",
            "$.reporting_entity.identified_by": "NonPoliceGovernmentalOrganization",
            "$.reporting_entity.identification_status": "PossibleVictimOfTrafficking",
            "$.event.country_of_exploitation": "GB",
        },
        "fields": {
            "$.victims[].identifiers.surnames": "family_name",
            "$.victims[].identifiers.given_names": "given_name",
            "$.victims[].sex": {"column": "sex", "codes": _codes(LABOUR_SEX)},
            "$.victims[].identifiers.date_of_birth": {
                "column": "birth_date",
                "type": "date",
                "format": "%Y%m%d",
            },
            "$.victims[].citizenships": {"column": "nationality"},
            "$.victims[].identifiers.documents[].number": "id_number",
            "$.victims[].identifiers.documents[].issuing_country": "id_country",
            "$.event.industry": {"column": "sector", "codes": _codes(LABOUR_SECTOR)},
            "$.event.forms_of_exploitation": {
                "column": "finding",
                "split": "+",
                "codes": LABOUR_FINDING_CODES,
            },
            "$.reporting_entity.date_recorded": {
                "column": "inspection_date",
                "type": "date",
                "format": "%Y%m%d",
            },
            "$.event.year_of_exploitation": {"column": "year", "type": "int"},
            "$.event.methods_of_control": {
                "column": "controls",
                "split": ",",
                "codes": _codes(LABOUR_CONTROL),
            },
        },
    },
    case_id=lambda e, seq: f"INS-{e.year}-{seq:04d}",
    person_id_format="W{:06d}",
    row=_labour_row,
)

# --- nrm: one referral per person, numeric form codes, decisions, who referred -------------------

NRM_SEX = {"Feminine": "female", "Masculine": "male", "NonConforming": "other", "Unknown": "unk"}
NRM_FORMS = {
    "SexualExploitation": "1",
    "ForcedLabour": "2",
    "Servitude": "3",
    "ForcedCriminality": "4",
    "ForcedBegging": "5",
    "ForcedMarriage": "6",
    "Other": "7",
}
NRM_RESPONDER = {"Police": "police", "NGO": "ngo", "LabourInspectorate": "la", "Other": "other"}
NRM_DECISION = {
    "ActualVictimOfTrafficking": "CG",
    "PossibleVictimOfTrafficking": "RG",
    "NotAVictimOfTrafficking": "NEG",
}
NRM_CROSS_BORDER = {"CrossBorder": "Y", "Domestic": "N"}


_RESPONDERS = (
    ("police", "Police"),
    ("ngo_haven", "NGO"),
    ("labour_inspectorate", "LabourInspectorate"),
)


def _nrm_row(c: _Ctx, d: Detection, i: int, v: Victim, case_id: str) -> dict[str, str]:
    e, p = d.event, v.person
    responders = [
        kind for source, kind in _RESPONDERS if f"{e.event_id}/{p.person_id}" in c.seen[source]
    ] or ["Other"]
    u = c.rng.random()
    decision = "CG" if u < 0.55 else "RG" if u < 0.85 else "NEG"
    return {
        "referral_id": case_id,
        "subject_id": c.person_id(p.person_id),
        "given_names": c.name(p.given_name),
        "family_name": c.name(p.surname),
        "sex": NRM_SEX[p.sex],
        "dob": _fmt(c.birth(v), "%Y-%m-%d"),
        "age_at_referral": str(c.age(v)),
        "nationality": p.citizenship,
        "exploitation_type": ",".join(NRM_FORMS[f] for f in e.forms),
        "first_responder": NRM_RESPONDER[responders[0]],
        "decision": decision,
        "referral_date": _fmt(_later(e.identified, c.rng, 0, 60), "%Y-%m-%d"),
        "exploitation_year": str(e.year),
        "exploitation_country": e.country,
        "cross_border": NRM_CROSS_BORDER[e.cross_border],
    }


NRM = Layout(
    columns=_columns(
        "referral_id subject_id given_names family_name sex dob age_at_referral "
        "nationality exploitation_type first_responder decision referral_date "
        "exploitation_year exploitation_country cross_border"
    ),
    mapping={
        "source_id": "nrm",
        "organisation_type": "NationalReferralMechanism",
        "description": "National referral mechanism: one referral per potential victim",
        "case_column": "referral_id",
        "victim_column": "subject_id",
        "constants": {
            "$.reporting_entity.legal_basis": "PublicInterest",
            "$.reporting_entity.identified_by": "NonPoliceGovernmentalOrganization",
        },
        "fields": {
            "$.victims[].identifiers.given_names": "given_names",
            "$.victims[].identifiers.surnames": "family_name",
            "$.victims[].sex": {"column": "sex", "codes": _codes(NRM_SEX)},
            "$.victims[].identifiers.date_of_birth": {"column": "dob", "type": "date"},
            "$.victims[].age_at_identification": {"column": "age_at_referral", "type": "int"},
            "$.victims[].citizenships": "nationality",
            "$.event.forms_of_exploitation": {
                "column": "exploitation_type",
                "split": ",",
                "codes": _codes(NRM_FORMS),
            },
            "$.reporting_entity.referred_from": {
                "column": "first_responder",
                "codes": _codes(NRM_RESPONDER),
            },
            "$.reporting_entity.identification_status": {
                "column": "decision",
                "codes": _codes(NRM_DECISION),
            },
            "$.reporting_entity.date_recorded": {"column": "referral_date", "type": "date"},
            "$.event.year_of_exploitation": {"column": "exploitation_year", "type": "int"},
            "$.event.country_of_exploitation": "exploitation_country",
            "$.event.cross_border": {"column": "cross_border", "codes": _codes(NRM_CROSS_BORDER)},
        },
    },
    case_id=lambda e, seq: f"NRM{e.year % 100:02d}-{seq:05d}",
    person_id_format="S{:06d}",
    row=_nrm_row,
)

# --- court: few cases, complete and formal, written-out month names, defendants and verdicts ----

COURT_SEX = {"Feminine": "female", "Masculine": "male", "NonConforming": "not stated"}
COURT_OFFENCE = {
    "SexualExploitation": "MSA2015-S2-SEXUAL",
    "ForcedLabour": "MSA2015-S1-LABOUR",
    "ForcedCriminality": "MSA2015-S2-CRIMINAL",
    "Servitude": "MSA2015-S1-SERVITUDE",
    "ForcedBegging": "MSA2015-S2-OTHER",
    "ForcedMarriage": "MSA2015-S2-OTHER",
    "Other": "MSA2015-S2-OTHER",
}
COURT_OFFENCE_CODES = {
    "MSA2015-S2-SEXUAL": "SexualExploitation",
    "MSA2015-S1-LABOUR": "ForcedLabour",
    "MSA2015-S2-CRIMINAL": "ForcedCriminality",
    "MSA2015-S1-SERVITUDE": "Servitude",
    "MSA2015-S2-OTHER": "Other",
}
COURT_AGE = {"Age18To24": "18-24", "Age25To34": "25-34", "Age35To44": "35-44", "Age45Plus": "45+"}
COURT_VERDICT = {"Convicted": "CONVICTED", "Acquitted": "ACQUITTED", "Prosecuted": "PENDING"}
COURT_ROLE = {
    "RecruiterOrIntermediary": "recruiter",
    "Exploiter": "exploiter",
    "Transporter": "transporter",
    "ControlledIndividual": "controller",
    "Abuser": "abuser",
}


def _court_row(c: _Ctx, d: Detection, i: int, v: Victim, case_id: str) -> dict[str, str]:
    e, p = d.event, v.person
    defendant = e.perpetrators[i % len(e.perpetrators)]
    u = c.rng.random()
    verdict = "Convicted" if u < 0.6 else "Acquitted" if u < 0.75 else "Prosecuted"
    with_doc = p.document is not None
    return {
        "case_number": case_id,
        "witness_no": c.person_id(p.person_id),
        "surname": c.name(p.surname),
        "given_names": c.name(p.given_name),
        "date_of_birth": _fmt(c.birth(v), "%d %b %Y"),
        "sex": COURT_SEX[p.sex],
        "nationality": ISO3[p.citizenship],
        "passport_no": p.document or "",
        "passport_country": ISO3[p.citizenship] if with_doc else "",
        "offence": "/".join(dict.fromkeys(COURT_OFFENCE[f] for f in e.forms)),
        "offence_year": str(e.year),
        "offence_from": _fmt(e.start, "%d %b %Y"),
        "offence_to": _fmt(e.end, "%d %b %Y"),
        "judgment_date": _fmt(_later(e.identified, c.rng, 200, 700), "%d %b %Y"),
        "defendant_no": f"D{defendant.perpetrator_id[1:]}",
        "defendant_sex": COURT_SEX[defendant.sex],
        "defendant_nationality": ISO3[defendant.citizenship],
        "defendant_age": COURT_AGE[defendant.age_group],
        "defendant_role": "/".join(COURT_ROLE[r] for r in defendant.roles),
        "verdict": COURT_VERDICT[verdict],
    }


_COURT_DATE = {"type": "date", "format": "%d %b %Y"}
COURT = Layout(
    columns=_columns(
        "case_number witness_no surname given_names date_of_birth sex nationality "
        "passport_no passport_country offence offence_year offence_from offence_to "
        "judgment_date defendant_no defendant_sex defendant_nationality defendant_age "
        "defendant_role verdict"
    ),
    mapping={
        "source_id": "court",
        "organisation_type": "CourtOrProsecution",
        "description": "Crown Court case records: one row per victim witness and defendant",
        "case_column": "case_number",
        "victim_column": "witness_no",
        "perpetrator_column": "defendant_no",
        "constants": {
            "$.reporting_entity.legal_basis": "OfficialAuthority",
            "$.reporting_entity.identification_status": "ActualVictimOfTrafficking",
            "$.reporting_entity.identified_by": "CourtOrProsecution",
        },
        "fields": {
            "$.victims[].identifiers.surnames": "surname",
            "$.victims[].identifiers.given_names": "given_names",
            "$.victims[].identifiers.date_of_birth": {"column": "date_of_birth", **_COURT_DATE},
            "$.victims[].sex": {"column": "sex", "codes": _codes(COURT_SEX)},
            "$.victims[].citizenships": {"column": "nationality", "codes": _codes(ISO3)},
            "$.victims[].identifiers.documents[].number": "passport_no",
            "$.victims[].identifiers.documents[].issuing_country": {
                "column": "passport_country",
                "codes": _codes(ISO3),
            },
            "$.event.forms_of_exploitation": {
                "column": "offence",
                "split": "/",
                "codes": COURT_OFFENCE_CODES,
            },
            "$.event.year_of_exploitation": {"column": "offence_year", "type": "int"},
            "$.event.start_date": {"column": "offence_from", **_COURT_DATE},
            "$.event.end_date": {"column": "offence_to", **_COURT_DATE},
            "$.reporting_entity.date_recorded": {"column": "judgment_date", **_COURT_DATE},
            "$.perpetrators[].sex": {"column": "defendant_sex", "codes": _codes(COURT_SEX)},
            "$.perpetrators[].citizenships": {
                "column": "defendant_nationality",
                "codes": _codes(ISO3),
            },
            "$.perpetrators[].age_group": {"column": "defendant_age", "codes": _codes(COURT_AGE)},
            "$.perpetrators[].roles": {
                "column": "defendant_role",
                "split": "/",
                "codes": _codes(COURT_ROLE),
            },
            "$.perpetrators[].legal_status": {
                "column": "verdict",
                "codes": _codes(COURT_VERDICT),
            },
        },
    },
    case_id=lambda e, seq: f"T{e.year}{seq:04d}",
    person_id_format="VW{:06d}",
    row=_court_row,
)

LAYOUTS: dict[str, Layout] = {
    "police": POLICE,
    "ngo_haven": NGO,
    "labour_inspectorate": LABOUR,
    "nrm": NRM,
    "court": COURT,
}


AGREEMENT = """\
format: 1
source_id: {source_id}
version: 1
in_force_from: '2000-01-01'
in_force_until: null
fields_shared: ['$']
releases_allowed:
  - consumer: ministry
    purposes: [statistics]
min_cell_size: 10
"""


def agreement_text(source_id: str) -> str:
    """The simulated agency's data-sharing agreement file (the trust's agreement format 1)."""
    return AGREEMENT.format(source_id=source_id)


@dataclass(frozen=True, slots=True)
class TruthRow:
    source: str
    row: int
    true_person_id: str
    true_event_id: str


def write_exports(
    seed: int, detections: dict[str, list[Detection]], out_dir: Path
) -> tuple[dict[str, int], list[TruthRow]]:
    """Write every agency's ``records.csv``, ``mapping.yaml`` and ``agreement.yaml``; return row
    counts and truth."""
    seen: dict[str, set[str]] = {a.source_id: set() for a in AGENCIES}
    for source, found in detections.items():
        for d in found:
            seen[source].update(f"{d.event.event_id}/{v.person.person_id}" for v in d.victims)
    counts: dict[str, int] = {}
    truth: list[TruthRow] = []
    for agency in AGENCIES:
        layout = LAYOUTS[agency.source_id]
        ctx = _Ctx(
            agency=agency,
            rng=random.Random(f"{seed}:export:{agency.source_id}"),
            seen=seen,
            person_ids={},
            id_format=layout.person_id_format,
        )
        # cases in the order the agency opened them, numbered per year as registers do
        found = sorted(
            detections[agency.source_id], key=lambda d: (d.event.identified, d.event.event_id)
        )
        per_year: dict[int, int] = {}
        rows: list[dict[str, str]] = []
        for d in found:
            per_year[d.event.year] = seq = per_year.get(d.event.year, 0) + 1
            case_id = layout.case_id(d.event, seq)
            for i, v in enumerate(d.victims):
                rows.append(layout.row(ctx, d, i, v, case_id))
                truth.append(
                    TruthRow(agency.source_id, len(rows), v.person.person_id, d.event.event_id)
                )
        folder = out_dir / agency.source_id
        folder.mkdir(parents=True, exist_ok=True)
        _write_csv(folder / "records.csv", layout.columns, rows, bom=layout.bom)
        (folder / "mapping.yaml").write_text(
            yaml.safe_dump(layout.mapping, sort_keys=False, allow_unicode=True, width=100),
            encoding="utf-8",
        )
        (folder / "agreement.yaml").write_text(
            agreement_text(agency.source_id), encoding="utf-8", newline=""
        )
        counts[agency.source_id] = len(rows)
    return counts, truth


def _write_csv(
    path: Path, columns: tuple[str, ...], rows: list[dict[str, str]], *, bom: bool
) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8-sig" if bom else "utf-8", newline="")


def write_truth(path: Path, truth: list[TruthRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("source", "row", "true_person_id", "true_event_id"))
    writer.writerows((t.source, t.row, t.true_person_id, t.true_event_id) for t in truth)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
