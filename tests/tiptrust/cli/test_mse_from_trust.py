"""`tiptrust mse estimate --from-trust` on a trust that really ran (the demo's home): one JSON
estimate over the sources' lists with the counted persons, pooled lists and strata, and clean
refusals (exit 2) when fewer than two lists have persons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tiptrust.cli import app
from tiptrust.demo import run_demo
from trust.release.counts import counted_persons
from trust.store.eventstore import open_store

SOURCES = ["court", "labour_inspectorate", "ngo_haven", "nrm", "police"]  # the demo's agencies


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Once per module: the demo (300 simulated persons), linked by the trust."""
    root = tmp_path_factory.mktemp("demo")
    run_demo(root, persons=300, seed=7)
    return root / "demo"


def mse(home: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["mse", "estimate", "--from-trust", *args, "--home", str(home)])


def as_json(home: Path, *args: str) -> Any:
    done = mse(home, *args, "--json")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_an_estimate_over_every_source(home: Path) -> None:
    got = as_json(home)
    assert got["exists"] is True
    assert got["lists"] == SOURCES
    assert got["sources"] == SOURCES
    store = open_store(f"sqlite:///{home / 'trust' / 'store.db'}")
    try:
        counted = len(counted_persons(store))
    finally:
        store.close()
    assert got["persons"] == got["observed"] == counted  # the persons the releases count
    assert got["observed"] <= got["ci_low"] <= got["estimate"] <= got["ci_high"]
    assert got["interval_method"] == "profile"
    assert sum(got["persons_per_list"].values()) >= got["persons"]
    assert all(":" in term for term in got["model"])
    assert isinstance(got["seconds"], float)


def test_chosen_and_pooled_lists(home: Path) -> None:
    got = as_json(home, "--lists", "police,nrm,ngo=ngo_haven+labour_inspectorate")
    assert got["lists"] == ["police", "nrm", "ngo"]
    assert got["list_sources"]["ngo"] == ["labour_inspectorate", "ngo_haven"]
    assert "court" not in got["sources"]
    assert got["exists"] is True


def test_strata_add_up_to_the_persons(home: Path) -> None:
    got = as_json(home, "--stratum", "sex", "--lists", "police,nrm,ngo_haven")
    assert got["strata_by"] == ["sex"]
    assert sum(s["observed"] for s in got["strata"]) == got["persons"]
    assert all(set(s["stratum"]) == {"sex"} for s in got["strata"])
    assert all("exists" in s for s in got["strata"])


def test_the_console_names_the_lists(home: Path) -> None:
    done = mse(home, "--lists", "police,nrm")
    assert done.exit_code == 0, done.output
    assert "police" in done.stdout and "nrm" in done.stdout and "estimate" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--lists", "police"),  # one list
        ("--lists", "police,nobody"),  # a list no source is on
        ("--lists", "police,ngo=ngo_haven,nrm=ngo_haven"),  # a source in two lists
        ("--stratum", "country"),
    ],
)
def test_refused_cleanly(home: Path, args: tuple[str, ...]) -> None:
    done = mse(home, *args)
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output


def test_one_source_of_histories_only(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    csv.write_text("a,b,count\n1,0,3\n0,1,4\n1,1,2\n")
    both = mse(home, "--histories", str(csv))
    assert both.exit_code == 2
    neither = CliRunner().invoke(app, ["mse", "estimate", "--home", str(home)])
    assert neither.exit_code == 2


def test_a_home_without_a_trust(tmp_path: Path) -> None:
    done = mse(tmp_path / "empty")
    assert done.exit_code == 5
    assert not (tmp_path / "empty" / "trust" / "store.db").exists()
