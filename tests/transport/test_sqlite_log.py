"""The conformance suite on the embedded SQLite log, plus what only a file can show."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.transport.conformance import EventLogConformance
from transport import DeliveryFailed, EventLog, open_log
from transport.sqlite import SqliteLog, decode_headers, encode_headers

REPO = Path(__file__).resolve().parents[2]


class TestSqliteLog(EventLogConformance):
    capabilities = frozenset({"multi_process_writers", "delete_records"})

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "logs" / "log.db"

    def make_log(self) -> EventLog:
        return open_log(f"sqlite:///{self.path}")

    def provoke_delivery_failure(self, value: bytes) -> None:
        # Another process holds the write lock longer than this log's busy timeout.
        with open_log(f"sqlite:///{self.path}", busy_timeout_ms=50) as log:
            log.create_topic("locked")
            blocker = sqlite3.connect(self.path, isolation_level=None)
            try:
                blocker.execute("BEGIN IMMEDIATE")
                log.append("locked", value)
                log.flush()
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()


def test_file_settings_are_durable_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(f"sqlite:///{path}") as log:
        log.append("t", b"x")
        log.flush()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"topics", "messages", "group_offsets"} <= tables
    finally:
        conn.close()


def test_append_writes_automatically_when_the_buffer_fills(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(url, buffer_limit=10) as writer, open_log(url) as reader:
        for i in range(25):
            writer.append("t", str(i).encode())
        assert len(reader.read_all("t")) == 20  # two automatic writes, five still buffered
        writer.flush()
        assert len(reader.read_all("t")) == 25


def test_failed_flush_drops_the_batch_and_the_log_stays_usable(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(f"sqlite:///{path}", busy_timeout_ms=50) as log:
        log.create_topic("t")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        for i in range(3):
            log.append("t", str(i).encode())
        with pytest.raises(DeliveryFailed) as info:
            log.flush()
        assert info.value.failed == 3
        assert info.value.code == "sqlite_write_failed"
        blocker.execute("ROLLBACK")
        blocker.close()
        log.flush()  # the failure was reported once
        log.append("t", b"again")
        log.flush()
        assert [r.value for r in log.read_all("t")] == [b"again"]


def test_headers_encoding_round_trips() -> None:
    headers = (("a", b""), ("a", b"\x00" * 3), ("\u00fc", b"x" * 70_000))
    assert decode_headers(encode_headers(headers)) == headers
    assert decode_headers(encode_headers(())) == ()


def test_headers_bytes_are_the_files_layout_for_one_header_and_several() -> None:
    """What a log file holds (a count, then each name and value with a 4-byte big-endian length):
    the same for a lone header (made from a prefix kept per name and value length) as ever."""
    eid = bytes(range(16))
    one = b"\x00\x00\x00\x01" + b"\x00\x00\x00\x08event_id" + b"\x00\x00\x00\x10" + eid
    for _ in range(2):  # the first makes the prefix, the second reuses it
        assert encode_headers((("event_id", eid),)) == one
    assert encode_headers((("event_id", b"short"),)) == one[:16] + b"\x00\x00\x00\x05short"
    assert encode_headers([("\u00fc", b"")]) == b"\x00\x00\x00\x01\x00\x00\x00\x02\xc3\xbc" + bytes(
        4
    )
    two = encode_headers((("a", b"1"), ("b", b"22")))
    assert (
        two
        == b"\x00\x00\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x011\x00\x00\x00\x01b\x00\x00\x00\x0222"
    )


# the tables as the log has created them since version 0.1 (SQLAlchemy's DDL for SQLite)
_LOG_DDL = """
CREATE TABLE topics (name VARCHAR NOT NULL, partitions INTEGER NOT NULL, PRIMARY KEY (name));
CREATE TABLE messages (
    topic VARCHAR NOT NULL, partition INTEGER NOT NULL, "offset" BIGINT NOT NULL, "key" BLOB,
    value BLOB NOT NULL, headers BLOB NOT NULL, ts BIGINT NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE partition_starts (
    topic VARCHAR NOT NULL, partition INTEGER NOT NULL, start_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE group_offsets (
    "group" VARCHAR NOT NULL, topic VARCHAR NOT NULL, partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL, PRIMARY KEY ("group", topic, partition)
);
"""


def test_a_log_file_written_before_opens_and_goes_on(tmp_path: Path) -> None:
    """A file made and written by the SQL of earlier versions (written out above): its records
    read back with their headers, a consumer gets them, new appends follow their offsets."""
    path = tmp_path / "old.db"
    eid = bytes(range(16))
    header = b"\x00\x00\x00\x01\x00\x00\x00\x08event_id\x00\x00\x00\x10" + eid
    with sqlite3.connect(path) as db:
        db.executescript(_LOG_DDL)
        db.execute("INSERT INTO topics VALUES ('t', 1)")
        db.executemany(
            "INSERT INTO messages VALUES ('t', 0, ?, ?, ?, ?, 1700000000000)",
            [(o, b"k", b"v%d" % o, header) for o in range(3)],
        )
    with open_log(f"sqlite:///{path}") as log:
        old = log.read_all("t")
        assert [(r.offset, r.value, r.headers) for r in old] == [
            (o, b"v%d" % o, (("event_id", eid),)) for o in range(3)
        ]
        log.append("t", b"new", key=b"k", headers=(("event_id", eid),))
        log.flush()
        consumer = log.consumer("g", ["t"])
        got = consumer.poll(10, timeout=0)
        assert [(r.offset, r.value) for r in got] == [
            (0, b"v0"),
            (1, b"v1"),
            (2, b"v2"),
            (3, b"new"),
        ]
        assert got[3].headers == (("event_id", eid),)
    with sqlite3.connect(path) as db:
        assert db.execute('SELECT headers FROM messages WHERE "offset" = 3').fetchone() == (header,)


def test_unkeyed_appends_spread_over_partitions(tmp_path: Path) -> None:
    with SqliteLog(f"sqlite:///{tmp_path / 'log.db'}") as log:
        log.create_topic("t", 3)
        for i in range(9):
            log.append("t", str(i).encode())
        log.flush()
        counts: dict[int, int] = defaultdict(int)
        for r in log.read_all("t"):
            counts[r.partition] += 1
        assert dict(counts) == {0: 3, 1: 3, 2: 3}


_WRITER = """
import sys
from transport import open_log
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open_log(url, buffer_limit=50) as log:
    for i in range(n):
        log.append("shared", f"{name}-{i}".encode(), key=f"{name}{i % 5}".encode())
        if i % 37 == 0:
            log.flush()
"""


def test_two_processes_append_concurrently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with open_log(url) as log:
        log.create_topic("shared", 3)
    n = 1500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, name, str(n)],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for name in ("alpha", "beta")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    with open_log(url) as log:
        records = log.read_all("shared")
    assert sorted(r.value for r in records) == sorted(
        f"{name}-{i}".encode() for name in ("alpha", "beta") for i in range(n)
    )
    by_partition: dict[int, list[int]] = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))  # unique and dense


def test_deleted_records_leave_no_byte_in_the_files(tmp_path: Path) -> None:
    """A deleted envelope cannot be read back from the database file or its WAL: the trust's
    key would otherwise still open it after an erasure."""
    path = tmp_path / "log.db"
    secret = b"SEALED-ENVELOPE-" * 8
    with open_log(f"sqlite:///{path}") as log:
        for i in range(50):
            log.append("tip.inbound.police", secret + str(i).encode())
        log.flush()
        log.delete_before("tip.inbound.police", 0, 50)
        assert log.read_all("tip.inbound.police") == []
        for f in tmp_path.glob("log.db*"):
            assert secret not in f.read_bytes(), f.name


def test_a_new_log_file_has_large_pages_and_an_older_file_keeps_its_own(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:  # a log file made before: 4 KiB pages
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE unrelated (x)")
    for path in (old, tmp_path / "new.db"):
        with open_log(f"sqlite:///{path}") as log:
            log.create_topic("t", 2)
            for i in range(40):
                log.append("t", bytes(3000) + str(i).encode(), key=str(i % 5).encode())
            log.flush()
            assert sorted(r.value[3000:] for r in log.read_all("t")) == sorted(
                str(i).encode() for i in range(40)
            )
    sizes = []
    for path in (old, tmp_path / "new.db"):
        with sqlite3.connect(path) as db:
            sizes.append(db.execute("PRAGMA page_size").fetchone()[0])
    assert sizes == [4096, 16384]


def test_append_takes_bytes_like_values_and_refuses_others(tmp_path: Path) -> None:
    with open_log(f"sqlite:///{tmp_path / 'log.db'}") as log:
        log.append(
            "t", bytearray(b"value"), key=memoryview(b"key"), headers=(("h", bytearray(b"x")),)
        )
        log.flush()
        (record,) = log.read_all("t")
        assert (record.value, record.key, record.headers) == (b"value", b"key", (("h", b"x"),))
        assert type(record.value) is bytes and type(record.key) is bytes
        for bad in ({"value": "text"}, {"key": "text"}, {"headers": (("h", "text"),)}):
            args: dict[str, object] = {"value": b"v", **bad}
            with pytest.raises(TypeError):
                log.append("t", **args)  # type: ignore[arg-type]
        log.flush()
        assert len(log.read_all("t")) == 1
