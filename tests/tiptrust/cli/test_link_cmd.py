"""`tiptrust link batch`: pairs out with id_l < id_r, review out, exit 2 on bad input — by row and
column, never by value."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tiptrust.cli import link_cmd
from tiptrust.cli.common import Exit

app = typer.Typer()
app.add_typer(link_cmd.app, name="link")  # as `tiptrust link`

HEADER = "id,given_name,surname,date_of_birth,sex,nationality,document_number\n"
POLICE = HEADER + (
    "p1,Ioana,Dumitru,1996-04-19,F,RO,RO123456\n"
    "p2,Liam,Jones,1990-03-08,M,GB,\n"
    "p3,Oleksandr,Kovalenko,1980-01-02,M,UA,\n"
)
NGO = HEADER + (
    "n1,Ioana,Dumitru,1996-04-19,F,RO,\n"
    "n2,Aleksandr,Kowalenko,1980-01-02,M,UA,\n"
    "n3,Ioana,Dumitru,1996-04-19,F,RO,RO123456\n"
    "n4,Fatima,Rahimi,2001-07-30,F,AF,\n"
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_link_across_inputs_writes_ordered_pairs(runner: CliRunner, tmp_path: Path) -> None:
    police, ngo = write(tmp_path, "police.csv", POLICE), write(tmp_path, "ngo.csv", NGO)
    out, review = tmp_path / "pairs.csv", tmp_path / "review.csv"
    args = ["link", "batch", "--input", str(police), "--input", str(ngo), "--out", str(out)]
    done = runner.invoke(app, [*args, "--review-out", str(review)])
    assert done.exit_code == 0, done.output
    rows = read(out)
    pairs = {(r["id_l"], r["id_r"]) for r in rows}
    assert {("n1", "p1"), ("n3", "p1"), ("n2", "p3")} <= pairs
    assert all(a < b and {a[0], b[0]} == {"n", "p"} for a, b in pairs)  # no n1-n3: not --dedupe
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    assert list(rows[0]) == ["id_l", "id_r", "probability"]
    assert read(review) == [] or list(read(review)[0]) == ["id_l", "id_r", "probability"]
    assert "Ioana" not in done.output and "model fs1-" in done.output


def test_dedupe_links_within_an_input(runner: CliRunner, tmp_path: Path) -> None:
    ngo, out = write(tmp_path, "ngo.csv", NGO), tmp_path / "pairs.csv"
    done = runner.invoke(app, ["link", "batch", "--input", str(ngo), "--out", str(out), "--dedupe"])
    assert done.exit_code == 0, done.output
    assert ("n1", "n3") in {(r["id_l"], r["id_r"]) for r in read(out)}


def test_one_input_needs_dedupe(runner: CliRunner, tmp_path: Path) -> None:
    ngo = write(tmp_path, "ngo.csv", NGO)
    done = runner.invoke(
        app, ["link", "batch", "--input", str(ngo), "--out", str(tmp_path / "o.csv")]
    )
    assert done.exit_code == int(Exit.USAGE)
    assert "--dedupe" in done.output


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (HEADER + "x9,Maria,Pop,,F,RO,\np2,Ioana,Dumitru,,F,RO,\n", "ngo.csv row 2"),
        (HEADER + "x9,Maria,Pop,the 5th of May,F,RO,\n", "ngo.csv row 1 column date_of_birth"),
        ("id,given_name,surname\n", "missing column(s): date_of_birth"),
    ],
)
def test_bad_input_exits_2_naming_place_not_value(
    runner: CliRunner, tmp_path: Path, second: str, expected: str
) -> None:
    police, ngo = write(tmp_path, "police.csv", POLICE), write(tmp_path, "ngo.csv", second)
    args = [
        "link",
        "batch",
        "--input",
        str(police),
        "--input",
        str(ngo),
        "--out",
        str(tmp_path / "o.csv"),
    ]
    done = runner.invoke(app, args)
    assert done.exit_code == int(Exit.USAGE)
    output = " ".join(done.output.split())
    assert expected in output
    for value in ("Maria", "Pop", "Ioana", "p2", "5th"):
        assert value not in output
    assert not (tmp_path / "o.csv").exists()


def test_bad_thresholds_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    ngo = write(tmp_path, "ngo.csv", NGO)
    args = ["link", "batch", "--input", str(ngo), "--dedupe", "--out", str(tmp_path / "o.csv")]
    done = runner.invoke(app, [*args, "--upper", "0.3", "--lower", "0.6"])
    assert done.exit_code == int(Exit.USAGE)
    assert "thresholds" in done.output


def test_block_cap_joins_large_blocks_through_refinements(
    runner: CliRunner, tmp_path: Path
) -> None:
    # twelve namesakes in one block (given name, surname, nationality), two records of each of
    # the first three persons: over a cap of 2 the block is joined through its refinements
    rows = [f"a{i},Maria,Popescu,19{70 + i}-0{1 + i % 9}-1{i % 9},F,RO,\n" for i in range(12)] + [
        f"b{i},Maria,Popescu,19{70 + i}-0{1 + i % 9}-1{i % 9},F,RO,\n" for i in range(3)
    ]
    ngo = write(tmp_path, "ngo.csv", HEADER + "".join(rows))
    found = {}
    for cap in (None, "2"):
        out = tmp_path / f"pairs-{cap}.csv"
        args = ["link", "batch", "--input", str(ngo), "--dedupe", "--out", str(out)]
        done = runner.invoke(app, [*args, *(["--block-cap", cap] if cap else [])])
        assert done.exit_code == 0, done.output
        found[cap] = {(r["id_l"], r["id_r"]) for r in read(out)}
    # capped, each person's records meet through their date of birth, and only they link; the
    # whole block joined (on twelve namesakes, the model estimated on them alone) links far more
    assert found["2"] == {("a0", "b0"), ("a1", "b1"), ("a2", "b2")}
    assert len(found[None]) > len(found["2"])
    refused = runner.invoke(
        app,
        ["link", "batch", "--input", str(ngo), "--dedupe", "--out", str(out), "--block-cap", "1"],
    )
    assert refused.exit_code == 2
