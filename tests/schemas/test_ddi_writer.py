"""The DDI-Codebook 2.5 writer: every item where the specification nests it, in the order its
sequences give, with text escaped by the XML library (never assembled by hand)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from schemas.ddi import (
    NAMESPACE,
    Category,
    Codebook,
    Contact,
    DataFile,
    Variable,
    categories,
    codebook_xml,
)

NS = {"d": NAMESPACE}


def book(**kw: object) -> Codebook:
    base: dict[str, object] = {
        "title": "Cases <of> A & B",
        "identifier": "id-1",
        "file": DataFile("tip.inbound.police", "case records", 42),
        "authors": ("police",),
        "producer": "trust",
        "contact": Contact("Data protection office", "dpo@police.example"),
        "deposited": dt.date(2025, 3, 4),
        "distributed": dt.date(2025, 3, 5),
        "period_start": "2021",
        "period_end": "2024",
        "unit": "case",
        "universe": "cases",
        "conditions": "under agreement v3",
        "notes": ("a note",),
        "variables": (
            Variable(
                "$.victims[].sex",
                "Sex",
                categories(["Feminine", "X"], {"Feminine": "F"}),
                security="restricted",
            ),
            Variable("value", "persons", continuous=True),
        ),
    }
    base.update(kw)
    return Codebook(**base)  # type: ignore[arg-type]


def test_items_are_where_ddi_codebook_nests_them() -> None:
    root = ET.fromstring(codebook_xml(book()))
    assert root.tag == f"{{{NAMESPACE}}}codeBook" and root.get("version") == "2.5"
    assert [c.tag.split("}")[1] for c in root] == ["docDscr", "stdyDscr", "fileDscr", "dataDscr"]
    cit = "d:stdyDscr/d:citation"
    assert root.findtext(f"{cit}/d:titlStmt/d:titl", namespaces=NS) == "Cases <of> A & B"
    assert root.findtext(f"{cit}/d:rspStmt/d:AuthEnty", namespaces=NS) == "police"
    contact = root.find(f"{cit}/d:distStmt/d:contact", NS)
    assert contact is not None and contact.text == "Data protection office"
    assert contact.get("email") == "dpo@police.example"
    dist = root.find(f"{cit}/d:distStmt", NS)
    assert dist is not None
    assert [c.tag.split("}")[1] for c in dist] == ["contact", "depDate", "distDate"]
    assert root.findtext(f"{cit}/d:distStmt/d:depDate", namespaces=NS) == "2025-03-04"
    periods = root.findall("d:stdyDscr/d:stdyInfo/d:sumDscr/d:timePrd", NS)
    assert [(p.get("event"), p.text) for p in periods] == [("start", "2021"), ("end", "2024")]
    text = "d:fileDscr/d:fileTxt"
    assert root.findtext(f"{text}/d:fileName", namespaces=NS) == "tip.inbound.police"
    assert root.findtext(f"{text}/d:dimensns/d:caseQnty", namespaces=NS) == "42"
    assert root.findtext(f"{text}/d:dimensns/d:varQnty", namespaces=NS) == "2"
    study = root.find("d:stdyDscr", NS)
    assert study is not None
    assert [c.tag.split("}")[1] for c in study] == ["citation", "stdyInfo", "dataAccs", "notes"]


def test_a_variable_has_its_label_security_and_categories_in_order() -> None:
    root = ET.fromstring(codebook_xml(book()))
    sex, value = root.findall("d:dataDscr/d:var", NS)
    assert sex.get("name") == "$.victims[].sex" and sex.get("intrvl") == "discrete"
    assert [c.tag.split("}")[1] for c in sex] == ["labl", "security", "catgry", "catgry"]
    assert sex.findtext("d:security", namespaces=NS) == "restricted"
    cats = [
        (c.findtext("d:catValu", namespaces=NS), c.findtext("d:labl", namespaces=NS))
        for c in sex.findall("d:catgry", NS)
    ]
    assert cats == [("Feminine", "F"), ("X", None)]
    assert value.get("intrvl") == "contin" and value.findtext("d:labl", namespaces=NS) == "persons"


def test_optional_parts_are_left_out_not_written_empty() -> None:
    root = ET.fromstring(
        codebook_xml(
            book(
                authors=(),
                producer=None,
                contact=None,
                deposited=None,
                distributed=None,
                conditions=None,
                variables=(),
            )
        )
    )
    cit = root.find("d:stdyDscr/d:citation", NS)
    assert cit is not None and [c.tag.split("}")[1] for c in cit] == ["titlStmt"]
    assert root.find("d:dataDscr", NS) is None
    assert root.findtext("d:fileDscr/d:fileTxt/d:dimensns/d:varQnty", namespaces=NS) == "0"


def test_categories_keep_the_codes_order() -> None:
    assert categories(["b", "a"], {"a": "A"}) == (Category("b"), Category("a", "A"))
