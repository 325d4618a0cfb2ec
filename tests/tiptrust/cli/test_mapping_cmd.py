"""`tiptrust mapping init | check | targets`: a CTDC-shaped export and an HTCDS-style workbook
publish with the proposed mapping as it is; the dry run explains what it sees without showing a
value of an identifying field."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from typer.testing import CliRunner

from producers.assist import CTDC_COLUMNS
from producers.mapping import TARGETS, Mapping
from tiptrust.cli import app

SOURCE = "ngo_test"
FLAG_PREFIXES = ("meansOfControl", "is", "typeOfLabour", "typeOfSex", "recruiterRelation")
AGE_BANDS = ("0--8", "9--17", "18--20", "21--23", "24--26", "27--29", "30--38", "39--47", "48+")
LABOUR_LABELS = {
    "typeOfLabourAgriculture": "Agriculture",
    "typeOfLabourConstruction": "Construction",
    "typeOfLabourDomesticWork": "Domestic work",
    "typeOfLabourHospitality": "Hospitality",
    "typeOfLabourManufacturing": "Manufacturing",
    "typeOfLabourMiningOrDrilling": "Mining or drilling",
}
FIRST_NAMES = ("Amara", "Bogdan", "Chiamaka", "Dragomir", "Esperanza", "Farida", "Gheorghe")


def ctdc_export(path: Path, n: int, seed: int = 7) -> Path:
    """An export in the CTDC global dataset's layout (an unnamed index column, then its 63)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", *CTDC_COLUMNS])
        for i in range(n):
            row: dict[str, str] = {}
            for c in CTDC_COLUMNS:
                if c.startswith(FLAG_PREFIXES) and not c.endswith(("Concatenated",)):
                    row[c] = rng.choice(["0", "0", "0", "1", "-99"])
            minor = rng.random() < 0.3
            row |= {
                "yearOfRegistration": str(rng.randint(2002, 2021)),
                "Datasource": rng.choice(["Case Management", "Hotline"]),
                "gender": rng.choice(["Female", "Female", "Male", "Transgender/NonConforming"]),
                "ageBroad": rng.choice(AGE_BANDS[:2] if minor else AGE_BANDS[2:]),
                "majorityStatus": "Minor" if minor else rng.choice(["Adult", "-99"]),
                "majorityStatusAtExploit": rng.choice(["Minor", "Adult", "-99"]),
                "majorityEntry": rng.choice(["Minor", "Adult", "-99"]),
                "citizenship": rng.choice(["UA", "PH", "NG", "RO", "-99"]),
                "CountryOfExploitation": rng.choice(["US", "GB", "RU", "-99"]),
                "RecruiterRelationship": rng.choice(
                    ["Intimate Partner", "Friend", "Family", "Other", "Friend; Family", "-99"]
                ),
            }
            labour = [v for k, v in LABOUR_LABELS.items() if row.get(k) == "1"]
            row["typeOfLabourConcatenated"] = ";".join(labour) or "-99"
            row["meansOfControlConcatenated"] = "-99"
            row["typeOfExploitConcatenated"] = "-99"
            row["typeOfSexConcatenated"] = "-99"
            w.writerow([str(i), *(row[c] for c in CTDC_COLUMNS)])
    return path


def htcds_workbook(path: Path, n: int, seed: int = 3) -> Path:
    """An HTCDS v2.0-style Excel template: field names in the header, labels as values,
    multi-select cells joined with ';', real dates, and the template's own quirks."""
    rng = random.Random(seed)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Cases"
    sheet.append(
        [
            "prs_FirstName", "prs_SecondName", "prs_Birthdate", "prs_Gender", "prs_Citizenship",
            "vic_TraffickingStatus", "vic_TraffickinStatusDecisionMakingOrg",
            "vic_AgeWhenTrafficked", "vic_TypeOfExploitation", "vic_MethodsOfControl",
            "cas_IncomingReferralDate", "cas_Status",
        ]
    )  # fmt: skip
    for _ in range(n):
        sheet.append(
            [
                rng.choice(FIRST_NAMES),
                rng.choice(FIRST_NAMES) + "son",
                date(1970, 1, 1) + timedelta(days=rng.randint(0, 15000)),
                rng.choice(["Feminine", "Masculine", "Not Specified/Unknown", "feminine "]),
                ";".join(rng.sample(["UA", "PH", "NG", "RO"], rng.randint(1, 2))),
                rng.choice(["Possible victim of trafficking", "Actual victim of trafficking"]),
                rng.choice(["Police", "NGO", "Other"]),
                rng.randint(8, 40),
                ";".join(rng.sample(["Forced labour", "Sexual exploitation", "Servitude"], 2)),
                rng.choice(["Debt bondage ;Takes earnings", "Physical abuse", None]),
                date(2023, 1, 1) + timedelta(days=rng.randint(0, 600)),
                rng.choice(["Active", "Closed"]),
            ]
        )
    book.save(path)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("home")
    runner = CliRunner()
    for args in (["keys", "trust-init"], ["keys", "source-init", "--source", SOURCE]):
        done = runner.invoke(app, [*args, "--home", str(h)])
        assert done.exit_code == 0, done.output
    return h


def run(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, list(args))
    return done.exit_code, done.output


def last_json(output: str) -> dict[str, Any]:
    line = next(x for x in reversed(output.strip().splitlines()) if x.startswith("{"))
    loaded: dict[str, Any] = json.loads(line)
    return loaded


def publish(home: Path, export: Path, mapping: Path) -> dict[str, Any]:
    code, output = run(
        "publish", "--source", SOURCE, "--input", str(export), "--mapping", str(mapping),
        "--home", str(home), "--log", f"sqlite:///{home / 'log.db'}", "--json",
    )  # fmt: skip
    assert code == 0, output
    return last_json(output)


def test_a_ctdc_export_publishes_every_row_with_the_proposed_mapping(
    home: Path, tmp_path: Path
) -> None:
    export = ctdc_export(tmp_path / "ctdc.csv", 2000)
    mapping = tmp_path / "ctdc.yaml"
    code, output = run("mapping", "init", "--input", str(export), "--out", str(mapping))
    assert code == 0, output
    assert "layout: ctdc" in output
    proposed = Mapping.load(mapping)
    assert proposed.case_column == "column_1" and proposed.victim_column == "column_1"
    paths = {f.target.path for f in proposed.fields}
    assert {
        "$.victims[].sex", "$.victims[].citizenships", "$.event.methods_of_control",
        "$.event.forms_of_exploitation", "$.event.types_of_sexual_exploitation",
        "$.event.country_of_exploitation", "$.victims[].relationship_to_trafficker",
        "$.event.industry",
    } <= paths  # fmt: skip
    text = mapping.read_text("utf-8")
    assert "majorityEntry: adult/minor status at entry" in text  # left, and said why
    assert "age_range" in text and "majority_status" in text  # bands and status: proposed

    code, output = run("mapping", "check", "--input", str(export), "--mapping", str(mapping),
                       "--source", SOURCE, "--json")  # fmt: skip
    assert code == 0, output
    report = last_json(output)
    assert (report["rows"], report["rows_published"], report["rows_withheld"]) == (2000, 2000, 0)
    shares = {f["target"]: f["share"] for f in report["fields"]}
    assert shares["$.victims[].sex"] == 1.0
    assert shares["$.victims[].age_range"] == 1.0  # every band read: no one left in "Unknown"
    assert 0.5 < shares["$.event.methods_of_control"] < 1.0  # rows with no 1 add nothing

    # published without a single edit to the proposal
    result = publish(home, export, mapping)
    assert (result["rows"], result["rows_published"], result["rows_rejected"]) == (2000, 2000, 0)


def test_an_htcds_workbook_publishes_without_conversion(home: Path, tmp_path: Path) -> None:
    export = htcds_workbook(tmp_path / "htcds.xlsx", 120)
    mapping = tmp_path / "htcds.yaml"
    code, output = run("mapping", "init", "--input", str(export), "--out", str(mapping))
    assert code == 0, output
    assert "layout: htcds" in output
    text = mapping.read_text("utf-8")
    assert not any(name in text for name in FIRST_NAMES)  # values of identifiers never copied
    proposed = Mapping.load(mapping)
    assert proposed.ids_from_content  # the template has no case id
    by_path = {f.target.path: f for f in proposed.fields}
    assert by_path["$.victims[].identifiers.given_names"].column == "prs_FirstName"
    assert by_path["$.victims[].identifiers.date_of_birth"].column == "prs_Birthdate"
    assert by_path["$.reporting_entity.identified_by"].column.startswith("vic_Traffickin")
    assert by_path["$.event.forms_of_exploitation"].split == ";"

    code, output = run("mapping", "check", "--input", str(export), "--mapping", str(mapping),
                       "--source", SOURCE)  # fmt: skip
    assert code == 0, output
    assert "120 rows (xlsx): 120 would publish" in output
    assert not any(name in output for name in FIRST_NAMES)
    result = publish(home, export, mapping)
    assert (result["rows_published"], result["rows_rejected"]) == (120, 0)


def test_check_explains_withheld_rows_and_lists_unmatched_codes_only(tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_text(
        "case,who,gender,first_name,forms\n"
        "c1,v1,F,Amara,labour\n"
        "c2,v1,female,Bogdan,labour\n"
        "c3,v1,female,Chiamaka,???\n"
        "c4,v1,F,Dragomir,\n",
        encoding="utf-8",
    )
    spec = {
        "organisation_type": "NGO",
        "case_column": "case",
        "victim_column": "who",
        "fields": {
            "$.victims[].sex": {"column": "gender", "codes": {"F": "Feminine"}},
            "$.victims[].identifiers.given_names": "first_name",
            "$.event.forms_of_exploitation": {
                "column": "forms", "codes": {"labour": "ForcedLabour"}, "default": "Other",
            },
        },
    }  # fmt: skip
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code, output = run("mapping", "check", "--input", str(export), "--mapping", str(mapping),
                       "--source", SOURCE, "--json")  # fmt: skip
    assert code == 3, output
    report = last_json(output)
    assert (report["rows_published"], report["rows_withheld"]) == (2, 2)
    (reason,) = report["reasons"]
    assert (reason["field"], reason["reason"], reason["first_rows"]) == (
        "$.victims[].sex", "unknown_code", [2, 3],
    )  # fmt: skip
    fields = {f["target"]: f for f in report["fields"]}
    assert fields["$.victims[].sex"]["unmatched"]["shown"] == {"female": 2}
    assert fields["$.event.forms_of_exploitation"]["defaulted"] == 1
    assert "unmatched" not in fields["$.victims[].identifiers.given_names"]
    assert not any(name in output for name in FIRST_NAMES)
    code, text = run("mapping", "check", "--input", str(export), "--mapping", str(mapping),
                     "--source", SOURCE)  # fmt: skip
    assert code == 3 and "'female' x2" in text and "Amara" not in text


def test_check_hides_unmatched_values_that_look_like_free_text(tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_text(
        "case,who,country\n" + "".join(f"c{i},v,Person number {i} wrote this\n" for i in range(60)),
        encoding="utf-8",
    )
    spec = {"organisation_type": "NGO", "case_column": "case", "victim_column": "who",
            "fields": {"$.victims[].citizenships": "country"}}  # fmt: skip
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code, output = run("mapping", "check", "--input", str(export), "--mapping", str(mapping),
                       "--source", SOURCE)  # fmt: skip
    assert code == 3
    assert "not shown: looks like text" in output and "wrote this" not in output


def test_check_refuses_a_mapping_that_does_not_fit_the_header(tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_text("case,gender\nc1,F\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        yaml.safe_dump({"organisation_type": "NGO", "case_column": "case",
                        "fields": {"$.victims[].sex": "Gender"}}),
        encoding="utf-8",
    )  # fmt: skip
    code, output = run("mapping", "check", "--input", str(export), "--mapping", str(mapping))
    assert code == 2 and "closest: 'gender'" in output


def test_init_matches_multilingual_names_and_marks_guesses(tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_text(
        "expediente;fecha_nacimiento;nationalité;sexo;nombre;tipo_de_explotacion\n"
        "E1;31/01/1990;FR;mujer;Amara;Forced labour\n"
        "E2;15/06/1985;ES;hombre;Bogdan;sexual exploitation\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "m.yaml"
    code, output = run("mapping", "init", "--input", str(export), "--out", str(mapping))
    assert code == 0, output
    proposed = Mapping.load(mapping)
    assert proposed.case_column == "expediente"
    assert proposed.input_options.delimiter == ";"
    by_path = {f.target.path: f for f in proposed.fields}
    assert by_path["$.victims[].identifiers.date_of_birth"].format == "%d/%m/%Y"
    assert by_path["$.victims[].citizenships"].column == "nationalité"
    assert by_path["$.victims[].sex"].column == "sexo"
    assert by_path["$.victims[].identifiers.given_names"].column == "nombre"
    text = mapping.read_text("utf-8")
    assert text.count("# review") >= 5
    assert "Amara" not in text and "31/01/1990" not in text
    code, output = run("mapping", "check", "--input", str(export), "--mapping", str(mapping),
                       "--source", SOURCE)  # fmt: skip
    assert code == 0, output
    code, output = run("mapping", "init", "--input", str(export), "--out", str(mapping))
    assert code == 2 and "--force" in output


def test_targets_lists_every_target_and_its_codes() -> None:
    code, output = run("mapping", "targets", "--codes", "--json")
    assert code == 0
    listed = json.loads(output)
    assert {e["path"] for e in listed} >= set(TARGETS)
    sex = next(e for e in listed if e["path"] == "$.victims[].sex")
    assert sex["named_list"] == "htcds:prs_Gender"
    assert sex["codes"]["NonSpecifiedUnknown"] == "Not Specified/Unknown"
    code, output = run("mapping", "targets")
    assert code == 0 and "$.victims[].identifiers.date_of_birth" in output
