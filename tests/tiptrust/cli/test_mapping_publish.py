"""`tiptrust publish` with a mapping that does not fit its export: exit 2 before anything is sent
(a misspelled column used to publish every victim as sex Unknown); encodings and delimiters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tiptrust.cli import app
from transport import open_log, topics

SOURCE = "ngo_test"
HEADER = "case;who;gender;nom\n"
ROWS = "c1;v1;F;José\nc2;v1;M;Zoë\nc3;v2;f;Ana\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("home")
    runner = CliRunner()
    for args in (["keys", "trust-init"], ["keys", "source-init", "--source", SOURCE]):
        done = runner.invoke(app, [*args, "--home", str(h)])
        assert done.exit_code == 0, done.output
    return h


def mapping_file(path: Path, column: str, **top: str) -> Path:
    spec = {
        "organisation_type": "NGO",
        "case_column": "case",
        "victim_column": "who",
        **top,
        "fields": {
            "$.victims[].sex": {"column": column, "codes": {"F": "Feminine", "M": "Masculine"}},
            "$.victims[].identifiers.given_names": "nom",
        },
    }
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def publish(home: Path, export: Path, mapping: Path, *extra: str) -> tuple[int, str]:
    log = f"sqlite:///{home / 'log.db'}"
    done = CliRunner().invoke(
        app,
        [
            "publish", "--source", SOURCE, "--input", str(export), "--mapping", str(mapping),
            "--home", str(home), "--log", log, "--json", *extra,
        ],
    )  # fmt: skip
    return done.exit_code, done.output


def sent(home: Path) -> int:
    with open_log(f"sqlite:///{home / 'log.db'}") as log:
        return len(log.read_all(topics.inbound(SOURCE)))


def test_a_misspelled_column_exits_2_naming_it_and_sends_nothing(
    home: Path, tmp_path: Path
) -> None:
    export = tmp_path / "x.csv"
    export.write_text(HEADER + ROWS, encoding="utf-8")
    before = sent(home)
    code, output = publish(home, export, mapping_file(tmp_path / "m.yaml", "Gender"))
    assert code == 2, output
    assert "column 'Gender' is not in the export's header" in output
    assert "closest: 'gender'" in output
    assert sent(home) == before
    assert not any(name in output for name in ("José", "Zoë", "Ana"))
    # the same export with the column spelled right publishes: the set-up was not the problem
    code, output = publish(home, export, mapping_file(tmp_path / "m.yaml", "gender"))
    assert code == 0, output
    assert sent(home) > before


def test_a_mapping_for_another_source_exits_2(home: Path, tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_text(HEADER + ROWS, encoding="utf-8")
    mapping = mapping_file(tmp_path / "m.yaml", "gender", source_id="police")
    code, output = publish(home, export, mapping)
    assert code == 2 and "for source police, not ngo_test" in output


def test_a_latin1_semicolon_export_publishes_with_encoding_from_flag_or_mapping(
    home: Path, tmp_path: Path
) -> None:
    export = tmp_path / "latin.csv"
    export.write_bytes((HEADER + ROWS.replace("c", "l")).encode("latin-1"))
    mapping = mapping_file(tmp_path / "m.yaml", "gender")
    code, output = publish(home, export, mapping)
    assert code == 2 and "row 1: not UTF-8 text" in output and "--encoding" in output
    code, output = publish(home, export, mapping, "--encoding", "latin-1")
    assert code == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    assert (report["rows"], report["rows_published"], report["rows_rejected"]) == (3, 3, 0)
    # in the mapping instead of on the command line, with a wrong delimiter overridden by a flag
    export.write_bytes((HEADER + ROWS.replace("c", "k")).encode("latin-1"))
    mapping = mapping_file(tmp_path / "m.yaml", "gender", encoding="cp1252", delimiter="|")
    code, output = publish(home, export, mapping, "--delimiter", ";")
    assert code == 0, output


def test_defaulted_values_are_reported(home: Path, tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    export.write_text("case,who,forms\nd1,v1,sex\nd2,v1,unheard of\n", encoding="utf-8")
    spec = {
        "organisation_type": "NGO",
        "case_column": "case",
        "fields": {
            "$.event.forms_of_exploitation": {
                "column": "forms", "codes": {"sex": "SexualExploitation"}, "default": "Other",
            }
        },
    }  # fmt: skip
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code, output = publish(home, export, mapping)
    assert code == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    assert report["defaulted"] == {"$.event.forms_of_exploitation": 1}
    assert report["rows_published"] == 2
