"""`tiptrust synthesize`: a categorical CSV in, k-anonymous synthetic rows, report and aggregate out."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tiptrust.cli import app
from tiptrust.cli.common import Exit

COLUMNS = ["sex", "age", "form"]
ROWS = [
    *[["F", "18-24", "sexual"]] * 12,
    *[["F", "25-34", "labour"]] * 7,
    *[["M", "25-34", "labour"]] * 11,
    *[["M", "", "criminality"]] * 4,
    ["M", "45+", "organ"],
]


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


@pytest.mark.parametrize("mode", ["default", "classic"])
def test_synthesize_writes_rows_report_and_aggregate(tmp_path: Path, mode: str) -> None:
    src = write(tmp_path / "in.csv", COLUMNS, ROWS)
    args = ["synthesize", "--input", str(src), "--k", "5", "--length", "2", "--mode", mode]
    args += ["--out", str(tmp_path / "o" / "syn.csv"), "--seed", "3"]
    args += ["--report", str(tmp_path / "r.json"), "--aggregate-out", str(tmp_path / "agg.csv")]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output

    header, rows = read(tmp_path / "o" / "syn.csv")
    assert header == COLUMNS
    singles = Counter((c, v) for row in rows for c, v in zip(header, row, strict=True) if v)
    # F 19 → 15, M 16 → 15, 18-24 12 → 10, 25-34 18 → 15, sexual 12 → 10, labour 18 → 15;
    # 45+ and organ (1 row) and criminality (4 rows) never appear
    assert singles == {
        ("sex", "F"): 15,
        ("sex", "M"): 15,
        ("age", "18-24"): 10,
        ("age", "25-34"): 15,
        ("form", "sexual"): 10,
        ("form", "labour"): 15,
    }

    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report) == [
        "k",
        "length",
        "mode",
        "seconds",
        "rows_in",
        "rows_out",
        "expansion",
        "leaks",
        "lengths",
    ]
    assert (report["k"], report["length"], report["mode"]) == (5, 2, mode)
    assert (report["rows_in"], report["rows_out"], report["leaks"]) == (35, len(rows), 0)
    assert list(report["lengths"]) == ["1", "2"]

    agg_header, agg = read(tmp_path / "agg.csv")
    assert agg_header == ["combination", "count"]
    assert ["sex:F;age:18-24", "10"] in agg and ["sex:M;form:criminality", "0"] not in agg
    assert all(int(n) % 5 == 0 and int(n) >= 5 for _, n in agg)


@pytest.mark.parametrize(
    ("setup", "extra"),
    [
        ("missing", []),
        ("ragged", []),
        ("empty", []),
        ("good", ["--k", "0"]),
        ("good", ["--length", "0"]),
        ("good", ["--mode", "fancy"]),
        ("no-length", []),
    ],
)
def test_bad_input_exits_usage(tmp_path: Path, setup: str, extra: list[str]) -> None:
    src = tmp_path / "in.csv"
    if setup == "ragged":
        write(src, COLUMNS, [["F", "18-24"]])
    elif setup == "empty":
        src.write_text("")
    elif setup == "good":
        write(src, COLUMNS, ROWS)
    args = ["synthesize", "--input", str(src), "--out", str(tmp_path / "s.csv")]
    if setup == "no-length":
        write(src, COLUMNS, ROWS)
    else:
        args += ["--length", "2"] if "--length" not in extra else []
    args += extra if "--k" in extra else ["--k", "5", *extra]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == int(Exit.USAGE), done.output
    assert not (tmp_path / "s.csv").exists()
