"""`tiptrust mse chart`: the annex 7 chart from a consumer's folder of estimate releases and from
`mse estimate --json` outputs; clean refusals for inputs that hold no estimate."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from consumers.writers import ReleaseWriter
from schemas.release import signed_release
from tests.consumers.conftest import KEY
from tests.consumers.test_estimate_release import estimate_release
from tiptrust.cli import app
from tiptrust.cli.common import Exit

DATA = Path(__file__).parents[2] / "trust" / "estimate" / "data"


def run(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["mse", "chart", *args])
    return done.exit_code, done.output


def test_a_chart_from_a_folder_of_releases(tmp_path: Path) -> None:
    writer = ReleaseWriter(tmp_path / "out")
    for sequence, observed in ((1, 73), (2, 90)):
        writer.write(signed_release(estimate_release(sequence, observed=observed), KEY)[0])
    folder = tmp_path / "out" / "prevalence_estimate"
    code, output = run(str(folder), "--out", str(tmp_path / "charts"))
    assert code == 0, output
    for fmt in ("png", "svg"):
        assert (tmp_path / "charts" / f"prevalence_estimate.{fmt}").stat().st_size > 1000
    svg = (tmp_path / "charts" / "prevalence_estimate.svg").read_text()
    assert "#1" in svg and "#2" in svg  # one point per release, in order


def test_a_chart_from_estimate_outputs(tmp_path: Path) -> None:
    outputs = []
    for name in ("korea", "western"):
        done = CliRunner().invoke(
            app, ["mse", "estimate", "--histories", str(DATA / f"{name}.csv"), "--json"]
        )
        assert done.exit_code == 0, done.output
        path = tmp_path / f"{name}.json"
        path.write_text(done.stdout)
        outputs.append(str(path))
    code, output = run(*outputs, "--out", str(tmp_path / "charts"), "--title", "Two studies")
    assert code == 0, output
    svg = (tmp_path / "charts" / "prevalence_estimate.svg").read_text()
    assert "Two studies" in svg and "korea" in svg and "western" in svg


def test_inputs_without_an_estimate_are_refused(tmp_path: Path) -> None:
    assert run(str(tmp_path / "missing"))[0] == Exit.USAGE
    (tmp_path / "empty").mkdir()
    assert run(str(tmp_path / "empty"))[0] == Exit.USAGE
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": 3}))
    assert run(str(other))[0] == Exit.REFUSED
    assert not (tmp_path / "charts").exists()
