"""`tiptrust trust population FILE --source TEXT`: the denominators of rate streams, checked
first (every problem by row and column, never the value) and then kept in the trust's home."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tiptrust.cli import app
from tiptrust.home import Home
from trust.release.population import load_population

AGES = (
    ("0-11", 500000),
    ("12-17", 300000),
    ("18-24", 400000),
    ("25-34", 700000),
    ("35-44", 650000),
    ("45+", 2000000),
)
GOOD = "year,sex,age_group,population\n" + "".join(
    f"2024,{sex},{age},{n}\n" for sex in ("Feminine", "Masculine") for age, n in AGES
)


def test_a_population_file_is_checked_then_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    good = tmp_path / "pop.csv"
    good.write_text(GOOD)
    done = CliRunner().invoke(
        app, ["trust", "population", str(good), "--source", "Census 2024", "--home", str(home)]
    )
    assert done.exit_code == 0, done.output
    kept = load_population(Home(home).population_dir)
    assert kept is not None and kept.source == "Census 2024" and kept.years() == ("2024",)


def test_a_bad_file_is_refused_by_row_and_column_and_nothing_changes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "pop.csv"
    bad.write_text(GOOD.replace("2024,Masculine,18-24,400000", "2024,Masculine,18-24,lots897"))
    done = CliRunner().invoke(
        app, ["trust", "population", str(bad), "--source", "Census 2024", "--home", str(home)]
    )
    assert done.exit_code == 2
    assert "lots897" not in done.output and "row" in done.output
    assert load_population(Home(home).population_dir) is None
