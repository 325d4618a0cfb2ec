"""Helpers for end-to-end tests: run the real `tiptrust` CLI in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TIPTRUST = [sys.executable, "-m", "tiptrust"]

RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> RunCli:
    home = tmp_path / "home"

    def run(
        *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        e = {**os.environ, "TIPTRUST_HOME": str(home), "COLUMNS": "200", **(env or {})}
        proc = subprocess.run(
            [*TIPTRUST, *args], cwd=tmp_path, env=e, capture_output=True, text=True, timeout=300
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"tiptrust {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            out: dict[str, Any] = json.loads(line)
            return out
    raise AssertionError(f"no JSON line in output:\n{text}")


def identifying_values(export: Path, mapping: Path) -> set[str]:
    """Every name, date of birth and document number cell of an agency export, as written."""
    spec = yaml.safe_load(mapping.read_text())
    columns = set()
    for path, entry in spec.get("fields", {}).items():
        if path.startswith("$.victims[].identifiers."):
            columns.add(entry if isinstance(entry, str) else entry["column"])
    values: set[str] = set()
    with export.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            for c in columns:
                v = (row.get(c) or "").strip()
                if len(v) >= 4:  # shorter cells (e.g. "Li") match random bytes by chance
                    values.add(v)
    return values


def publish_args(sim: Path, source: str, *extra: str, export: Path | None = None) -> list[str]:
    """The `tiptrust publish` arguments for one simulated agency's export."""
    return [
        "publish",
        "--source",
        source,
        "--input",
        str(export or sim / source / "records.csv"),
        "--mapping",
        str(sim / source / "mapping.yaml"),
        *extra,
    ]
