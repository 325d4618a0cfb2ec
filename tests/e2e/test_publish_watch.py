"""`tiptrust publish --watch`: unattended publishing survives a kill without resending or losing a
file, files what it cannot publish as failed with nothing sent, and stops cleanly on SIGTERM."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from producers.mapping import Mapping
from producers.simulate import simulate
from schemas.codec import default_registry
from schemas.envelope import open_event
from tiptrust import wiring
from tiptrust.cli import app
from tiptrust.home import Home
from transport import open_log, topics

from .conftest import CUSTODIAN_TOKEN, TIPTRUST

REPORT = ".report.json"


def _setup(tmp_path: Path, persons: int) -> tuple[Path, list[list[dict[str, str]]], list[str]]:
    """The trust's and police's keys (made in-process: only the watcher runs as its own
    process), and police's simulated export: (mapping, rows by case, header)."""
    home = tmp_path / "home"
    for args in (
        ["keys", "trust-init"],
        ["keys", "source-init", "--source", "police"],
        ["trust", "register", "--source", "police", "--public-key", "PUBLIC"],
    ):
        if "PUBLIC" in args:
            public = next((home / "sources" / "police" / "keys").glob("*.pub.pem"))
            args[-1] = str(public)
        done = CliRunner().invoke(app, [*args, "--home", str(home)], env=_env(home))
        assert done.exit_code == 0, done.output
    simulate(7, persons, tmp_path / "sim")
    mapping = tmp_path / "sim" / "police" / "mapping.yaml"
    case_column = Mapping.load(mapping).case_column
    by_case: dict[str, list[dict[str, str]]] = {}
    with (tmp_path / "sim" / "police" / "records.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        for row in reader:
            by_case.setdefault(row[case_column], []).append(row)
    return mapping, list(by_case.values()), header


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TIPTRUST_HOME": str(home), "TIPTRUST_TOKEN": CUSTODIAN_TOKEN}


def _drop(folder: Path, name: str, header: list[str], cases: list[list[dict[str, str]]]) -> None:
    """Land an export as an exporter should: written under a partial name, renamed in."""
    part = folder / (name + ".part")
    with part.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for rows in cases:
            w.writerows(rows)
    part.rename(folder / name)


def _cases_on_log(home: Path) -> Counter[str]:
    """How many records of each case the log holds (opened with the trust's keys), after
    checking that no event id is on the log twice."""
    h = Home(home)
    ring = wiring.trust_keyring(h)
    reg = default_registry()
    cases: Counter[str] = Counter()
    event_ids: Counter[str] = Counter()
    with open_log(f"sqlite:///{home / 'log.db'}") as log:
        for r in log.read_all(topics.inbound("police")):
            opened = open_event(r.value, keyring=ring)
            datum = reg.decode_payload(
                opened.header.kind, opened.header.schema_fingerprint, opened.payload
            )
            cases[datum["case_id"]] += 1
            event_ids[str(opened.header.event_id)] += 1
    assert set(event_ids.values()) <= {1}, "an event was sent twice"
    return cases


def test_once_files_good_and_bad_exports_and_exits_3(tmp_path: Path) -> None:
    mapping, cases, header = _setup(tmp_path, persons=400)
    drop = tmp_path / "drop"
    drop.mkdir()
    _drop(drop, "good.csv", header, cases[:20])
    _drop(drop, "bad.csv", [h if h != "gender" else "Gender" for h in header], [])
    (drop / "later.csv.part").write_text("being written")
    args = ["publish", "--watch", str(drop), "--source", "police", "--mapping", str(mapping)]

    run = subprocess.run(
        [*TIPTRUST, *args, "--once", "--settle", "0", "--json"],
        cwd=tmp_path, env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert run.returncode == 3, run.stderr
    reports = {r["file"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert reports["good.csv"]["status"] == "published"
    assert reports["good.csv"]["source_id"] == "police"
    assert reports["good.csv"]["events_sent"] == 20
    assert reports["bad.csv"]["status"] == "failed"
    assert reports["bad.csv"]["error"]["code"] == "bad_mapping"
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["good.csv", "good.csv" + REPORT]
    assert sorted(p.name for p in (drop / "failed").iterdir()) == ["bad.csv", "bad.csv" + REPORT]
    assert (drop / "later.csv.part").exists()
    assert set(_cases_on_log(tmp_path / "home").values()) == {1}
    home = ["--home", str(tmp_path / "home")]
    both = CliRunner().invoke(app, [*args, *home, "--input", "x.csv"])
    assert both.exit_code == 2 and "--watch takes no --input" in both.output
    neither = CliRunner().invoke(app, ["publish", "--source", "police", "--mapping", "m", *home])
    assert neither.exit_code == 2 and "--input FILE, or --watch DIR" in neither.output


def test_killed_mid_run_and_restarted_every_file_published_once(tmp_path: Path) -> None:
    mapping, cases, header = _setup(tmp_path, persons=4000)
    home = tmp_path / "home"
    drop = tmp_path / "drop"
    drop.mkdir()
    files = 6
    share = len(cases) // files
    names = [f"export-{i}.csv" for i in range(files)]
    for i, name in enumerate(names):
        _drop(drop, name, header, cases[i * share : (i + 1) * share])
    expected = {rows[0]["crime_ref"] for rows in cases[: files * share]}
    args = [
        *TIPTRUST, "publish", "--watch", str(drop), "--source", "police",
        "--mapping", str(mapping), "--interval", "0.2", "--settle", "0",
    ]  # fmt: skip
    env = _env(home)

    def filed() -> int:
        return len(list((drop / "done").glob("*" + REPORT))) if (drop / "done").exists() else 0

    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while filed() < 1:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    # at a random moment while the next files are in hand, but before the last one is filed
    until = time.monotonic() + random.Random(os.getpid()).uniform(0.0, 0.5)
    while time.monotonic() < until and filed() < files - 1:
        time.sleep(0.002)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 1 <= filed() < files, "the kill should land mid-run: make the files larger"
    on_log_at_kill = sum(_cases_on_log(home).values())

    second = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    while filed() < files:
        assert second.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second.send_signal(signal.SIGTERM)
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 0  # SIGTERM stops it cleanly

    assert sorted(p.name for p in drop.iterdir() if p.is_file()) == []
    assert [p.name for p in (drop / ".processing").iterdir()] == [".lock"]
    per_case = _cases_on_log(home)
    assert set(per_case) == expected  # none lost
    assert set(per_case.values()) == {1}  # none sent twice
    reports = [json.loads((drop / "done" / (n + REPORT)).read_text()) for n in names]
    assert all(r["status"] == "published" for r in reports)
    for r in reports:  # each file's cases were sent by its run, or before a kill interrupted it
        assert r["events_sent"] + r["events_already_sent"] == share
    recovered = [r for r in reports if r["recovered"]]
    assert len(recovered) <= 1
    assert sum(r["events_sent"] for r in reports) <= len(expected)
    assert sum(r["events_sent"] for r in reports if r["recovered"]) + on_log_at_kill >= sum(
        r["events_sent"] + r["events_already_sent"] for r in recovered
    )
    assert "watching" in out
