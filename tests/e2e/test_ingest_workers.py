"""Ingest spread over two workers of one consumer group (`trust ingest`) on Tansu: each inbound
topic has 4 partitions, the workers share them, and one is killed (SIGKILL) mid-stream — the other
takes over its partitions. Every message is stored exactly once, at its position, and the store's
positions end at each partition's end; the figures equal a single worker's."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from infra.broker import TansuBroker
from transport import open_log, topics
from trust.ingest.worker import INGEST_CONSUMER
from trust.store.eventstore import open_store

from .conftest import CUSTODIAN_TOKEN, TIPTRUST, RunCli, last_json, publish_args
from .test_publish import SOURCES, _setup


def _partition_ends(url: str) -> dict[tuple[str, int], int]:
    """Each inbound partition's next offset, from the records themselves (never a watermark)."""
    ends: dict[tuple[str, int], int] = {}
    with open_log(url) as log:
        for topic in log.list_topics(topics.INBOUND_PREFIX):
            assert log.partitions(topic) == 4
            for r in log.read_all(topic):
                ends[(topic, r.partition)] = max(ends.get((topic, r.partition), 0), r.offset + 1)
    return ends


def _stored_positions(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            row = c.execute(
                "SELECT COALESCE(SUM(next_offset), 0) FROM positions WHERE consumer = ?",
                (INGEST_CONSUMER,),
            ).fetchone()
            return int(row[0])
    except sqlite3.Error:
        return 0


def _ingested(stderr: Path) -> int:
    """What a `trust ingest --follow` reported it stored, batch by batch."""
    text = stderr.read_text(errors="replace") if stderr.exists() else ""
    return sum(int(n) for n in re.findall(r"ingested (\d+):", text))


def _counts(store_url: str) -> dict[str, object]:
    store = open_store(store_url)
    try:
        return {
            "accepted": store.count_by_type().get("RecordAccepted", 0),
            "rejected": store.rejection_counts(),
        }
    finally:
        store.close()


@pytest.mark.kafka
def test_two_workers_share_the_partitions_and_one_takes_over_when_the_other_is_killed(
    cli: RunCli, tmp_path: Path, own_tansu: TansuBroker
) -> None:
    log_args = ["--log", own_tansu.url]
    sim = _setup(cli, tmp_path, persons=2000)
    for s in SOURCES:
        cli(*publish_args(sim, s, *log_args))
    ends = _partition_ends(own_tansu.url)
    total = sum(ends.values())
    assert len(ends) == 4 * len(SOURCES) and total > 1000

    db = tmp_path / "workers.db"
    url = f"sqlite:///{db}"
    env = {**os.environ, "TIPTRUST_HOME": str(tmp_path / "home"), "TIPTRUST_TOKEN": CUSTODIAN_TOKEN}
    args = [*TIPTRUST, "trust", "ingest", "--store", url, "--batch", "10", "--follow", "--json"]
    errs = [tmp_path / "a.err", tmp_path / "b.err"]
    procs = []
    for err in errs:
        with err.open("wb") as f:
            procs.append(
                subprocess.Popen(
                    [*args, *log_args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=f
                )
            )
    killed, survivor = procs
    try:
        # both hold partitions and have stored some of them: then one dies mid-stream
        deadline = time.monotonic() + 120
        while not all(_ingested(e) > 0 for e in errs) or _stored_positions(db) < total // 3:
            assert all(p.poll() is None for p in procs), errs[0].read_text() + errs[1].read_text()
            assert time.monotonic() < deadline, "the two workers never both ingested"
            time.sleep(0.01)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        killed_at = _stored_positions(db)
        assert 0 < killed_at < total, "the kill came after the end of the stream"
        by_killed = _ingested(errs[0])

        # the survivor takes over the dead worker's partitions once the group notices
        while _stored_positions(db) < total:
            assert survivor.poll() is None, errs[1].read_text()[-2000:]
            assert time.monotonic() < deadline, (_stored_positions(db), total)
            time.sleep(0.05)
        survivor.send_signal(signal.SIGTERM)
        out, _ = survivor.communicate(timeout=60)
        assert survivor.returncode == 0, errs[1].read_text()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    summary = last_json(out.decode())
    # each stored what the other did not (the killed one may have stored one batch unreported)
    assert total - 10 <= summary["messages"] + by_killed <= total
    assert summary["messages"] > 0 and by_killed > 0

    # every message stored exactly once, at its position; positions at each partition's end
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT COUNT(*), COUNT(DISTINCT topic || ':' || partition || ':' || offset) "
            "FROM stored_events WHERE topic IS NOT NULL"
        ).fetchone()
    assert rows == (total, total)
    store = open_store(url)
    try:
        assert store.positions(INGEST_CONSUMER) == ends
    finally:
        store.close()

    # the same figures as one worker alone (`trust run`), and no message refused as a duplicate
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    cli("trust", "run", "--store", ref_url, "--json", *log_args)
    assert _counts(url) == _counts(ref_url)
    assert "duplicate_event" not in _counts(url)["rejected"]  # type: ignore[operator]


def test_more_workers_need_a_kafka_log(cli: RunCli, tmp_path: Path) -> None:
    cli("keys", "trust-init")
    done = cli("trust", "ingest", "--log", f"sqlite:///{tmp_path / 'log.db'}", check=False)
    assert done.returncode == 2
    assert "single-writer mode" in done.stderr
