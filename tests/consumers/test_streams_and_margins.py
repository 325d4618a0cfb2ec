"""`tiptrust streams`, unknown stream names, and a consumer's files for a stream with margins."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from consumers.writers import readme_text, release_csv, release_to_json
from tiptrust.cli import app
from trust.release.aggregate import table_from_counts
from trust.release.disclosure.margins import protect_margins
from trust.release.publish import build_release
from trust.release.streams import CATALOGUE, VICTIMS_BY_YEAR_FORM


def test_streams_lists_every_declared_stream() -> None:
    done = CliRunner().invoke(app, ["streams", "--json"])
    assert done.exit_code == 0, done.output
    rows = json.loads(done.output)
    assert [r["stream"] for r in rows] == list(CATALOGUE)
    by = {r["stream"]: r for r in rows}
    assert by["prevalence_estimate"]["dimensions"] == ["measure"]
    assert by["prevalence_estimate"]["estimate"] and not by["victims_by_year_sex"]["estimate"]
    assert "synthetic_microdata" in by
    assert by["victims_by_year_sex"]["dimensions"] == ["year", "sex"]
    assert by["victims_by_year_form"]["k"] == 10 and by["victims_by_year_form"]["margins"]
    assert by["victims_by_sex_age_form"]["margins"]  # every count stream, the four-way too


def test_subscribing_to_an_unknown_stream_is_an_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        app,
        ["subscribe", "--stream", "victims_by_yaer_sex", "--consumer", "ministry", "--out",
         str(tmp_path / "out"), "--home", str(tmp_path / "home")],
    )  # fmt: skip
    assert done.exit_code == 2
    said = " ".join(done.output.split())  # the console wraps long lines
    assert "no release stream" in said and "tiptrust streams" in said
    assert not (tmp_path / "out").exists()


def test_a_release_with_margins_is_written_with_total_where_not_broken_down() -> None:
    counts: dict[tuple[str, ...], int] = {("2022", "SexualExploitation"): 40}
    counts[("2022", "ForcedLabour")] = 25
    counts |= {("2023", "SexualExploitation"): 33, ("2023", "ForcedLabour"): 3}
    table = protect_margins(table_from_counts(VICTIMS_BY_YEAR_FORM, counts), 10).table
    release = build_release(
        VICTIMS_BY_YEAR_FORM,
        table,
        counting_rule="one count per person",
        sequence=1,
        sources=("src-a",),
        issued_at_ms=1_760_000_000_000,
        release_id="r1",
    )
    rows = list(csv.DictReader(io.StringIO(release_csv(release))))
    assert len(rows) == len(release.aggregates)
    total = [r for r in rows if r["year"] == "Total" and r["form"] == "Total"]
    assert len(total) == 1 and total[0]["value"] == "101"
    years = {r["year"]: r["value"] for r in rows if r["form"] == "Total" and r["year"] != "Total"}
    assert set(years) == {"2022", "2023"} and years["2022"] in ("65", "")
    forms = [r for r in rows if r["year"] == "Total" and r["form"] != "Total"]
    assert len(forms) == len(release.labels["form"])
    assert all(r["value"] == "" or int(r["value"]) >= 10 for r in rows)
    doc = release_to_json(release)
    assert any(a["dimensions"] == ["year"] for a in doc["aggregates"])
    assert "Total" in readme_text(release)
