"""What the agencies put on the log names nobody: no identifier in keys, values or headers.

The real CLI simulates a population, every agency publishes its export, and then every identifying
value of the exports — names, dates of birth as written, document and phone numbers, and every
reference the mapping maps (case, victim and perpetrator ids) — is looked for in the log: in the
raw bytes of the SQLite files, and in every record's key, value and headers as read back.
"""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest
import yaml

from infra.broker import TansuBroker
from producers.simulate import SOURCES
from transport import LogRecord, open_log, topics

from .conftest import RunCli, last_json, publish_args, subscribe

MIN_LENGTH = 6  # shorter cells (ages, codes, "Li") also occur by chance in random bytes


def identifiers(export: Path, mapping: Path) -> dict[str, set[str]]:
    """column → its identifying cell values of at least six characters, as written."""
    spec = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    columns = {spec["case_column"], spec["victim_column"]}
    if spec.get("perpetrator_column"):
        columns.add(spec["perpetrator_column"])
    for path, entry in spec.get("fields", {}).items():
        if path.startswith("$.victims[].identifiers."):
            columns.add(entry if isinstance(entry, str) else entry["column"])
    found: dict[str, set[str]] = {c: set() for c in columns}
    with export.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            for c in columns:
                v = (row.get(c) or "").strip()
                if len(v) >= MIN_LENGTH:
                    found[c].add(v)
    return found


def all_identifiers(sim: Path) -> dict[str, set[str]]:
    """``source.column`` → values, for every agency."""
    out: dict[str, set[str]] = {}
    for s in SOURCES:
        for column, values in identifiers(
            sim / s / "records.csv", sim / s / "mapping.yaml"
        ).items():
            out[f"{s}.{column}"] = values
    return out


def leaks(data: bytes, values: dict[str, set[str]]) -> list[str]:
    """Which columns have a value in ``data`` (the column names, never the values)."""
    return sorted({c for c, vs in values.items() for v in vs if v.encode() in data})


def record_bytes(records: list[LogRecord]) -> bytes:
    return b"\x00".join(
        (r.key or b"")
        + b"\x00"
        + r.value
        + b"\x00"
        + b"\x00".join(n.encode() + v for n, v in r.headers)
        for r in records
    )


def _setup(cli: RunCli, tmp_path: Path) -> Path:
    cli("keys", "trust-init")
    cli("simulate", "--out", "sim", "--seed", "3", "--persons", "200")
    for s in SOURCES:  # publishing needs the source's keys only, not its registration
        cli("keys", "source-init", "--source", s)
    return tmp_path / "sim"


def _check_values(sim: Path) -> dict[str, set[str]]:
    values = all_identifiers(sim)
    # the check has something to find, of every kind, and finds it where it is
    kinds = {c.split(".", 1)[1] for c, vs in values.items() if vs}
    for column in ("crime_ref", "victim_ref", "surname", "dob", "passport_no", "phone"):
        assert column in kinds, column
    for column in ("referral_id", "subject_id", "inspection_no", "case_number", "defendant_no"):
        assert column in kinds, column
    exports = b"".join((sim / s / "records.csv").read_bytes() for s in SOURCES)
    assert leaks(exports, values) == sorted(c for c, vs in values.items() if vs)
    return values


def test_no_identifier_on_the_sqlite_log(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path)
    values = _check_values(sim)
    home = tmp_path / "home"
    published = 0
    for s in SOURCES:
        report = last_json(cli(*publish_args(sim, s, "--json")).stdout)
        assert report["rows_rejected"] == 0
        published += report["events_published"]
        secret = home / "sources" / s / "keys" / "message-key.bin"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    raw = b"".join(p.read_bytes() for p in sorted(home.glob("log.db*")))
    assert len(raw) > 50_000
    assert leaks(raw, values) == []
    with open_log(f"sqlite:///{home / 'log.db'}") as log:
        records = [r for s in SOURCES for r in log.read_all(topics.inbound(s))]
    assert len(records) == published > 0
    assert leaks(record_bytes(records), values) == []
    for r in records:
        assert r.key is not None and len(r.key) == 16
        assert [name for name, _ in r.headers] == ["event_id"] and len(r.headers[0][1]) == 16
    # one key per case: as many distinct keys as cases (upserts of one case share a partition)
    assert len({(r.topic, r.key) for r in records}) == published

    # the trust answers: receipts for two agencies it has no agreement with, releases for the rest
    for s in SOURCES:
        pub = next((home / "sources" / s / "keys").glob("*.pub.pem"))
        extra = (
            ["--agreement", str(sim / s / "agreement.yaml")] if s not in ("court", "police") else []
        )
        cli("trust", "register", "--source", s, "--public-key", str(pub), *extra)
    subscribe(cli)
    run = last_json(cli("trust", "run", "--json").stdout)
    assert run["rejected"].get("no_agreement", 0) > 0 and run["releases"]
    raw = b"".join(p.read_bytes() for p in sorted(home.glob("log.db*")))
    assert leaks(raw, values) == []
    with open_log(f"sqlite:///{home / 'log.db'}") as log:
        everything = [r for t in log.list_topics("tip.") for r in log.read_all(t)]
        receipts = [r for s in SOURCES for r in log.read_all(topics.rejected(s))]
    assert len(receipts) == run["rejected"]["no_agreement"]
    assert leaks(record_bytes(everything), values) == []


def test_the_check_catches_a_reference_in_a_key(tmp_path: Path) -> None:
    # the raw-bytes check is not blind to the SQLite file format: a clear key is found
    values = {"police.crime_ref": {"CR/2023/00042"}}
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(url) as log:
        log.create_topic("tip.inbound.police", partitions=1)
        log.append("tip.inbound.police", b"\x01" * 64, key=b"CR/2023/00042")
        log.flush()
        records = log.read_all("tip.inbound.police")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("log.db*"))
    assert leaks(raw, values) == ["police.crime_ref"]
    assert leaks(record_bytes(records), values) == ["police.crime_ref"]


@pytest.mark.kafka
def test_no_identifier_on_the_kafka_topics(
    cli: RunCli, tmp_path: Path, own_tansu: TansuBroker
) -> None:
    tansu = own_tansu
    sim = _setup(cli, tmp_path)
    values = _check_values(sim)
    # the broker is shared by the session: look only at what this test published
    with open_log(tansu.url) as log:
        before = {
            (r.topic, r.partition, r.offset)
            for s in SOURCES
            for r in log.read_all(topics.inbound(s))
        }
    for s in SOURCES:
        cli(*publish_args(sim, s, "--log", tansu.url))
    with open_log(tansu.url) as log:
        records = [
            r
            for s in SOURCES
            for r in log.read_all(topics.inbound(s))
            if (r.topic, r.partition, r.offset) not in before
        ]
    assert len(records) > 100
    assert leaks(record_bytes(records), values) == []
    assert all(r.key is not None and len(r.key) == 16 for r in records)
