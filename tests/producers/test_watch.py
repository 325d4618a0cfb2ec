"""The folder watcher: settled exports are published once and filed with a report, bad ones are
filed as failed with nothing sent, partial ones wait, and every state a kill can leave behind is
finished on the next look without resending.

Real parts only: the simulator's police export and mapping, sealing, a SQLite log and outbox.
The crash states are made the way a kill makes them (a file claimed and half published, a report
written before the moves, a batch the log stored but the outbox never marked).
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.mapping import Mapping
from producers.message_key import MessageKeyer
from producers.outbox import Outbox, OutboxEntry
from producers.publisher import Publisher
from producers.simulate import simulate
from producers.watch import (
    DONE,
    FAILED,
    PROCESSING,
    REPORT_SUFFIX,
    Cycle,
    Watcher,
    WatchError,
    free_name,
    is_candidate_name,
    reconcile_outbox,
)
from producers.workflow import SourceSetup, destination_of, publish_export, read_export
from schemas.envelope import open_event
from schemas.keys import Keyring, SigningKey, TrustKeyPair
from transport import open_log, topics


@dataclass(frozen=True)
class Sim:
    header: list[str]
    cases: list[list[dict[str, str]]]  # the export's rows, grouped by case
    mapping: Path
    identifying: set[str]  # names and document numbers as written in the export


@dataclass(frozen=True)
class World:
    sim: Sim
    setup: SourceSetup
    trust: TrustKeyPair
    log_url: str
    drop: Path

    def watcher(self, settle: float = 0.0) -> Watcher:
        return Watcher(self.setup, self.log_url, self.sim.mapping, self.drop, settle=settle)

    def on_log(self) -> list[tuple[str, str]]:
        """(case id, event id) of every record on police's inbound topic, opened by the trust."""
        ring = Keyring([self.trust], [self.setup.source_key.public])
        from schemas.codec import default_registry

        reg = default_registry()
        found = []
        with open_log(self.log_url) as log:
            if topics.inbound("police") not in log.list_topics():
                return []
            for r in log.read_all(topics.inbound("police")):
                opened = open_event(r.value, keyring=ring)
                datum = reg.decode_payload(
                    opened.header.kind, opened.header.schema_fingerprint, opened.payload
                )
                found.append((datum["case_id"], str(opened.header.event_id)))
        return found


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    out = tmp_path_factory.mktemp("sim")
    simulate(3, 200, out)
    mapping = out / "police" / "mapping.yaml"
    case_column = Mapping.load(mapping).case_column
    by_case: dict[str, list[dict[str, str]]] = {}
    with (out / "police" / "records.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        for row in reader:
            by_case.setdefault(row[case_column], []).append(row)
    identifying = {
        row[c]
        for rows in by_case.values()
        for row in rows
        for c in ("surname", "forename", "passport_no")
        if len(row[c]) >= 4
    }
    return Sim(header, list(by_case.values())[:30], mapping, identifying)


@pytest.fixture
def world(sim: Sim, tmp_path: Path) -> World:
    setup = SourceSetup(
        SigningKey.generate("police"),
        (trust := TrustKeyPair.generate()).public,
        MessageKeyer.generate(),
        tmp_path / "outbox.db",
    )
    drop = tmp_path / "drop"
    drop.mkdir()
    return World(sim, setup, trust, f"sqlite:///{tmp_path / 'log.db'}", drop)


def _write(path: Path, sim: Sim, cases: list[list[dict[str, str]]], *, old: bool = True) -> Path:
    """An export of these cases (every row of a case in one file), settled unless ``old`` is
    False (its modification time then is now)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=sim.header)
        w.writeheader()
        for rows in cases:
            w.writerows(rows)
    if old:
        past = time.time() - 3600
        os.utime(path, (past, past))
    return path


def _report(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.with_name(path.name + REPORT_SUFFIX).read_text())
    return data


def _assert_each_case_once(world: World, cases: list[list[dict[str, str]]]) -> None:
    on_log = world.on_log()
    per_case = Counter(case for case, _ in on_log)
    assert set(per_case) == {rows[0]["crime_ref"] for rows in cases}
    assert set(per_case.values()) == {1}  # one record per case, not one more
    assert len({e for _, e in on_log}) == len(on_log)


def test_landed_exports_are_published_once_and_filed_with_a_report(world: World) -> None:
    cases = world.sim.cases
    _write(world.drop / "a.csv", world.sim, cases[:10])
    _write(world.drop / "b.csv", world.sim, cases[10:20])
    rows = sum(len(c) for c in cases[:20])

    with world.watcher() as watcher:
        first = watcher.run_once()
        again = watcher.run_once()

    assert sorted(r.file for r in first.filed) == ["a.csv", "b.csv"]
    assert again.filed == [] and again.unsettled == 0
    assert sorted(p.name for p in world.drop.iterdir()) == [PROCESSING, DONE, FAILED]
    assert [p.name for p in (world.drop / PROCESSING).iterdir()] == [".lock"]
    a, b = _report(world.drop / DONE / "a.csv"), _report(world.drop / DONE / "b.csv")
    assert a["status"] == b["status"] == "published"
    assert a["events_sent"] == 10 and b["events_sent"] == 10
    assert a["rows_read"] + b["rows_read"] == rows  # type: ignore[operator]
    assert a["rows_published"] == a["rows_read"] and a["rows_withheld"] == 0
    _assert_each_case_once(world, cases[:20])


def test_the_same_name_again_is_filed_beside_and_sends_only_what_changed(world: World) -> None:
    cases = world.sim.cases
    _write(world.drop / "export.csv", world.sim, cases[:5])
    with world.watcher() as watcher:
        watcher.run_once()
        _write(world.drop / "export.csv", world.sim, cases[:8])  # last night's five, three new
        second = watcher.run_once()
    [report] = second.filed
    assert report.moved_to == f"{DONE}/export-2.csv"
    assert (report.events_sent, report.events_already_sent) == (3, 5)
    assert (world.drop / DONE / "export.csv").exists()
    assert (world.drop / DONE / ("export-2.csv" + REPORT_SUFFIX)).exists()
    _assert_each_case_once(world, cases[:8])


def test_a_file_the_mapping_cannot_read_goes_to_failed_and_nothing_is_sent(world: World) -> None:
    bad = _write(world.drop / "renamed_column.csv", world.sim, world.sim.cases[:5])
    text = bad.read_text().replace(",gender,", ",Gender,", 1)
    bad.write_text(text)
    os.utime(bad, (time.time() - 3600,) * 2)
    withheld = _write(world.drop / "bad_rows.csv", world.sim, world.sim.cases[5:7])
    withheld.write_text(withheld.read_text().replace(",MS-", ",NOT-A-CODE-", 2))
    os.utime(withheld, (time.time() - 3600,) * 2)

    with world.watcher() as watcher:
        cycle = watcher.run_once()

    assert {r.file: r.status for r in cycle.filed} == {
        "renamed_column.csv": "failed",
        "bad_rows.csv": "withheld",
    }
    report = _report(world.drop / FAILED / "renamed_column.csv")
    error = report["error"]
    assert isinstance(error, dict) and error["code"] == "bad_mapping"
    assert "'gender'" in error["message"] and "'Gender'" in error["message"]
    rows = _report(world.drop / FAILED / "bad_rows.csv")
    assert rows["rows_published"] == 0 and rows["rows_withheld"] == rows["rows_read"]
    reasons = rows["withheld_reasons"]
    assert isinstance(reasons, dict) and reasons["unknown_code"] == 2
    assert world.on_log() == []  # nothing of either file was sent
    for name in ("renamed_column.csv", "bad_rows.csv"):
        written = (world.drop / FAILED / (name + REPORT_SUFFIX)).read_text()
        assert not any(v in written for v in world.sim.identifying)


def test_hidden_partial_and_still_changing_files_are_not_taken(world: World) -> None:
    for name in ("export.csv.part", ".export.csv", "~$book.xlsx", "x.crdownload"):
        _write(world.drop / name, world.sim, world.sim.cases[:2])
    fresh = _write(world.drop / "fresh.csv", world.sim, world.sim.cases[:2], old=False)

    with world.watcher(settle=3600) as watcher:
        cycle = watcher.run_once()
        assert cycle.filed == [] and cycle.unsettled == 1
        assert fresh.exists() and world.on_log() == []
        fresh.write_text(fresh.read_text() + "")  # still being written: seen again, not taken
        assert watcher.run_once().filed == []
        os.utime(fresh, (time.time() - 7200,) * 2)  # done: unchanged for longer than settle
        assert [r.file for r in watcher.run_once().filed] == ["fresh.csv"]
    left = sorted(p.name for p in world.drop.iterdir() if p.is_file())
    assert left == [".export.csv", "export.csv.part", "x.crdownload", "~$book.xlsx"]


def test_a_file_claimed_and_half_sent_is_finished_without_resending(world: World) -> None:
    cases = world.sim.cases[:12]
    world.drop.joinpath(PROCESSING).mkdir()
    claimed = _write(world.drop / PROCESSING / "nightly.csv", world.sim, cases)
    # the killed run had sent the first half of the file's cases
    half = _write(world.drop.parent / "half.csv", world.sim, cases[:6])
    publish_export(world.setup, world.log_url, read_export("police", half, world.sim.mapping))

    with world.watcher() as watcher:
        [report] = watcher.run_once().filed

    assert not claimed.exists()
    assert report.recovered and report.status == "published"
    assert (report.events_sent, report.events_already_sent) == (6, 6)
    assert report.rows_published == sum(len(c) for c in cases)
    _assert_each_case_once(world, cases)


def test_a_report_written_before_the_kill_finishes_the_moves_only(world: World) -> None:
    processing = world.drop / PROCESSING
    processing.mkdir()
    # killed after the report was written: the file and its report are still in .processing/
    data = _write(processing / "one.csv", world.sim, world.sim.cases[:3])
    report = {"file": "one.csv", "source_id": "police", "status": "published"}
    one = {**report, "moved_to": "done/one.csv"}
    (processing / ("one.csv" + REPORT_SUFFIX)).write_text(json.dumps(one))
    # killed between the two moves: the file is filed, its report is not
    (world.drop / DONE).mkdir()
    _write(world.drop / DONE / "two.csv", world.sim, world.sim.cases[3:4])
    two = {**report, "file": "two.csv", "moved_to": "done/two.csv"}
    (processing / ("two.csv" + REPORT_SUFFIX)).write_text(json.dumps(two))

    with world.watcher() as watcher:
        filed = watcher.run_once().filed

    assert sorted(r.file for r in filed) == ["one.csv", "two.csv"]
    assert not data.exists()
    for name in ("one.csv", "two.csv"):
        assert (world.drop / DONE / name).exists()
        assert (world.drop / DONE / (name + REPORT_SUFFIX)).exists()
    assert world.on_log() == []  # what the report says was done is not done again


class _KilledBeforeMarking(Outbox):
    """An outbox whose process dies right after the log acknowledged, before noting it."""

    def mark_sent(self, destination: str, event_ids: Sequence[uuid.UUID]) -> None:
        raise KeyboardInterrupt


def test_a_batch_the_log_stored_but_the_outbox_never_marked_is_not_sent_again(
    world: World,
) -> None:
    cases = world.sim.cases[:4]
    (world.drop / PROCESSING).mkdir()
    path = _write(world.drop / PROCESSING / "x.csv", world.sim, cases)
    export = read_export("police", path, world.sim.mapping)
    destination = destination_of(world.log_url)
    with open_log(world.log_url) as log, _KilledBeforeMarking(world.setup.outbox_path) as outbox:
        publisher = Publisher(
            log=log,
            source_key=world.setup.source_key,
            trust_key=world.setup.trust_key,
            outbox=outbox,
            keyer=world.setup.keyer,
            destination=destination,
        )
        with pytest.raises(KeyboardInterrupt):
            publisher.publish(export.messages)
    assert len(world.on_log()) == 4
    with Outbox(world.setup.outbox_path) as outbox:
        assert outbox.counts(destination) == {"sent": 0, "pending": 4}

    with world.watcher() as watcher:
        [report] = watcher.run_once().filed

    assert (report.events_sent, report.events_resent_from_outbox) == (0, 0)
    assert report.events_already_sent == 4
    _assert_each_case_once(world, cases)
    with Outbox(world.setup.outbox_path) as outbox:
        assert outbox.counts(destination) == {"sent": 4, "pending": 0}


def test_an_envelope_sealed_again_is_not_taken_as_delivered(world: World) -> None:
    """A --resend killed before it reached the log (the same event id, sealed afresh) still
    waits: only an envelope the log holds byte for byte counts as delivered."""
    export = read_export(
        "police", _write(world.drop.parent / "r.csv", world.sim, world.sim.cases[:1]),
        world.sim.mapping,
    )  # fmt: skip
    publish_export(world.setup, world.log_url, export)
    destination = destination_of(world.log_url)
    with open_log(world.log_url) as log:
        [record] = log.read_all(topics.inbound("police"))
    event_id = uuid.UUID(bytes=dict(record.headers)["event_id"])
    with Outbox(world.setup.outbox_path) as outbox:
        resealed = OutboxEntry(event_id, record.topic, record.key, record.value + b"fresh")
        outbox.put(destination, [resealed])
    assert reconcile_outbox(world.setup, world.log_url) == 0
    with Outbox(world.setup.outbox_path) as outbox:
        assert outbox.counts(destination) == {"sent": 0, "pending": 1}


def test_one_watcher_per_folder_and_a_wrong_mapping_refuses_to_start(
    world: World, tmp_path: Path
) -> None:
    with world.watcher():
        with pytest.raises(WatchError) as busy:
            world.watcher().lock()
        assert busy.value.code == "busy"
    world.watcher().lock()  # released with the first
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(world.sim.mapping.read_text().replace("source_id: police", "source_id: ngo"))
    with pytest.raises(WatchError) as bad:
        Watcher(world.setup, world.log_url, wrong, world.drop)
    assert bad.value.code == "bad_mapping"


def test_run_looks_until_stopped(world: World) -> None:
    _write(world.drop / "a.csv", world.sim, world.sim.cases[:2])
    stop = threading.Event()
    cycles = []

    def seen(cycle: Cycle) -> None:
        cycles.append(cycle)
        stop.set()  # as SIGTERM's handler does

    with world.watcher() as watcher:
        watcher.run(stop, interval=3600, on_cycle=seen)
    assert [[r.file for r in c.filed] for c in cycles] == [["a.csv"]]


_NAME = st.text(st.characters(exclude_characters="/\\x00"), min_size=1, max_size=20)


@given(_NAME)
def test_hidden_and_partial_names_are_never_candidates(name: str) -> None:
    for ignored in ("." + name, "~" + name, "~$" + name, name + ".part", name + ".PART"):
        assert not is_candidate_name(ignored)
    assert not is_candidate_name(name + ".tmp") and not is_candidate_name(name + REPORT_SUFFIX)


@given(st.sampled_from(["export.csv", "records", "a.b.xlsx"]), st.integers(0, 4))
def test_a_filed_name_is_never_reused(name: str, before: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        names = set()
        for _ in range(before + 1):
            free = free_name(folder, name)
            assert free not in names
            names.add(free)
            (folder / free).touch()
