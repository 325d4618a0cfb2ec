"""`tiptrust metadata ddi --source|--release`, `metadata structure` and `metadata admin`, end to
end through the CLI: a trust with a signed format-6 agreement and accepted records, and a
release as `tiptrust subscribe` writes it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from consumers.writers import ReleaseWriter
from schemas.ddi import NAMESPACE
from schemas.keys import SigningKey, public_pem
from tests.consumers.conftest import KEY, release_with_margins, signed, verified
from tests.trust.store.builders import accepted
from tiptrust.cli import app
from tiptrust.home import Home
from trust.store.eventstore import open_store

NS = {"d": NAMESPACE}
AGREEMENT = """\
format: 6
source_id: police
version: 1
in_force_from: 2020-01-01
fields_shared: ['$.event', '$.victims[].sex']
releases_allowed:
  - consumer: ministry
    purposes: [statistics]
retention:
  years: 10
  at_end: destroy
field_classification:
  $.event.regions_of_exploitation: confidential
steward_contact:
  name: Police data office
  email: data@police.example
"""


def run(home: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, [*args, "--home", str(home)], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A trust with the police's signed agreement and two accepted cases (three victims)."""
    h = tmp_path / "home"
    run(h, "keys", "trust-init")
    run(h, "keys", "source-init", "--source", "police")
    pub = next((h / "sources" / "police" / "keys").glob("*.pub.pem"))
    doc = tmp_path / "police.yaml"
    doc.write_text(AGREEMENT)
    run(
        h,
        "trust",
        "register",
        "--source",
        "police",
        "--public-key",
        str(pub),
        "--agreement",
        str(doc),
    )
    store = open_store(Home(h).store_url())
    try:
        store.append(
            [
                accepted("police", "CASE-QQ-1", (("VIC-QQ-1", "Feminine", 30),), year=2022),
                accepted(
                    "police",
                    "CASE-QQ-2",
                    (("VIC-QQ-2", "Masculine", 19), ("VIC-QQ-3", "Feminine", 15)),
                    year=2024,
                ),
            ],
            None,
            "ingest",
        )
    finally:
        store.close()
    return h


def test_ddi_of_a_source_to_a_file_and_to_standard_output(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "police.ddi.xml"
    done = run(home, "metadata", "ddi", "--source", "police", "--out", str(target))
    assert "wrote" in done.output
    xml = target.read_bytes()
    root = ET.fromstring(xml)
    assert root.findtext("d:fileDscr/d:fileTxt/d:dimensns/d:caseQnty", namespaces=NS) == "2"
    assert root.findtext("d:fileDscr/d:fileTxt/d:fileName", namespaces=NS) == "tip.inbound.police"
    cit = "d:stdyDscr/d:citation"
    assert root.findtext(f"{cit}/d:distStmt/d:contact", namespaces=NS) == "Police data office"
    assert root.find(f"{cit}/d:distStmt/d:depDate", NS) is not None
    periods = root.findall("d:stdyDscr/d:stdyInfo/d:sumDscr/d:timePrd", NS)
    assert [p.text for p in periods] == ["2022", "2024"]
    names = {v.get("name") for v in root.findall("d:dataDscr/d:var", NS)}
    assert "$.victims[].sex" in names and "$.victims[].age_at_identification" not in names
    assert b"QQ" not in xml  # no case or victim id
    printed = run(home, "metadata", "ddi", "--source", "police").stdout
    assert ET.fromstring(printed.encode()).tag == f"{{{NAMESPACE}}}codeBook"


def test_ddi_refuses_an_unknown_source_and_a_wrong_call(home: Path) -> None:
    run(home, "metadata", "ddi", "--source", "court", code=5)
    run(home, "metadata", "ddi", code=2)
    run(home, "metadata", "ddi", "--source", "police", "--release", "x.json", code=2)


def test_ddi_of_a_release_the_consumer_holds(tmp_path: Path) -> None:
    release = verified(
        signed(
            release_with_margins(
                ("sex",),
                {("Feminine",): 30, ("Masculine",): 12},
                labels={"sex": {"Feminine": "Female", "Masculine": "Male"}},
                stream="victims_by_sex",
                title="By sex",
            )
        )
    )
    ReleaseWriter(tmp_path / "out").write(release)
    held = tmp_path / "out" / "victims_by_sex" / "000001.json"
    key = tmp_path / "trust.pub.pem"
    key.write_bytes(public_pem(KEY.public.public))
    home = tmp_path / "consumer-home"  # no trust, no store
    xml = run(home, "metadata", "ddi", "--release", str(held), "--trust-key", str(key)).stdout
    root = ET.fromstring(xml.encode())
    [sex, _value] = root.findall("d:dataDscr/d:var", NS)
    got = {
        c.findtext("d:catValu", namespaces=NS): c.findtext("d:labl", namespaces=NS)
        for c in sex.findall("d:catgry", NS)
    }
    assert got == {"Feminine": "Female", "Masculine": "Male"}
    assert not (home / "trust").exists()
    # another trust's key: refused; not a release: refused; no file: usage
    other = tmp_path / "other.pub.pem"
    other.write_bytes(public_pem(SigningKey.generate("trust").public.public))
    run(home, "metadata", "ddi", "--release", str(held), "--trust-key", str(other), code=6)
    run(home, "metadata", "ddi", "--release", str(held.with_suffix(".csv")), code=6)
    run(home, "metadata", "ddi", "--release", str(tmp_path / "none.json"), code=2)


def test_structure_lists_fields_and_code_lists() -> None:
    def structure(*args: str) -> str:
        done = CliRunner().invoke(app, ["metadata", "structure", *args], env={"COLUMNS": "200"})
        assert done.exit_code == 0, done.output
        return done.stdout

    body = json.loads(structure("--json"))
    paths = [f["path"] for f in body["fields"]]
    assert "$.victims[].sex" in paths and "$.event.forms_of_exploitation" in paths
    assert body["code_lists"]["Gender"]["labelled_by"] == "prs_Gender"
    table = structure()
    for shown in ("case_record", "Gender", "prs_Gender", "RoleInProcess"):
        assert shown in table


def test_admin_gives_the_terms_in_force(home: Path) -> None:
    [police] = json.loads(run(home, "metadata", "admin", "--json").stdout)
    terms = police["in_force"]
    assert police["source"] == "police" and terms["version"] == 1
    assert terms["purposes"] == {"ministry": ["statistics"]}
    assert terms["retention"]["describe"] == "10 year(s), then destroy"
    assert terms["classification"]["$.event.regions_of_exploitation"] == "confidential"
    assert terms["steward_contact"]["email"] == "data@police.example"
    table = run(home, "metadata", "admin").stdout
    for shown in ("police", "ministry:", "statistics", "destroy", "confidential"):
        assert shown in table  # the console may wrap a cell, so word by word
    [court] = json.loads(run(home, "metadata", "admin", "--source", "court", "--json").stdout)
    assert court["in_force"] is None
