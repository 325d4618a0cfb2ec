"""Every command pays for the CLI's start-up: the analysis libraries (statsmodels, scipy, pandas,
numpy, the string metrics) load only in the commands that use them, and the options that name
their defaults say the library's own values."""

from __future__ import annotations

import json
import subprocess
import sys

import typer
import typer.core

from tiptrust.cli import link_cmd, mse_cmd
from trust.estimate import Criterion
from trust.linkage.settings import LinkageSettings

HEAVY = ("statsmodels", "scipy", "pandas", "numpy", "rapidfuzz", "jellyfish", "matplotlib")


def test_the_cli_imports_no_analysis_library() -> None:
    probe = (
        "import json, sys, tiptrust.cli; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(loaded) == []


def test_the_cli_options_match_the_libraries() -> None:
    assert {c.value for c in mse_cmd.CriterionOpt} == {c.value for c in Criterion}
    link = typer.main.get_command(link_cmd.app)
    assert isinstance(link, typer.core.TyperGroup)  # batch, why, review, separate, join
    batch = link.commands["batch"]
    helps = {p.name: getattr(p, "help", "") or "" for p in batch.params}
    defaults = LinkageSettings()
    assert f"[default: {defaults.upper}]" in helps["upper"]
    assert f"[default: {defaults.lower}]" in helps["lower"]
