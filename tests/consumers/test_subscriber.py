"""End to end over a real SQLite log: the trust emits signed releases, a consumer verifies and
writes them; unsigned, altered, foreign-key and wrong-stream messages are refused, never written."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import transport
from consumers.subscriber import Subscriber
from consumers.writers import ReleaseWriter, release_from_json
from schemas.keys import SigningKey
from schemas.release import RELEASE_SCHEMA, Release, sign_release, verify_release
from transport import EventLog
from trust.release.aggregate import PersonFacts, aggregate
from trust.release.disclosure import DisclosurePolicy
from trust.release.publish import EmitResult, ReleaseEmitter, build_release
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM

SPEC = VICTIMS_BY_SEX_AGE_FORM
TOPIC = "tip.release.victims_by_sex_age_form"
T0 = 1_760_000_000_000
KEY = SigningKey.generate("trust")


def persons(n_fem: int = 12, n_masc: int = 3) -> list[PersonFacts]:
    fem = [PersonFacts(f"f{i}", "Feminine", 30, ("ForcedLabour",), 2022) for i in range(n_fem)]
    masc = [PersonFacts(f"m{i}", "Masculine", 15, ("ForcedBegging",), 2023) for i in range(n_masc)]
    return fem + masc


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with transport.open_log("sqlite:///" + str(tmp_path / "log.db")) as opened:
        yield opened


def emit(log: EventLog, people: list[PersonFacts], sequence: int, now_ms: int) -> EmitResult:
    result = ReleaseEmitter(log, KEY, SPEC).maybe_emit(
        DisclosurePolicy(SPEC.k).apply(aggregate(people, SPEC)),
        sources=["src-a", "src-b"],
        last_digest=None,
        last_issued_ms=None,
        now_ms=now_ms,
        sequence=sequence,
    )
    assert result is not None
    return result


def subscriber(log: EventLog, out: Path, group: str = "ministry") -> Subscriber:
    return Subscriber(log, SPEC.name, group, {KEY.key_id: KEY.public}, ReleaseWriter(out))


def count_byte(release: Release, index: int) -> int:
    """Offset of cell ``index``'s count in the encoded release (found by changing only it)."""
    a = RELEASE_SCHEMA.encode(release.to_avro())
    cells = list(release.cells)
    count = cells[index].count
    assert count is not None and count < 63  # one-byte zigzag varint either way
    cells[index] = dataclasses.replace(cells[index], count=count ^ 1)
    b = RELEASE_SCHEMA.encode(dataclasses.replace(release, cells=tuple(cells)).to_avro())
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    assert len(a) == len(b) and len(diffs) == 1
    return diffs[0]


def test_release_is_verified_and_written_as_csv_and_json(log: EventLog, tmp_path: Path) -> None:
    emitted = emit(log, persons(), 1, T0)
    out = tmp_path / "out"
    with subscriber(log, out) as sub:
        report = sub.run_once(timeout=5)
    assert report.received == 1 and not report.refused
    folder = out / SPEC.name
    assert set(report.written) == {
        folder / "000001.csv",
        folder / "000001.json",
        folder / "latest.json",
    }

    with open(folder / "000001.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [*SPEC.dimensions, "count", "suppressed"]
    assert len(rows) == len(emitted.release.cells)
    published = {
        (r["year"], r["sex"], r["age_group"], r["form"]): r["count"]
        for r in rows
        if r["suppressed"] == "false"
    }
    assert published == {("2022", "Feminine", "25-34", "ForcedLabour"): "12"}
    assert all(r["count"] == "" for r in rows if r["suppressed"] == "true")

    doc = json.loads((folder / "000001.json").read_text())
    assert (
        doc["signing_key_id"] == KEY.key_id and doc["signature"] == emitted.release.signature.hex()
    )
    assert doc["total_persons"] == 15 and doc["k"] == 10 and doc["metadata"]["form_rule"]
    assert doc["cells"] == [
        {"key": list(c.key), "count": c.count, "suppressed": c.suppressed}
        for c in emitted.release.cells
    ]
    # the JSON file holds everything needed to verify the release again
    again = release_from_json(doc)
    assert verify_release(sign_release(again, KEY), {KEY.key_id: KEY.public}) == emitted.release
    latest = json.loads((folder / "latest.json").read_text())
    assert latest["sequence"] == 1 and latest["csv"] == "000001.csv"
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_altered_unsigned_and_foreign_releases_are_refused(log: EventLog, tmp_path: Path) -> None:
    good = emit(log, persons(), 1, T0)
    index = next(i for i, c in enumerate(good.release.cells) if c.count == 12)
    altered = bytearray(good.raw_bytes)
    altered[count_byte(good.release, index)] ^= 0x02  # 12 -> 13: still valid Avro, not signed
    unsigned = RELEASE_SCHEMA.encode(
        dataclasses.replace(good.release, signing_key_id="", signature=b"").to_avro()
    )
    foreign = sign_release(
        dataclasses.replace(good.release, sequence=5), SigningKey.generate("mallory")
    )
    elsewhere = sign_release(dataclasses.replace(good.release, stream="other_stream"), KEY)
    for raw in (bytes(altered), unsigned, foreign, elsewhere, b"not a release"):
        log.append(TOPIC, raw)
    log.flush()

    out = tmp_path / "out"
    with subscriber(log, out) as sub:
        report = sub.run_once(timeout=5)
    assert report.received == 6
    assert [r.sequence for r in report.releases] == [1]
    reasons = dict(report.refused)
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert "altered or forged" in reasons[1]
    assert "unsigned" in reasons[2]
    assert "key this consumer does not trust" in reasons[3]
    assert "other_stream" in reasons[4]
    assert "not a release" in reasons[5]
    assert sorted(p.name for p in (out / SPEC.name).iterdir()) == [
        "000001.csv",
        "000001.json",
        "latest.json",
    ]
    # the tampered count is what breaks it: the same bytes with the count restored verify
    restored = bytearray(altered)
    restored[count_byte(good.release, index)] ^= 0x02
    assert verify_release(bytes(restored), {KEY.key_id: KEY.public}) == good.release


def test_commits_after_writing_and_resumes(log: EventLog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    emit(log, persons(), 1, T0)
    with subscriber(log, out) as sub:
        assert len(sub.run_once(timeout=5).releases) == 1
    emit(log, persons(n_fem=20), 2, T0 + 1000)
    with subscriber(log, out) as sub:  # a new process of the same consumer: only the new one
        report = sub.run_once(timeout=5)
        assert [r.sequence for r in report.releases] == [2]
        assert sub.run_once(timeout=0.2).received == 0
    latest = json.loads((out / SPEC.name / "latest.json").read_text())
    assert latest["sequence"] == 2
    # another consumer group reads the stream from the start, independently
    with subscriber(log, tmp_path / "other", group="statistics-office") as sub:
        assert [r.sequence for r in sub.run_once(timeout=5).releases] == [1, 2]


def test_empty_or_missing_stream_returns_promptly(log: EventLog, tmp_path: Path) -> None:
    with subscriber(log, tmp_path / "out") as sub:
        report = sub.run_once(timeout=5)
    assert report.received == 0 and not report.written and not report.refused


def test_latest_only_moves_forward_on_redelivery(tmp_path: Path) -> None:
    one = emit_offline(1)
    two = emit_offline(2)
    writer = ReleaseWriter(tmp_path)
    writer.write(one)
    writer.write(two)
    written = writer.write(one)  # redelivered: its files are rewritten, latest stays at 2
    assert [p.name for p in written] == ["000001.csv", "000001.json"]
    assert json.loads((tmp_path / SPEC.name / "latest.json").read_text())["sequence"] == 2


def emit_offline(sequence: int) -> Release:
    table = DisclosurePolicy(SPEC.k).apply(aggregate(persons(), SPEC))
    raw = sign_release(
        build_release(
            SPEC,
            table,
            sequence=sequence,
            sources=["a"],
            issued_at_ms=T0,
            release_id=f"r{sequence}",
        ),
        KEY,
    )
    return verify_release(raw, {KEY.key_id: KEY.public})
