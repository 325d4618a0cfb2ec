"""`tiptrust mse estimate`: one JSON object, "no estimate" with exit 0, bad input with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tiptrust.cli import app
from tiptrust.cli.common import Exit

# the Western histories the estimator's own tests reproduce published figures on
WESTERN = (Path(__file__).parents[2] / "trust" / "estimate" / "data" / "western.csv").read_text()
FIELDS = {
    "observed",
    "estimate",
    "hidden",
    "ci_low",
    "ci_high",
    "model",
    "criterion",
    "lists",
    "exists",
    "interval_method",
    "seconds",
}


def _run(tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    path = tmp_path / "histories.csv"
    path.write_text(text)
    done = CliRunner().invoke(app, ["mse", "estimate", "--histories", str(path), *args])
    return done.exit_code, done.output


def test_json_is_one_object_with_the_published_estimate(tmp_path: Path) -> None:
    code, output = _run(tmp_path, WESTERN, "--criterion", "pvalue", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert set(report) >= FIELDS
    assert report["exists"] is True
    assert report["model"] == ["A:E"]
    assert report["estimate"] == pytest.approx(2483.384, abs=1e-3)
    assert report["observed"] <= report["ci_low"] <= report["estimate"] <= report["ci_high"]
    assert report["interval_method"] == "profile" and report["criterion"] == "pvalue"


def test_bootstrap_option_gives_a_bca_interval(tmp_path: Path) -> None:
    code, output = _run(
        tmp_path, WESTERN, "--criterion", "pvalue", "--bootstrap", "20", "--seed", "5", "--json"
    )
    assert code == 0, output
    report = json.loads(output)
    assert report["interval_method"] == "bootstrap-bca"
    assert report["bootstrap"]["replicates"] == 20


def test_lists_that_never_overlap_exit_0_with_no_estimate(tmp_path: Path) -> None:
    code, output = _run(tmp_path, "a,b,c,count\n1,0,0,4\n0,1,0,3\n0,0,1,5\n", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["exists"] is False
    assert report["estimate"] is None and report["ci_low"] is None and report["ci_high"] is None
    assert report["reason"] and report["reason_code"] == "lists_disjoint"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a,b,n\n1,0,3\n", "count"),
        ("a,b,count\n1,7,3\n", "row 2"),
        ("a,count\n1,3\n", "two list"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path: Path, text: str, says: str) -> None:
    code, output = _run(tmp_path, text, "--json")
    assert code == int(Exit.USAGE)
    assert says in output


def test_bad_options_and_missing_files_exit_2(tmp_path: Path) -> None:
    assert _run(tmp_path, WESTERN, "--criterion", "pvalue", "--search", "exhaustive")[0] == 2
    assert _run(tmp_path, WESTERN, "--threshold", "2")[0] == 2
    assert _run(tmp_path, WESTERN, "--search", "exhaustive", "--bootstrap", "-1")[0] == 2
    done = CliRunner().invoke(app, ["mse", "estimate", "--histories", str(tmp_path / "no.csv")])
    assert done.exit_code == 2


def test_the_readable_report_states_the_assumptions(tmp_path: Path) -> None:
    code, output = _run(tmp_path, WESTERN)
    assert code == 0, output
    assert "closed population" in output and "interval" in output
