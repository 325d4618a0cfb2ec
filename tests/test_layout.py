"""The layout the design promises: generic top-level names belong to tiptrust alone."""

from __future__ import annotations

import importlib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "transport", "producers", "trust", "consumers", "tiptrust", "infra")


def test_each_top_level_name_maps_only_to_tiptrust() -> None:
    dists = packages_distributions()
    for name in PACKAGES:
        assert set(dists.get(name, [])) == {"tiptrust"}, f"{name} is provided by {dists.get(name)}"
        module = importlib.import_module(name)
        assert Path(module.__file__ or "").resolve().is_relative_to(ROOT)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in readme and "exec scripts/test.sh" in ci
    assert "scripts/demo.sh" in readme
