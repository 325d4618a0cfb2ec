"""Helpers for end-to-end tests: run the real `tiptrust` CLI in processes of its own (forked
from a fork server that imported it once: :mod:`forkserver`)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tiptrust.home import Home
from trust.stewardship.principals import PrincipalError, Role, add_principal
from trust.store.eventstore import open_store

from .forkserver import Launcher

ROOT = Path(__file__).resolve().parents[2]
TIPTRUST = [sys.executable, "-m", "tiptrust"]

RunCli = Callable[..., subprocess.CompletedProcess[str]]


CUSTODIAN_TOKEN = "tt1.00e2e0c0570d1a00." + "e2e-custodian-" * 4
"""The custodian's token in every home these tests make: ``keys trust-init`` adopts the
``TIPTRUST_TOKEN`` it is given for the first custodian (the one place tests give a token)."""


def _option(args: tuple[str, ...], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args[:-1] else None


class Principals:
    """The principals a test's commands act as, made the first time a command needs them: a
    subscription's consumer (``trust subscription add --consumer X`` registers X as a consumer),
    the consumer that subscribes (its own token), a source's data steward (``notify``).

    Everything else runs with :data:`CUSTODIAN_TOKEN`; a test that passes ``TIPTRUST_TOKEN`` in
    ``env`` acts as it gave. Tokens are remembered per home (by path)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], str] = {}

    def token(self, home: str, name: str, role: str, source: str | None = None) -> str | None:
        """The principal's token, added first if needed; None when it cannot be added (e.g. a
        name that is not a name: the command itself then says what is wrong)."""
        key = (home, name)
        if key not in self._tokens:
            # through the library, not `tiptrust principal add` (its own tests run the command):
            # a CLI start per principal would cost more than many of the commands under test
            store = open_store(Home(Path(home)).store_url())
            try:
                issued = add_principal(store, name, Role(role), source=source, added_by="e2e")
            except PrincipalError:
                return None
            finally:
                store.close()
            self._tokens[key] = issued.token
        return self._tokens[key]

    def env_for(self, home: str, args: tuple[str, ...]) -> dict[str, str]:
        """The token ``args`` act with, making its principal first if needed."""
        trust_home = (Path(home) / "trust" / "kek.bin").exists()
        token = None
        if args[:3] == ("trust", "subscription", "add") and (c := _option(args, "--consumer")):
            self.token(home, c, "consumer")
        elif args[:1] == ("subscribe",) and trust_home and (c := _option(args, "--consumer")):
            token = self.token(home, c, "consumer")
        elif args[:1] == ("notify",) and trust_home and (s := _option(args, "--source")):
            token = self.token(home, f"{s}-steward", "data_steward", s)
        elif args[:3] == ("trust", "subscription", "approve"):
            token = self.token(home, TRUSTEE, "trustee")  # not the custodian who asked
        return {} if token is None else {"TIPTRUST_TOKEN": token}


@pytest.fixture(scope="session")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """Once per test process: the fork server every `tiptrust` command of the tests is forked
    from (:mod:`forkserver`: a process of its own per command, without a second of imports)."""
    made = Launcher(tmp_path_factory.mktemp("forkserver"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def cli(tmp_path: Path, request: pytest.FixtureRequest, launcher: Launcher) -> RunCli:
    """Run `tiptrust` in a process of its own in ``tmp_path``, home ``tmp_path/home`` (or
    ``--home``), acting as the principal each command needs (:class:`Principals`).

    Each command is forked from the session's :func:`launcher`; a test marked
    ``fresh_interpreters`` starts each as a new interpreter (``python -m tiptrust``)."""
    home = tmp_path / "home"
    fresh = request.node.get_closest_marker("fresh_interpreters") is not None
    starts = Launcher(tmp_path, fresh=True) if fresh else launcher

    def raw(
        *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        e = {
            **os.environ,
            "TIPTRUST_HOME": str(home),
            "COLUMNS": "200",
            "TIPTRUST_TOKEN": CUSTODIAN_TOKEN,
            **(env or {}),
        }
        proc: subprocess.CompletedProcess[str] = starts.run(args, env=e, cwd=tmp_path, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"tiptrust {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    acting = Principals()

    def run(
        *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        if env is None or "TIPTRUST_TOKEN" not in env:
            where = _option(args, "--home") or str(home)
            env = {**acting.env_for(where, args), **(env or {})}
        return raw(*args, check=check, env=env)

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


PUBLISHED_SOURCES = ("court", "labour_inspectorate", "ngo_haven", "nrm", "police")


def _cli_in(launcher: Launcher, root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "TIPTRUST_HOME": str(root / "home"),
        "COLUMNS": "200",
        "TIPTRUST_TOKEN": CUSTODIAN_TOKEN,
    }
    proc = launcher.run(args, env=env, cwd=root, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"tiptrust {' '.join(args)} exited {proc.returncode}\n{proc.stderr}")


@pytest.fixture(scope="session")
def published_template(tmp_path_factory: pytest.TempPathFactory, launcher: Launcher) -> Path:
    """Once per test process: 2,000 simulated persons, five agencies registered with their
    agreements, every export published to the embedded log (nothing ingested yet)."""
    root = tmp_path_factory.mktemp("published")
    _cli_in(launcher, root, "keys", "trust-init")
    _cli_in(launcher, root, "simulate", "--out", "sim", "--seed", "5", "--persons", "2000")
    for s in PUBLISHED_SOURCES:
        _cli_in(launcher, root, "keys", "source-init", "--source", s)
        pub = next((root / "home" / "sources" / s / "keys").glob("*.pub.pem"))
        agreement = root / "sim" / s / "agreement.yaml"
        _cli_in(
            launcher,
            root,
            "trust",
            "register",
            "--source",
            s,
            "--public-key",
            str(pub),
            "--agreement",
            str(agreement),
        )
    for s in PUBLISHED_SOURCES:
        _cli_in(launcher, root, *publish_args(root / "sim", s))
    return root


@pytest.fixture
def published(published_template: Path, tmp_path: Path) -> Path:
    """A private copy of the published home in this test's folder (the ``cli`` fixture's home);
    returns its simulation folder. Copying takes a fraction of re-simulating and re-publishing."""
    shutil.copytree(published_template / "home", tmp_path / "home")
    shutil.copytree(published_template / "sim", tmp_path / "sim")
    return tmp_path / "sim"


TRUSTEE = "e2e-trustee"
"""The trustee who approves the subscriptions the custodian asks for (two-person rule)."""


def subscribe(
    cli: RunCli,
    consumer: str = "ministry",
    stream: str = "victims_by_year_sex",
    purpose: str = "statistics",
) -> None:
    """Subscribe ``consumer`` as an operator does: the custodian asks, a trustee approves."""
    cli(*subscribe_args(consumer, stream, purpose))
    cli("trust", "subscription", "approve", f"{consumer}/{stream}")


def subscribe_args(
    consumer: str = "ministry",
    stream: str = "victims_by_year_sex",
    purpose: str = "statistics",
) -> list[str]:
    """The `tiptrust trust subscription add` arguments for one subscription (it awaits a
    trustee's approval: :func:`subscribe` does both)."""
    return [
        "trust",
        "subscription",
        "add",
        "--consumer",
        consumer,
        "--stream",
        stream,
        "--purpose",
        purpose,
    ]
