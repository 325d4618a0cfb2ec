"""End to end over a real SQLite log: signed releases on the stream's topic, a consumer verifies
and writes them; unsigned, altered, foreign-key and wrong-stream messages are refused, never
written. The releases are made here, not by the trust: a consumer takes whatever the trust's key
signed (the trust-to-consumer path runs in the demo's end-to-end test)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from consumers.writers import ReleaseWriter, release_from_json
from schemas.keys import SigningKey
from schemas.release import Release, sign_release, verify_release
from transport import EventLog

from .conftest import (
    DIMENSIONS,
    KEY,
    KEYS,
    STREAM,
    T0,
    make_release,
    publish,
    signed,
    subscriber,
    verified,
)


def count_byte(release: Release, index: int) -> int:
    """Offset of aggregate ``index``'s value in the published bytes (found by changing only it)."""
    a = release.encoded()
    aggregates = list(release.aggregates)
    value = aggregates[index].value
    assert isinstance(value, int) and value < 63  # one-byte zigzag varint either way
    aggregates[index] = dataclasses.replace(aggregates[index], value=value ^ 1)
    b = dataclasses.replace(release, aggregates=tuple(aggregates)).encoded()
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    assert len(a) == len(b) and len(diffs) == 1
    return diffs[0]


def test_release_is_verified_and_written_as_csv_and_json(log: EventLog, tmp_path: Path) -> None:
    raw = signed(make_release(1, (12, None, 15)))
    release = verified(raw)
    publish(log, raw)
    out = tmp_path / "out"
    with subscriber(log, out) as sub:
        report = sub.run_once(timeout=5)
    assert report.received == 1 and not report.refused and report.conflict is None
    folder = out / STREAM
    assert report.written == [
        folder / "000001.csv",
        folder / "000001.json",
        folder / "000001.metadata.json",
        folder / "000001.parquet",
        folder / "README.txt",
        folder / "latest.json",
    ]

    with open(folder / "000001.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [*DIMENSIONS, "value", "exact", "suppressed"]
    assert len(rows) == len(release.aggregates)
    published = {
        (r["year"], r["sex"], r["age_group"], r["form"]): r["value"]
        for r in rows
        if r["suppressed"] == "false"
    }
    assert published == {
        ("2020", "Feminine", "25-34", "ForcedLabour"): "12",
        ("2022", "Feminine", "25-34", "ForcedLabour"): "15",
        ("Total", "Total", "Total", "Total"): "27",
    }
    assert [r["value"] for r in rows if r["suppressed"] == "true"] == [""]
    assert {r["exact"] for r in rows if r["suppressed"] == "false"} == {"true"}

    doc = json.loads((folder / "000001.json").read_text())
    assert doc["signing_key_id"] == KEY.key_id and doc["signature"] == release.signature.hex()
    assert doc["format"] == 2 and doc["k"] == 10 and doc["metadata"]["form_rule"]
    assert doc["labels"]["form"] == {"ForcedLabour": "Forced labour"}
    assert doc["aggregates"] == [
        {"dimensions": list(a.dimensions), "key": list(a.key), "value": a.value, "exact": a.exact}
        for a in release.aggregates
    ]
    readme = (folder / "README.txt").read_text()
    assert "below 10 persons" in readme and release.caveat in readme
    assert "form: ForcedLabour = Forced labour" in readme
    # the JSON file holds everything needed to verify the release again
    again = release_from_json(doc)
    assert verify_release(sign_release(again, KEY), KEYS) == release
    latest = json.loads((folder / "latest.json").read_text())
    assert latest["sequence"] == 1 and latest["csv"] == "000001.csv"
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_altered_unsigned_and_foreign_releases_are_refused(log: EventLog, tmp_path: Path) -> None:
    raw = signed(make_release(1))
    good = verified(raw)
    index = next(i for i, a in enumerate(good.aggregates) if a.value == 12)
    altered = bytearray(raw)
    altered[count_byte(good, index)] ^= 0x02  # 12 -> 13: still valid Avro, not signed
    unsigned = dataclasses.replace(good, signing_key_id="", signature=b"").encoded()
    foreign = sign_release(dataclasses.replace(good, sequence=5), SigningKey.generate("mallory"))
    elsewhere = sign_release(dataclasses.replace(good, stream="other_stream"), KEY)
    publish(log, raw, bytes(altered), unsigned, foreign, elsewhere, b"not a release")

    out = tmp_path / "out"
    with subscriber(log, out) as sub:
        report = sub.run_once(timeout=5)
    assert report.received == 6
    assert [r.sequence for r in report.releases] == [1]
    reasons = dict(report.refused)
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert "altered or forged" in reasons[1]
    assert "unsigned" in reasons[2]
    assert "key this receiver does not trust" in reasons[3]
    assert "other_stream" in reasons[4]
    assert "not a release" in reasons[5]
    assert sorted(p.name for p in (out / STREAM).iterdir()) == [
        "000001.csv",
        "000001.json",
        "000001.metadata.json",
        "000001.parquet",
        "README.txt",
        "latest.json",
    ]
    # the tampered count is what breaks it: the same bytes with the count restored verify
    restored = bytearray(altered)
    restored[count_byte(good, index)] ^= 0x02
    assert verify_release(bytes(restored), KEYS) == good


def test_commits_after_writing_and_resumes(log: EventLog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    one, two = signed(make_release(1)), signed(make_release(2, (20, None), issued_at_ms=T0 + 1))
    publish(log, one)
    with subscriber(log, out) as sub:
        assert len(sub.run_once(timeout=5).releases) == 1
    publish(log, two)
    with subscriber(log, out) as sub:  # a new process of the same consumer: only the new one
        report = sub.run_once(timeout=5)
        assert [r.sequence for r in report.releases] == [2]
        assert sub.run_once(timeout=0.2).received == 0
    latest = json.loads((out / STREAM / "latest.json").read_text())
    assert latest["sequence"] == 2
    # another consumer reads its own subscription's topic, from the start, independently
    publish(log, one, two, consumer="statistics-office")
    with subscriber(log, tmp_path / "other", group="statistics-office") as sub:
        assert [r.sequence for r in sub.run_once(timeout=5).releases] == [1, 2]


def test_empty_or_missing_stream_returns_promptly(log: EventLog, tmp_path: Path) -> None:
    with subscriber(log, tmp_path / "out") as sub:
        report = sub.run_once(timeout=5)
    assert report.received == 0 and not report.written and not report.refused


def test_latest_only_moves_forward_on_redelivery(tmp_path: Path) -> None:
    one = verified(signed(make_release(1)))
    two = verified(signed(make_release(2)))
    writer = ReleaseWriter(tmp_path)
    assert [p.name for p in writer.write(one).paths] == [
        "000001.csv",
        "000001.json",
        "000001.metadata.json",
        "000001.parquet",
        "README.txt",
        "latest.json",
    ]
    writer.write(two)
    again = writer.write(one)  # redelivered: a duplicate, nothing rewritten, latest stays at 2
    assert again.duplicate and again.paths == []
    assert json.loads((tmp_path / STREAM / "latest.json").read_text())["sequence"] == 2
