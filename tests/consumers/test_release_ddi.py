"""A release a consumer holds, as DDI-Codebook 2.5: one var per dimension whose categories and
labels are the release's own, read back from the XML; the release's description where DDI puts
it; no number of the table."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from consumers.ddi import dimension_codes, release_ddi
from schemas.ddi import NAMESPACE
from schemas.release import Release
from tests.consumers.conftest import release_with_margins

NS = {"d": NAMESPACE}


def labelled() -> Release:
    return release_with_margins(
        ("year", "sex", "age_group"),
        {
            ("2023", "Feminine", "0-11"): 1234,
            ("2023", "Masculine", "12-17"): 4321,
            ("2024", "Feminine", "18-24"): 5678,
        },
        hierarchies={"age_group": {"0-17": ["0-11", "12-17"]}},
        labels={
            "sex": {"Feminine": "Female", "Masculine": "Male"},
            "age_group": {"0-11": "Under 12", "12-17": "12 to 17", "0-17": "Under 18"},
        },
    )


def categories(root: ET.Element, name: str) -> dict[str | None, str | None]:
    [var] = [v for v in root.findall("d:dataDscr/d:var", NS) if v.get("name") == name]
    return {
        c.findtext("d:catValu", namespaces=NS): c.findtext("d:labl", namespaces=NS)
        for c in var.findall("d:catgry", NS)
    }


def test_each_dimension_round_trips_its_categories_and_labels() -> None:
    release = labelled()
    root = ET.fromstring(release_ddi(release))
    names = [v.get("name") for v in root.findall("d:dataDscr/d:var", NS)]
    assert names == ["year", "sex", "age_group", "value"]
    for dim in release.dimensions:
        got = categories(root, dim)
        used = {a.key[a.dimensions.index(dim)] for a in release.aggregates if dim in a.dimensions}
        assert set(got) == used
        assert {c: lbl for c, lbl in got.items() if lbl is not None} == release.labels.get(dim, {})
    assert categories(root, "sex") == {"Feminine": "Female", "Masculine": "Male"}
    assert categories(root, "age_group")["0-17"] == "Under 18"
    assert categories(root, "age_group")["18-24"] is None  # used, never labelled


def test_the_release_description_is_where_ddi_puts_it_and_holds_no_number() -> None:
    release = labelled()
    xml = release_ddi(release)
    root = ET.fromstring(xml)
    cit = "d:stdyDscr/d:citation"
    assert root.findtext(f"{cit}/d:titlStmt/d:titl", namespaces=NS) == release.title
    assert [a.text for a in root.findall(f"{cit}/d:rspStmt/d:AuthEnty", NS)] == ["src-a", "src-b"]
    assert root.findtext(f"{cit}/d:distStmt/d:distDate", namespaces=NS) == "2025-10-09"
    periods = root.findall("d:stdyDscr/d:stdyInfo/d:sumDscr/d:timePrd", NS)
    assert [p.text for p in periods] == ["2023", "2024"]
    assert root.findtext("d:fileDscr/d:fileTxt/d:fileName", namespaces=NS) == "000001.csv"
    cases = root.findtext("d:fileDscr/d:fileTxt/d:dimensns/d:caseQnty", namespaces=NS)
    assert cases == str(len(release.aggregates))
    notes = " ".join(n.text or "" for n in root.findall("d:stdyDscr/d:notes", NS))
    assert "one count per person" in notes and "k=10" in notes and release.caveat in notes
    for number in (b"1234", b"4321", b"5678", b"5555"):  # cells and a margin's sum
        assert number not in xml


def test_codes_follow_the_labels_then_first_use() -> None:
    release = labelled()
    assert dimension_codes(release, "age_group")[:3] == ["0-11", "12-17", "0-17"]
    assert dimension_codes(release, "year") == ["2023", "2024"]
