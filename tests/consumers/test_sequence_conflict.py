"""One sequence, one release: a re-send of the same signed bytes is a silent duplicate; a different
release under a held sequence is refused, the held files stay as they were, the subscriber stops
without committing, and ``tiptrust subscribe`` exits 6. Real files, the real embedded SQLite log,
the real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.errors import ConsumerReason, ReleaseConflict
from consumers.writers import ReleaseWriter, signed_digest
from schemas.keys import SigningKey, public_pem
from schemas.release import Release, verify_release
from transport import EventLog

from .conftest import (
    KEY,
    STREAM,
    T0,
    make_release,
    publish,
    signed,
    snapshot,
    subscriber,
    verified,
)


def numbers_in(message: str, held: Path) -> set[str]:
    """The numbers in an error message, leaving out the held file's path and the digests."""
    rest = " ".join(message.split())  # undo any wrapping
    rest = rest.replace(str(held), "<held>").replace(held.name, "<held>")
    rest = re.sub(r"sha256 [0-9a-f]{16}", "<digest>", rest)
    return set(re.findall(r"\d+", rest))


# --- the digest the check relies on ---------------------------------------------------------------


def test_the_digest_is_that_of_the_published_bytes() -> None:
    raw = signed(make_release(1, metadata={"b": "2", "a": "1"}))
    assert signed_digest(verified(raw)) == hashlib.sha256(raw).hexdigest()
    # the same content signed again is the same bytes (Ed25519 is deterministic)...
    assert signed(make_release(1, metadata={"b": "2", "a": "1"})) == raw
    # ...but not under another key, nor with another issue time
    other_key = SigningKey.generate("trust")
    assert signed_digest(
        verify_release(signed(make_release(1), other_key), {other_key.key_id: other_key.public})
    ) != signed_digest(verified(signed(make_release(1))))
    assert signed(make_release(1, issued_at_ms=T0 + 1)) != signed(make_release(1))


# --- through the log ------------------------------------------------------------------------------


def test_identical_resend_is_accepted_silently(log: EventLog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    raw = signed(make_release(1))
    publish(log, raw)
    with subscriber(log, out) as sub:
        first = sub.run_once(timeout=5)
    assert [r.sequence for r in first.releases] == [1] and first.duplicates == []
    before = snapshot(out / STREAM)
    assert sorted(before) == [
        "000001.csv",
        "000001.json",
        "000001.metadata.json",
        "000001.parquet",
        "README.txt",
        "latest.json",
    ]

    publish(log, raw)  # the trust re-sends the bytes it recorded (e.g. after a crash)
    with subscriber(log, out) as sub:
        again = sub.run_once(timeout=5)
        assert again.received == 1 and again.duplicates == [1]
        assert again.releases == [] and again.written == [] and again.refused == []
        assert again.conflict is None
        assert sub.run_once(timeout=0.2).received == 0  # committed past it
    assert snapshot(out / STREAM) == before  # not even rewritten


def test_different_release_same_sequence_is_refused_and_stops(
    log: EventLog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    folder = out / STREAM
    publish(log, signed(make_release(1, (12, None))))
    with subscriber(log, out) as sub:
        assert len(sub.run_once(timeout=5).releases) == 1
    before = snapshot(folder)

    rival = signed(make_release(1, (20, None), issued_at_ms=T0 + 5))  # same stream+sequence
    later = signed(make_release(2, (13, None), issued_at_ms=T0 + 9))
    publish(log, rival, later)
    with subscriber(log, out) as sub:
        report = sub.run_once(timeout=5)
        conflict = report.conflict
        assert isinstance(conflict, ReleaseConflict)
        assert conflict.code is ConsumerReason.SEQUENCE_CONFLICT
        assert (conflict.stream, conflict.sequence) == (STREAM, 1)
        assert conflict.held == folder / "000001.json"
        assert conflict.new_digest == hashlib.sha256(rival).hexdigest()
        assert report.releases == [] and report.written == [] and report.duplicates == []
        # names stream and sequence; no count of either release
        assert "sequence_conflict" in conflict.message
        assert f"{STREAM!r} sequence 1," in conflict.message
        assert numbers_in(conflict.message, conflict.held) == {"1"}
        # the same subscriber stops at the same message again: nothing was skipped in memory
        assert sub.run_once(timeout=5).conflict is not None
    assert snapshot(folder) == before  # held files untouched, seq 2 not written

    # not committed: a new process of the consumer stops there too
    with subscriber(log, out) as sub:
        assert sub.run_once(timeout=5).conflict is not None

    # the operator accepts the trust's new release by moving the held files aside
    aside = tmp_path / "aside"
    aside.mkdir()
    for name in ("000001.json", "000001.csv", "000001.metadata.json", "000001.parquet"):
        (folder / name).rename(aside / name)
    with subscriber(log, out) as sub:
        resumed = sub.run_once(timeout=5)
    assert resumed.conflict is None and [r.sequence for r in resumed.releases] == [1, 2]
    assert json.loads((folder / "000001.json").read_text())["aggregates"][0]["value"] == 20
    assert json.loads((folder / "latest.json").read_text())["sequence"] == 2


def test_conflict_after_good_messages_commits_those(log: EventLog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    publish(log, signed(make_release(1)), signed(make_release(2)))
    publish(log, signed(make_release(2, (30, None))), signed(make_release(3)))
    with subscriber(log, out) as sub:
        report = sub.run_once(timeout=5)
    assert [r.sequence for r in report.releases] == [1, 2]
    assert report.conflict is not None and report.conflict.sequence == 2
    assert sorted(p.name for p in (out / STREAM).iterdir()) == [
        "000001.csv",
        "000001.json",
        "000001.metadata.json",
        "000001.parquet",
        "000002.csv",
        "000002.json",
        "000002.metadata.json",
        "000002.parquet",
        "README.txt",
        "latest.json",
    ]
    with subscriber(log, out) as sub:  # resumes at the conflicting message, not before it
        again = sub.run_once(timeout=5)
    assert again.received == 1 and again.releases == [] and again.conflict is not None


# --- the writer alone -----------------------------------------------------------------------------


def test_a_resend_completes_a_write_cut_short(tmp_path: Path) -> None:
    release = verified(signed(make_release(1)))
    writer = ReleaseWriter(tmp_path)
    writer.write(release)
    folder = tmp_path / STREAM
    csv_bytes = (folder / "000001.csv").read_bytes()
    json_before = snapshot(folder)["000001.json"]
    (folder / "000001.csv").unlink()  # as if we crashed right after the .json went in place
    (folder / "latest.json").unlink()
    again = writer.write(release)
    assert again.duplicate
    assert [p.name for p in again.paths] == ["000001.csv", "README.txt", "latest.json"]
    assert (folder / "000001.csv").read_bytes() == csv_bytes
    assert snapshot(folder)["000001.json"] == json_before


def test_an_unreadable_held_release_is_not_overwritten(tmp_path: Path) -> None:
    writer = ReleaseWriter(tmp_path)
    held = tmp_path / STREAM / "000001.json"
    held.parent.mkdir()
    held.write_text("{not json")
    with pytest.raises(ReleaseConflict) as caught:
        writer.write(verified(signed(make_release(1))))
    assert caught.value.code is ConsumerReason.HELD_UNREADABLE
    assert held.read_text() == "{not json"
    assert not (tmp_path / STREAM / "000001.csv").exists()


counts = st.lists(st.one_of(st.none(), st.integers(10, 10_000)), min_size=1, max_size=4)
releases = st.builds(
    lambda c, at, title, meta: make_release(
        7, tuple(c), issued_at_ms=at, title=title, metadata=meta
    ),
    counts,
    st.integers(T0, T0 + 10**9),
    st.sampled_from(["Detected victims", "Detected victims by sex"]),
    st.dictionaries(st.sampled_from(["a", "b", "period"]), st.text(max_size=5), max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=releases, second=releases)
def test_a_second_release_with_the_same_sequence_is_a_duplicate_or_refused(
    first: Release, second: Release
) -> None:
    """For any two signed releases with one sequence: the same bytes are a duplicate, different
    bytes are refused, and in both cases the held files do not change."""
    a, b = signed(first), signed(second)
    with tempfile.TemporaryDirectory() as d:
        writer = ReleaseWriter(Path(d))
        assert not writer.write(verified(a)).duplicate
        folder = Path(d) / STREAM
        before = snapshot(folder)
        if a == b:
            assert writer.write(verified(b)).duplicate
        else:
            with pytest.raises(ReleaseConflict) as caught:
                writer.write(verified(b))
            assert caught.value.code is ConsumerReason.SEQUENCE_CONFLICT
            assert caught.value.held_digest == hashlib.sha256(a).hexdigest()
        assert snapshot(folder) == before
        # a copy of the held release is a duplicate whatever came in between
        assert writer.write(verified(a)).duplicate


# --- the command ----------------------------------------------------------------------------------


def test_subscribe_command_exit_codes(log: EventLog, tmp_path: Path) -> None:
    key_file = tmp_path / "trust-release.pub.pem"
    key_file.write_bytes(public_pem(KEY.public.public))
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "400", "TIPTRUST_HOME": str(tmp_path / "home")}
    args = [
        sys.executable,
        "-m",
        "tiptrust",
        "subscribe",
        "--stream",
        STREAM,
        "--consumer",
        "ministry",
        "--out",
        str(out),
        "--trust-key",
        str(key_file),
        "--log",
        "sqlite:///" + str(tmp_path / "log.db"),
    ]

    def subscribe() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    raw = signed(make_release(1))
    publish(log, raw)
    first = subscribe()
    assert first.returncode == 0, first.stderr
    publish(log, raw)
    again = subscribe()
    assert again.returncode == 0, again.stderr
    assert "1 duplicate" in again.stdout and "duplicate: sequence 1" in again.stdout
    before = snapshot(out / STREAM)

    publish(log, signed(make_release(1, (99, None))))
    refused = subscribe()
    assert refused.returncode == 6  # Exit.REFUSED
    assert "sequence_conflict" in refused.stderr and f"'{STREAM}' sequence 1" in refused.stderr
    assert numbers_in(refused.stderr, out / STREAM / "000001.json") == {"1"}
    assert "stopped at a conflicting release" in refused.stdout
    assert snapshot(out / STREAM) == before
    assert subscribe().returncode == 6  # and again, until someone decides
