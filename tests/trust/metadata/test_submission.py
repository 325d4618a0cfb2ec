"""A source's submission described (box A.5.1) from the store and its agreement: counts only,
the indicators its agreement shares with their classification, its steward as the contact; and
the structural and administrative metadata beside it."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy import update

from schemas.codec import default_registry
from schemas.ddi import NAMESPACE
from tests.trust.store.builders import accepted, retracted
from trust.metadata.administrative import terms_in_force
from trust.metadata.structure import structure
from trust.metadata.submission import (
    MetadataError,
    describe_submission,
    submission_codebook,
    submission_ddi,
)
from trust.stewardship.agreement import Agreements, load_agreement
from trust.store.eventstore import EventStore
from trust.store.tables import stored_events

NS = {"d": NAMESPACE}
EXAMPLES = Path(__file__).parents[3] / "trust" / "stewardship" / "examples"
DAY = dt.datetime(2025, 9, 14, 10, tzinfo=dt.UTC)


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def fill(store: EventStore) -> None:
    """Police: three cases (years 2021, 2023, 2024; four victims), one more retracted; the
    NRM: one case. Case and victim ids are distinctive so a leak would be found."""
    events = [
        accepted("police", "CASE-ZQX-1", (("VIC-ZQX-1", "Feminine", 23),), year=2021),
        accepted(
            "police",
            "CASE-ZQX-2",
            (("VIC-ZQX-2", "Masculine", 31), ("VIC-ZQX-3", "Feminine", 17)),
            year=2024,
        ),
        accepted("police", "CASE-ZQX-3", (("VIC-ZQX-4", "Feminine", 40),), year=2023),
        accepted("police", "CASE-ZQX-4", (("VIC-ZQX-5", "Feminine", 40),), year=2019),
        retracted("police", "CASE-ZQX-4"),
        accepted("nrm", "CASE-NRM-1", year=2020),
    ]
    store.append(events, None, "ingest")
    with store.engine.begin() as conn:  # recorded on a known day
        conn.execute(update(stored_events).values(recorded_at_ms=int(DAY.timestamp() * 1000)))


def police() -> Agreements:
    return Agreements(
        [load_agreement(EXAMPLES / "police.yaml")], default_registry().current("case_record")
    )


def test_holdings_are_counts_of_the_sources_own_cases(store: EventStore) -> None:
    fill(store)
    agreement = load_agreement(EXAMPLES / "police.yaml")
    s = describe_submission(store, "police", agreement)
    h = s.holdings
    assert (h.cases, h.retracted_cases, h.victim_records) == (3, 1, 4)
    assert (h.year_first, h.year_last) == (2021, 2024)
    assert h.last_submission_ms == int(DAY.timestamp() * 1000)
    assert s.contact is not None and s.contact.email == "dpo@police.example"
    nrm = describe_submission(store, "nrm", None)
    assert (nrm.holdings.cases, nrm.holdings.year_first, nrm.contact) == (1, 2020, None)


def test_the_ddi_has_box_a51_in_its_ddi_elements_and_no_id_or_value(store: EventStore) -> None:
    fill(store)
    agreement = load_agreement(EXAMPLES / "police.yaml")
    xml = submission_ddi(describe_submission(store, "police", agreement))
    root = ET.fromstring(xml)
    cit = "d:stdyDscr/d:citation"
    assert "police" in (root.findtext(f"{cit}/d:titlStmt/d:titl", namespaces=NS) or "")
    assert root.findtext("d:fileDscr/d:fileTxt/d:fileName", namespaces=NS) == "tip.inbound.police"
    assert root.findtext(f"{cit}/d:rspStmt/d:AuthEnty", namespaces=NS) == "police"
    assert root.findtext(f"{cit}/d:distStmt/d:depDate", namespaces=NS) == "2025-09-14"
    assert root.findtext("d:fileDscr/d:fileTxt/d:dimensns/d:caseQnty", namespaces=NS) == "3"
    contact = root.find(f"{cit}/d:distStmt/d:contact", NS)
    assert contact is not None and contact.text == "National police, data protection office"
    assert contact.get("email") == "dpo@police.example"
    # the list of indicators: every field the agreement shares ('$': all), classified by it
    variables = {v.get("name"): v for v in root.findall("d:dataDscr/d:var", NS)}
    assert set(variables) == {f.path for f in structure().fields}
    security = {n: v.findtext("d:security", namespaces=NS) for n, v in variables.items()}
    assert security["$.event.regions_of_exploitation"] == "confidential"
    assert security["$.victims[].identifiers.surnames"] == "secret"
    assert security["$.victims[].sex"] == "restricted"
    sex = {
        c.findtext("d:catValu", namespaces=NS): c.findtext("d:labl", namespaces=NS)
        for c in variables["$.victims[].sex"].findall("d:catgry", NS)
    }
    assert "Feminine" in sex and "Unknown" in sex
    # counts only: no case or victim id, nothing of a record's values
    for leaked in (b"ZQX", b"CASE-", b"VIC-", b"NRM-1"):
        assert leaked not in xml


def test_only_the_shared_fields_are_indicators(store: EventStore) -> None:
    fill(store)
    agreement = load_agreement(EXAMPLES / "ngo.yaml")
    book = submission_codebook(describe_submission(store, "police", agreement))
    names = {v.name for v in book.variables}
    # the NGO shares no identifiers: they are not among its indicators
    assert "$.victims[].sex" in names and "$.event.industry" in names
    assert not any(n.startswith("$.victims[].identifiers") for n in names)
    assert names < {f.path for f in structure().fields}


def test_a_source_the_trust_knows_nothing_of_is_refused(store: EventStore) -> None:
    fill(store)
    with pytest.raises(MetadataError) as caught:
        describe_submission(store, "court", None)
    assert caught.value.code == "no_such_source"


def test_structure_has_every_field_and_htcds_labels() -> None:
    shape = structure()
    paths = [f.path for f in shape.fields]
    assert "$.victims[].sex" in paths and "$.case_id" in paths
    sex = next(f for f in shape.fields if f.path == "$.victims[].sex")
    assert sex.code_list == "Gender" and not sex.repeated
    gender = shape.code_lists["Gender"]
    assert gender.labelled_by == "prs_Gender" and set(gender.labels) <= set(gender.codes)
    assert shape.to_json()["code_lists"]["Gender"]["codes"] == list(gender.codes)  # type: ignore[index]


def test_terms_in_force_give_version_purposes_retention_and_classification() -> None:
    at = int(DAY.timestamp() * 1000)
    [terms] = terms_in_force(police(), at)
    body = terms.to_json()["in_force"]
    assert isinstance(body, dict)
    assert body["version"] == 3
    assert body["purposes"]["ministry"] == ["statistics", "policy"]
    assert "immigration_enforcement" in body["purposes_forbidden"]
    assert body["retention"]["at_end"] == "archive_deidentified"
    assert body["classification"]["$.event.regions_of_exploitation"] == "confidential"
    assert body["classification"]["$.victims[].identifiers"] == "secret"
    # before its effective date nothing is in force
    early = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    [none] = terms_in_force(police(), early)
    assert none.to_json()["in_force"] is None
