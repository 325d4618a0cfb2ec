"""Agencies publish: bad rows reported, nothing lost, crash-safe reruns, per-log state, resend."""

from __future__ import annotations

import contextlib
import csv
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from producers.mapping import Mapping
from schemas.codec import default_registry
from schemas.envelope import open_event
from schemas.keys import Keyring
from tiptrust import wiring
from tiptrust.home import Home
from transport import open_log, topics

from .conftest import TIPTRUST, RunCli, identifying_values, last_json, publish_args

SOURCES = ("court", "labour_inspectorate", "ngo_haven", "nrm", "police")


def _setup(
    cli: RunCli,
    tmp_path: Path,
    persons: int = 1000,
    sources: tuple[str, ...] = SOURCES,
    *,
    agreements: bool = True,
) -> Path:
    """Trust keys, a simulation, and each source's key registered — with the agreement the
    simulator wrote beside its export, unless ``agreements`` is False (deny by default)."""
    cli("keys", "trust-init")
    cli("simulate", "--out", "sim", "--seed", "5", "--persons", str(persons))
    home = tmp_path / "home"
    sim = tmp_path / "sim"
    for s in sources:
        cli("keys", "source-init", "--source", s)
        pub = next((home / "sources" / s / "keys").glob("*.pub.pem"))
        extra = ["--agreement", str(sim / s / "agreement.yaml")] if agreements else []
        cli("trust", "register", "--source", s, "--public-key", str(pub), *extra)
    return sim


def _opened_by_case(home: Path, log_url: str, source: str) -> dict[str, set[str]]:
    """case id → event ids found on the log, decrypted with the trust's keys."""
    h = Home(home)
    ring: Keyring = wiring.trust_keyring(h)
    reg = default_registry()
    by_case: dict[str, set[str]] = defaultdict(set)
    with open_log(log_url) as log:
        for r in log.read_all(topics.inbound(source)):
            opened = open_event(r.value, keyring=ring)
            datum = reg.decode_payload(
                opened.header.kind, opened.header.schema_fingerprint, opened.payload
            )
            by_case[datum["case_id"]].add(str(opened.header.event_id))
    return by_case


def _one_row_per_case(src: Path, dst: Path, n: int) -> None:
    """The first n rows of an export, each its own case (so one bad row withholds only itself)."""
    with src.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for _, r in zip(range(n), reader, strict=False)]
        fields = reader.fieldnames or []
    for i, r in enumerate(rows):
        r["crime_ref"] = f"CR/E2E/{i:05d}"
    with dst.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def test_five_broken_rows_of_a_thousand(cli: RunCli, tmp_path: Path) -> None:
    from producers.simulate.faults import bad_rows

    sim = _setup(cli, tmp_path, persons=5000, sources=("police",))
    export = tmp_path / "police-1000.csv"
    _one_row_per_case(sim / "police" / "records.csv", export, 1000)
    faults = bad_rows(
        export, export, 5, seed=3, mapping=Mapping.load(sim / "police" / "mapping.yaml")
    )
    proc = cli(*publish_args(sim, "police", "--json", export=export), check=False)
    assert proc.returncode == 3, proc.stderr
    report = last_json(proc.stdout)
    assert report["rows"] == 1000
    assert report["rows_published"] == 995
    assert report["rows_rejected"] == 5
    assert sorted({p["row"] for p in report["problems"]}) == sorted(f.row for f in faults)
    for p in report["problems"]:
        assert p["field"].startswith("$.") and p["reason"] and p["expected"]
    # nothing lost: all 995 good rows are on the log, each exactly once by event id
    by_case = _opened_by_case(
        tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'log.db'}", "police"
    )
    assert len(by_case) == 995
    assert all(len(ids) == 1 for ids in by_case.values())
    # the human report names row, field and reason, and never a cell value
    text = cli(*publish_args(sim, "police", export=export), check=False)
    assert text.returncode == 3
    values = identifying_values(export, sim / "police" / "mapping.yaml")
    assert not any(v in text.stdout + text.stderr for v in values)


def _size(files: Iterable[Path]) -> int:
    """The bytes of ``files``; one that went away meanwhile (SQLite's journal) counts none."""
    total = 0
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            total += f.stat().st_size
    return total


def test_publisher_killed_mid_run_then_rerun(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=20000, sources=("nrm",))
    home = tmp_path / "home"
    args = [*TIPTRUST, *publish_args(sim, "nrm", "--json")]
    env = {**os.environ, "TIPTRUST_HOME": str(home)}
    outbox = home / "sources" / "nrm" / "outbox.db"
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # kill it once some batches are sealed but (almost surely) before it finishes
    deadline = time.monotonic() + 60
    while _size(outbox.parent.glob("outbox.db*")) < 200_000:
        assert proc.poll() is None, (
            "publisher finished before it could be killed: make the input larger"
        )
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(random.Random(os.getpid()).uniform(0.05, 0.2))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    log_url = f"sqlite:///{home / 'log.db'}"
    partial = _opened_by_case(home, log_url, "nrm")
    rerun = last_json(cli(*publish_args(sim, "nrm", "--json")).stdout)
    assert rerun["rows_rejected"] == 0
    by_case = _opened_by_case(home, log_url, "nrm")
    with (sim / "nrm" / "records.csv").open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        from producers.mapping import Mapping

        case_column = Mapping.load(sim / "nrm" / "mapping.yaml").case_column
        all_cases = {r[case_column] for r in reader}
    assert 0 < len(partial) < len(all_cases), "the kill should land mid-run"
    assert set(by_case) == all_cases  # every row reached the log
    assert all(len(ids) == 1 for ids in by_case.values())  # no row got two event ids
    again = last_json(cli(*publish_args(sim, "nrm", "--json")).stdout)
    assert again["events_published"] == 0 and again["events_unchanged"] == len(all_cases)


def test_each_log_gets_every_record_once(cli: RunCli, tmp_path: Path) -> None:
    """Publishing to a test log first does not make the real log look served."""
    sim = _setup(cli, tmp_path, persons=300, sources=("police",))
    home = tmp_path / "home"
    test_url = f"sqlite:///{tmp_path / 'test.db'}"
    first = last_json(
        cli(*publish_args(sim, "police", "--json", "--log", "sqlite:///test.db")).stdout
    )
    assert first["events_published"] > 0 and first["events_unchanged"] == 0
    real = last_json(cli(*publish_args(sim, "police", "--json")).stdout)
    assert real["events_published"] == first["events_published"]
    assert real["events_unchanged"] == 0
    again = last_json(cli(*publish_args(sim, "police", "--json")).stdout)
    assert again["events_published"] == 0
    assert again["events_unchanged"] == first["events_published"]
    # the same log named another way (absolute path, from another folder) is the same destination
    also = last_json(cli(*publish_args(sim, "police", "--json", "--log", test_url)).stdout)
    assert also["events_published"] == 0
    on_test = _opened_by_case(home, test_url, "police")
    on_real = _opened_by_case(home, f"sqlite:///{home / 'log.db'}", "police")
    assert on_test == on_real  # same cases, same event ids
    assert all(len(ids) == 1 for ids in on_real.values())
    # keys: a keyed hash under the source's secret, the same for a case on both logs
    secret = home / "sources" / "police" / "keys" / "message-key.bin"
    assert secret.stat().st_mode & 0o777 == 0o600
    with open_log(test_url) as a, open_log(f"sqlite:///{home / 'log.db'}") as b:
        keys_a = sorted(r.key or b"" for r in a.read_all(topics.inbound("police")))
        keys_b = sorted(r.key or b"" for r in b.read_all(topics.inbound("police")))
    assert keys_a == keys_b and all(len(k) == 16 for k in keys_a)
    assert not any(case.encode() in k for case in on_real for k in keys_a)


def test_resend_sends_everything_again_with_the_same_event_ids(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=300, sources=("police",))
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'log.db'}"
    first = last_json(cli(*publish_args(sim, "police", "--json")).stdout)
    before = _opened_by_case(home, url, "police")
    with open_log(url) as log:
        envelopes_before = {r.value for r in log.read_all(topics.inbound("police"))}
    again = last_json(cli(*publish_args(sim, "police", "--json", "--resend")).stdout)
    assert again["events_published"] == again["events_republished"] == first["events_published"]
    assert again["events_unchanged"] == 0 and again["rows_rejected"] == 0
    after = _opened_by_case(home, url, "police")
    assert after == before  # the same event id per case: the trust keeps one copy
    with open_log(url) as log:
        records = log.read_all(topics.inbound("police"))
    assert len(records) == 2 * first["events_published"]
    assert len({r.value for r in records} - envelopes_before) == first["events_published"]
    # without --resend nothing more goes; the help says what --resend is for
    assert last_json(cli(*publish_args(sim, "police", "--json")).stdout)["events_published"] == 0
    help_text = cli("publish", "--help").stdout
    assert "--resend" in help_text and "same event ids" in " ".join(help_text.split())


def test_a_notice_is_sent_once_unless_resent(cli: RunCli, tmp_path: Path) -> None:
    _setup(cli, tmp_path, persons=300, sources=("police",))
    home = tmp_path / "home"
    notice = ("notify", "--source", "police", "--kind", "retraction", "--case", "CR/2020/00001")
    assert "sent (1 event)" in cli(*notice).stdout
    assert "already sent" in cli(*notice).stdout
    assert "sent (1 event)" in cli(*notice, "--resend").stdout
    with open_log(f"sqlite:///{home / 'log.db'}") as log:
        records = log.read_all(topics.inbound("police"))
    assert len(records) == 2 and records[0].key == records[1].key
    assert b"CR/2020" not in (records[0].key or b"")
    assert records[0].headers == records[1].headers  # the same event id
