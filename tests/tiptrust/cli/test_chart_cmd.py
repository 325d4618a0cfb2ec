"""`tiptrust chart RELEASE` and `tiptrust subscribe --charts`: PNG and SVG beside the release,
clear refusals (exit 2 for a missing file, 6 for one that is not a release or fails its
signature). The releases are hand-made and signed as the trust does (see tests/consumers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import transport
from consumers.writers import ReleaseWriter
from schemas.keys import SigningKey, public_pem
from schemas.release import Release
from tests.consumers.conftest import KEY, STREAM, publish, release_with_margins, signed, verified
from tiptrust.cli import app
from tiptrust.cli.common import Exit


def one_way(stream: str = "victims_by_sex") -> Release:
    """A small signed release: one dimension, so one chart (two files) to draw."""
    counts: dict[tuple[str, ...], int] = {("Feminine",): 30, ("Masculine",): 12, ("Unknown",): 3}
    return verified(signed(release_with_margins(("sex",), counts, stream=stream, title="By sex")))


def run(*args: str | Path) -> tuple[int, str]:
    done = CliRunner().invoke(app, [str(a) for a in args])
    return done.exit_code, " ".join(done.output.split())  # the console wraps long lines


def wrote(path: Path, output: str) -> bool:
    """Whether the command said it wrote ``path`` (wrapped anywhere by the console)."""
    return f"wrote{path}" in "".join(output.split())


@pytest.fixture
def held(tmp_path: Path) -> Path:
    """A release as `tiptrust subscribe` writes it; its .json."""
    ReleaseWriter(tmp_path / "out").write(one_way())
    return tmp_path / "out" / "victims_by_sex" / "000001.json"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "trust-release.pub.pem"
    path.write_bytes(public_pem(KEY.public.public))
    return path


def test_chart_writes_png_and_svg_beside_the_release(held: Path, key_file: Path) -> None:
    code, output = run("chart", held, "--trust-key", key_file)
    assert code == 0, output
    charts = held.parent / "charts"
    for name in ("000001.by_sex.png", "000001.by_sex.svg"):
        assert wrote(charts / name, output)
        assert (charts / name).stat().st_size > 1000


def test_chart_counts_go_where_asked_under_their_own_names(held: Path, tmp_path: Path) -> None:
    code, output = run("chart", held, "--out", tmp_path / "mine", "--counts")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == [
        "000001.by_sex.counts.png",
        "000001.by_sex.counts.svg",
    ]
    assert not (held.parent / "charts").exists()


def test_chart_refuses_a_missing_file_and_what_is_not_a_release(held: Path) -> None:
    code, output = run("chart", held.parent / "000009.json")
    assert code == Exit.USAGE and "release_file_missing" in output
    code, output = run("chart", held.with_suffix(".csv"))
    assert code == Exit.REFUSED and "not_a_release" in output and "is not a release" in output
    code, output = run("chart", held.parent / "latest.json")
    assert code == Exit.REFUSED and "not_a_release" in output
    assert not (held.parent / "charts").exists()


def test_chart_with_a_trust_key_refuses_an_altered_release(held: Path, key_file: Path) -> None:
    doc = json.loads(held.read_text())
    first = next(a for a in doc["aggregates"] if a["value"] is not None)
    first["value"] += 1
    held.write_text(json.dumps(doc))
    code, output = run("chart", held, "--trust-key", key_file)
    assert code == Exit.REFUSED and "altered or forged" in output
    other = key_file.with_name("other.pub.pem")
    other.write_bytes(public_pem(SigningKey.generate("trust").public.public))
    code, output = run("chart", held, "--trust-key", other)
    assert code == Exit.REFUSED
    assert not (held.parent / "charts").exists()


def test_subscribe_with_charts_draws_each_release_written(tmp_path: Path, key_file: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "log.db")
    with transport.open_log(url) as log:
        publish(log, signed(one_way(STREAM)))
    out = tmp_path / "out"
    code, output = run(
        "subscribe", "--stream", STREAM, "--consumer", "ministry", "--out", out,
        "--trust-key", key_file, "--log", url, "--home", tmp_path / "home", "--charts",
    )  # fmt: skip
    assert code == 0, output
    charts = out / STREAM / "charts"
    assert sorted(p.name for p in charts.iterdir()) == ["000001.by_sex.png", "000001.by_sex.svg"]
    assert wrote(charts / "000001.by_sex.svg", output)
    assert "1 received" in output
