"""Ingest throughput on top of a large event store, with releases checked along the way. JSON out.

    .venv/bin/python benchmarks/scale.py [--sizes 10000,100000] [--batch 30000] [--repeat 3]
                                         [--log sqlite|kafka]

The trust's store is first filled with N accepted events through the real path (publish, then
ingest), one size after the other. At each N a further ``--batch`` events is published and the
store (and the SQLite log) snapshotted; every scenario then runs in a FRESH PROCESS on its own
copy of a snapshot (so peak RSS is the scenario's own, and no cache of one run helps another).
Runs go round-robin over sizes and scenarios, ``--repeat`` rounds, so a change in the machine's
load hits every size alike (on Kafka the log cannot be copied: each size is measured before the
store grows past it). Medians are reported, every run listed. Scenarios:

- ``no_release`` (the floor): the same runner with no release stage — what ingest costs at N;
- ``default_cadence``: ``build_trust_runner`` with its default ``release_every_s``;
- ``release_every_0.5s``: ``release_every_s=0.5``.

The batch is large enough (30,000 events: several seconds at a few thousand events/s) that the
default 5 s cadence makes checks DURING the run, not only the one once caught up.

Per run: ``events_per_s`` = batch / (wall time from the start of the run to the end of the step
that stored the last message, release checks made on the way included); ``events_per_s_to_caught_up``
also includes the final check made once caught up; ``events_per_cpu_s`` divides by the process's
CPU time instead (less sensitive to other load on the machine); ``release_checks`` counts and times
every ``release_once`` the runner made; ``peak_rss_mib`` is the child's ``VmHWM`` (whole process,
imports included).

``release_check`` times ``stage.release_once()`` directly at each N, in a fresh process: the first
call (``cold_s``), three more with nothing new (``idle_s``), and three each right after one ingest
step of up to 1,000 new events (``after_step_s`` — the check the runner makes in steady state).

``ratio_vs_smallest`` = median ``events_per_s`` at each N / at the smallest N, per scenario (and
``ratio_vs_smallest_cpu`` the same per CPU-second); the issue's target is >= 0.8 for 10^5 vs 10^4
with the default cadence and with 0.5 s.

``--rebuild-replicas K`` (``--repeat 0`` skips the ingest scenarios) adds ``rebuild``: the largest
snapshot, grown by appending K copies of its case and linkage events (``RecordAccepted``,
``RecordLinked``, ``LinkReviewOpened``; each copy with its own case, person, review and event
ids, the records' Avro bodies as they are), so the rebuild replays (K + 1) times the events with
the same mix without filling the store through the real path (at a few hundred events per
second with linkage, 10^6 would take hours). One ``tiptrust trust rebuild`` makes the
projections the grown store's; the next is timed in a fresh process: wall and CPU seconds
(``os.wait4``), peak RSS, events replayed and whether the projections came out identical.
``rebuild_phases`` then does the same again in a fresh process, phase by phase, with each
phase's CPU and wall seconds (digests before, replay, release counts, digests after).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import Progress, TaskID

from benchmarks.provenance import code_state, machine, peak_rss_mib
from benchmarks.publish import records
from benchmarks.subscribe import subscribe
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher
from producers.workflow import destination_of
from tiptrust import wiring
from tiptrust.home import Home
from tiptrust.runtime import tune_gc
from transport import EventLog, open_log
from trust.ingest.worker import IngestStats
from trust.runner import TrustRunner
from trust.stewardship.agreement import Agreement, ReleaseGrant
from trust.store.eventstore import EventStore, open_store

SOURCE = "police"
STREAM = "victims_by_sex_age_form"
SCENARIOS: dict[str, float | None] = {
    "no_release": None,
    "default_cadence": None,  # build_trust_runner's own default
    "release_every_0.5s": 0.5,
}
TARGET_RATIO = 0.8
BASE_RECORDS = 20_000


# --- the parts that know the trust's API (kept together so an older tree can be measured) -------


def setup_home(root: Path) -> Home:
    home = Home(root)
    wiring.trust_init(home)
    key = wiring.source_init(home, SOURCE)
    grant = ReleaseGrant("ministry", ("statistics",))
    agreement = Agreement(SOURCE, 1, dt.date(2000, 1, 1), None, ("$",), (grant,), 10)
    wiring.register_source(
        home, SOURCE, home.source_keys(SOURCE) / f"{key.key_id}.ed25519.pub.pem", agreement
    )
    return home


def subscribe_ministry(store: EventStore) -> None:
    subscribe(store, "ministry", STREAM, "statistics")


def make_publisher(home: Home, log: EventLog, outbox: Outbox, url: str) -> Publisher:
    return Publisher(
        log=log,
        source_key=wiring.source_signing_key(home, SOURCE),
        trust_key=wiring.active_trust_public(home),
        outbox=outbox,
        keyer=MessageKeyer.generate(),
        destination=destination_of(url),
        batch_size=1000,
    )


def make_runner(home: Home, log: EventLog, store: EventStore, scenario: str) -> TrustRunner:
    every = SCENARIOS[scenario]
    if every is None:
        runner = wiring.build_trust_runner(home, log, store)
    else:
        runner = wiring.build_trust_runner(home, log, store, release_every_s=every)
    if scenario == "no_release":
        runner.releases = []
    return runner


# --- children: one scenario run, or the release-check timings, in a fresh process --------------


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed_checks(runner: TrustRunner, times: list[tuple[float, float]]) -> None:
    """Record (start, seconds) of every release check the runner makes."""
    for stage in runner.releases:
        inner = stage.release_once

        def timed(inner: Callable[[], Any] = inner) -> Any:
            t = time.perf_counter()
            try:
                return inner()
            finally:
                times.append((t, time.perf_counter() - t))

        setattr(stage, "release_once", timed)  # noqa: B010 (instrumenting a bound method)


def child_ingest(
    home: Path, log_url: str, store_path: Path, scenario: str, batch: int
) -> dict[str, Any]:
    load = os.getloadavg()[0]
    rss_start = peak_rss_mib()
    with open_log(log_url) as log:
        store = open_store(f"sqlite:///{store_path}")
        runner = make_runner(Home(home), log, store, scenario)
        checks: list[tuple[float, float]] = []
        _timed_checks(runner, checks)
        last_stored = 0.0
        steps = 0

        def on_step(s: IngestStats) -> None:
            nonlocal last_stored, steps
            if s.messages:
                last_stored = time.perf_counter()
                steps += 1

        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        summary = runner.run(until_caught_up=True, on_step=on_step)
        t_end = time.perf_counter()
        cpu = _cpu_s() - cpu0
        runner.worker.close()
        store.close()
    accepted = summary.ingest.accepted
    assert accepted == batch, f"{scenario}: accepted {accepted} of {batch} ({summary.ingest})"
    mid = [d for t, d in checks if t < last_stored]
    return {
        "events_per_s": round(batch / (last_stored - t0), 1),
        "events_per_s_to_caught_up": round(batch / (t_end - t0), 1),
        "events_per_cpu_s": round(batch / cpu, 1),
        "ingest_steps": steps,
        "release_every_s": runner.release_every_s,
        "release_checks": {
            "before_last_event_stored": len(mid),
            "total": len(checks),
            "total_s": round(sum(d for _, d in checks), 3),
            "max_s": round(max((d for _, d in checks), default=0.0), 3),
        },
        "rss_at_start_mib": rss_start,
        "peak_rss_mib": peak_rss_mib(),
        "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def child_check(home: Path, log_url: str, store_path: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    with open_log(log_url) as log:
        store = open_store(f"sqlite:///{store_path}")
        runner = make_runner(Home(home), log, store, "default_cadence")
        stage = runner.releases[0]
        rss_before = peak_rss_mib()

        def once() -> float:
            t = time.perf_counter()
            stage.release_once()
            return time.perf_counter() - t

        cold = once()
        idle = [once() for _ in range(3)]
        after: list[float] = []
        for _ in range(3):
            for _ in range(50):  # a Kafka consumer's first polls may come back empty
                if runner.worker.step().messages:
                    break
            after.append(once())
        runner.worker.close()
        store.close()
    return {
        "cold_s": round(cold, 4),
        "idle_s": round(statistics.median(idle), 4),
        "after_step_s": round(statistics.median(after), 4),
        "after_step_runs_s": [round(a, 4) for a in after],
        "rss_before_checks_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


# --- rebuild at scale: the largest snapshot grown by copies of its events ---------------------

_REPLICATED = ("RecordAccepted", "RecordLinked", "LinkReviewOpened")


def replicate(src: Path, dst: Path, copies: int) -> int:
    """``dst``: ``src`` with ``copies`` copies of its case and linkage events appended (see the
    module note); returns the events it holds."""
    snapshot(src, dst)
    with sqlite3.connect(dst) as db:
        last = int(db.execute("SELECT max(seq) FROM stored_events").fetchone()[0])

        def renamed(*paths: str) -> str:
            return ", ".join(f"'{p}', json_extract(payload, '{p}') || :sfx" for p in paths)

        payload = (
            "CASE event_type "
            f"WHEN 'RecordAccepted' THEN json_set(payload, {renamed('$.case_id', '$.event_id')}) "
            "WHEN 'RecordLinked' THEN json_set(payload, "
            f"{renamed('$.victim.case_id', '$.person_id', '$.event_id')}) "
            "ELSE json_set(payload, "
            f"{renamed('$.victim.case_id', '$.person_id', '$.review_id', '$.event_id')}) END"
        )
        marks = ", ".join(f":t{i}" for i in range(len(_REPLICATED)))
        for k in range(1, copies + 1):
            db.execute(
                "INSERT INTO stored_events (seq, event_type, event_id, source_id, payload, body, "
                'body_schema, recorded_at_ms, topic, partition, "offset") '
                f"SELECT seq + :shift, event_type, event_id || :sfx, source_id, {payload}, body, "
                'body_schema, recorded_at_ms, topic, partition, "offset" FROM stored_events '
                f"WHERE seq <= :last AND event_type IN ({marks})",
                {"shift": k * last, "sfx": f"~{k}", "last": last}
                | {f"t{i}": t for i, t in enumerate(_REPLICATED)},
            )
            db.commit()
        total = int(db.execute("SELECT count(*) FROM stored_events").fetchone()[0])
    db.close()
    return total


def cli_rebuild(home: Path, store: Path) -> dict[str, Any]:
    """``tiptrust trust rebuild`` in a fresh process: its wall and CPU seconds and peak RSS
    (``os.wait4``: that process's own), and what it printed."""
    cmd = [sys.executable, "-m", "tiptrust", "trust", "rebuild", "--home", str(home)]
    cmd += ["--store", f"sqlite:///{store}"]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # its output is a few lines: the pipes hold it
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if code not in (0, 6):  # 6: the projections came out different (reported)
        raise RuntimeError(f"rebuild failed ({code}):\n{err[-4000:]}")
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "replayed": int(out.split()[1]) if out.startswith("replayed") else None,
        "identical": "identical" in out,
        "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def child_rebuild_phases(store_path: Path) -> dict[str, Any]:
    """What ``tiptrust trust rebuild`` does, phase by phase (as ``trust.runner.rebuild`` and the
    CLI command run them), each phase's CPU and wall seconds: the digests before, the replay of
    the ingest projections, the release counts rebuilt by following from position 0, the
    digests after."""
    from trust.follow import follow
    from trust.release.counts import ReleaseCounts
    from trust.release.streams import STREAMS
    from trust.store import digest

    # the tables a rebuild rewrites, as the CLI checks them (an older tree: every projection
    # and follower table), one phase after the other here; the CLI hashes the state before on
    # another thread while it replays
    digests = getattr(digest, "rebuilt_digests", digest.projection_digests)

    load = os.getloadavg()[0]
    store = open_store(f"sqlite:///{store_path}")
    phases: dict[str, dict[str, float]] = {}

    def timed(name: str, run: Callable[[], Any]) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        out = run()
        phases[name] = {
            "cpu_s": round(time.process_time() - cpu, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        }
        return out

    def counts() -> None:
        follower = ReleaseCounts(STREAMS)
        store.reset_follower(follower.name, follower.clear)
        follow(store, follower)

    before = timed("digests_before", lambda: digests(store.engine))
    replayed = timed("replay", store.rebuild_projections)
    timed("release_counts", counts)
    after = timed("digests_after", lambda: digests(store.engine))
    store.close()
    return {
        "events": replayed,
        "phases": phases,
        "us_per_event_cpu": {
            k: round(v["cpu_s"] / replayed * 1e6, 1) for k, v in phases.items() if replayed
        },
        "identical": not digest.differing(before, after),
        "peak_rss_mib": peak_rss_mib(),
        "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def rebuild_at_scale(tmp: Path, home: Path, snap: Snapshot, copies: int) -> dict[str, Any]:
    """The largest snapshot grown by ``copies`` (see the module note), rebuilt once to make its
    projections, then rebuilt again and timed."""
    grown = tmp / "rebuild-store.db"
    t = time.perf_counter()
    events = replicate(snap.store, grown, copies)
    made = time.perf_counter() - t
    first = cli_rebuild(home, grown)
    timed = cli_rebuild(home, grown)
    phases = run_child(["rebuild-phases", str(home), "-", str(grown)])
    size = grown.stat().st_size
    grown.unlink()
    return {
        "from_size": snap.size,
        "copies": copies,
        "events": events,
        "replicate_s": round(made, 1),
        "store_file_mib": round(size / 2**20, 1),
        "first_rebuild": first,
        "rebuild": {
            **timed,
            "events_per_cpu_s": round(events / timed["cpu_s"], 1) if timed["cpu_s"] else None,
            "events_per_s": round(events / timed["wall_s"], 1),
        },
        "rebuild_phases": phases,
    }


# --- the parent: fill the store size by size, snapshot, run the children ------------------------


def snapshot(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (the backup API, WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


@contextmanager
def the_log(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'log.db'}"
    else:
        from infra.broker import TansuBroker

        with TansuBroker() as broker:
            yield broker.url


def child(argv: list[str]) -> None:
    tune_gc()  # a child is a process entry point: tuned as the CLI's is
    kind, home, log_url, store, *rest = argv
    if kind == "ingest":
        out = child_ingest(Path(home), log_url, Path(store), rest[0], int(rest[1]))
    elif kind == "rebuild-phases":
        out = child_rebuild_phases(Path(store))
    else:
        out = child_check(Path(home), log_url, Path(store))
    print(json.dumps(out))


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(r[key] for r in runs)), 1)


@dataclass(frozen=True)
class Snapshot:
    """The trust's store at one size, with ``batch`` more events published and not ingested."""

    size: int
    store: Path
    log: Path | None  # a copy of the SQLite log at the same moment; None on Kafka (the live log)
    fill_s: float
    store_mib: float


class Bench:
    """Fills one store size after size through the real path, and runs the children."""

    def __init__(
        self, tmp: Path, log_url: str, batch: int, progress: Progress, task: TaskID
    ) -> None:
        self.tmp, self.log_url, self.batch = tmp, log_url, batch
        self.progress, self.task = progress, task
        self.home = setup_home(tmp / "home")
        self.published = 0
        self.base: list[dict[str, Any]] = []

    def messages(self, n: int) -> list[Outgoing]:
        """``n`` new case records (distinct case ids, contents cycling through the simulation)."""
        base = self.base
        out = [
            Outgoing("RecordUpsert", f"case:{i}", {**base[i % len(base)], "case_id": f"S-{i}"})
            for i in range(self.published, self.published + n)
        ]
        self.published += n
        return out

    def fill(self, sizes: list[int]) -> Iterator[Snapshot]:
        tmp, progress, task = self.tmp, self.progress, self.task
        base = records(min(sizes[-1] + self.batch * len(sizes), BASE_RECORDS), tmp)
        self.base = [
            {**r, "reporting_entity": {**r["reporting_entity"], "source_id": SOURCE}} for r in base
        ]
        with open_log(self.log_url) as log, Outbox(tmp / "outbox.db") as outbox:
            pub = make_publisher(self.home, log, outbox, self.log_url)
            store_path = tmp / "store.db"
            store = open_store(f"sqlite:///{store_path}")
            subscribe_ministry(store)
            filler = wiring.build_trust_runner(self.home, log, store, release_every_s=3600)
            stored = 0
            for n in sizes:
                if n < stored:
                    raise SystemExit(f"size {n:,}: the store already holds {stored:,} events")
                progress.update(task, description=f"filling the store to {n:,} events")
                t = time.perf_counter()
                pub.publish(self.messages(n - stored))
                summary = filler.run(until_caught_up=True)
                stored += summary.ingest.accepted
                assert stored == n, (stored, n, summary.ingest)
                fill_s = round(time.perf_counter() - t, 1)
                pub.publish(self.messages(self.batch))  # what each scenario ingests
                snap_store = tmp / f"snap-store-{n}.db"
                snapshot(store_path, snap_store)
                snap_log = None
                if self.log_url.startswith("sqlite:///"):
                    snap_log = tmp / f"snap-log-{n}.db"
                    snapshot(Path(self.log_url.removeprefix("sqlite:///")), snap_log)
                progress.advance(task)
                # leave the consumer group while the children read (Kafka would otherwise wait
                # for this idle member before giving them the partitions); reopened on next run
                filler.worker.close()
                yield Snapshot(
                    n, snap_store, snap_log, fill_s, round(snap_store.stat().st_size / 2**20, 1)
                )
                # the batch becomes part of the store before the next size
                progress.update(task, description=f"ingesting the batch at {n:,}")
                stored += filler.run(until_caught_up=True).ingest.accepted
            filler.worker.close()
            store.close()

    def measure(
        self, snaps: list[Snapshot], repeat: int
    ) -> dict[int, dict[str, list[dict[str, Any]]]]:
        """Every scenario on every snapshot, ``repeat`` rounds, each run in a fresh child."""
        kinds = [*SCENARIOS, "release_check"]
        out: dict[int, dict[str, list[dict[str, Any]]]] = {
            s.size: {k: [] for k in kinds} for s in snaps
        }
        for rep in range(repeat):
            for snap in snaps:
                for kind in kinds:
                    self.progress.update(
                        self.task, description=f"N={snap.size:,} {kind} {rep + 1}/{repeat}"
                    )
                    store = self.tmp / "run-store.db"
                    shutil.copyfile(snap.store, store)
                    log_url = self.log_url
                    if snap.log is not None:
                        shutil.copyfile(snap.log, self.tmp / "run-log.db")
                        log_url = f"sqlite:///{self.tmp / 'run-log.db'}"
                    common = [str(self.home.root), log_url, str(store)]
                    if kind == "release_check":
                        out[snap.size][kind].append(run_child(["check", *common]))
                    else:
                        out[snap.size][kind].append(
                            run_child(["ingest", *common, kind, str(self.batch)])
                        )
                    for p in self.tmp.glob("run-*"):
                        p.unlink()
                    self.progress.advance(self.task)
        return out


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for scenario in SCENARIOS:
        rs = runs[scenario]
        entry[scenario] = {
            "events_per_s": median_of(rs, "events_per_s"),
            "events_per_s_to_caught_up": median_of(rs, "events_per_s_to_caught_up"),
            "events_per_cpu_s": median_of(rs, "events_per_cpu_s"),
            "peak_rss_mib": median_of(rs, "peak_rss_mib"),
            "runs": rs,
        }
    checks = runs["release_check"]
    entry["release_check"] = {
        key: round(float(statistics.median(c[key] for c in checks)), 4)
        for key in ("cold_s", "idle_s", "after_step_s")
    }
    entry["release_check"]["peak_rss_mib"] = median_of(checks, "peak_rss_mib")
    entry["release_check"]["runs"] = checks
    return entry


def ratios(result: dict[str, Any], sizes: list[int]) -> None:
    """Each size's median rates against the smallest size's, and whether the target is met."""
    smallest = result["sizes"][str(sizes[0])]
    for name, key in (
        ("ratio_vs_smallest", "events_per_s"),
        ("ratio_vs_smallest_cpu", "events_per_cpu_s"),
    ):
        result[name] = {
            scenario: {
                n: round(e[scenario][key] / smallest[scenario][key], 3)
                for n, e in result["sizes"].items()
                if n != str(sizes[0])
            }
            for scenario in SCENARIOS
        }
    result["target_ratio_min"] = TARGET_RATIO
    result["meets_target"] = {
        scenario: all(r >= TARGET_RATIO for r in by_size.values())
        for scenario, by_size in result["ratio_vs_smallest"].items()
        if scenario != "no_release"
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--sizes", default="10000,100000", help="stored events, comma-separated")
    ap.add_argument("--batch", type=int, default=30_000, help="events ingested per measurement")
    ap.add_argument("--repeat", type=int, default=3, help="runs per scenario and size")
    ap.add_argument("--log", choices=("sqlite", "kafka"), default="sqlite")
    ap.add_argument(
        "--rebuild-replicas",
        type=int,
        default=0,
        help="time `trust rebuild` on the largest snapshot grown by this many copies of its events",
    )
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    console = Console(stderr=True)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "scale",
        "code": code_state(),
        "machine": machine(),
        "log": args.log,
        "store": "sqlite",
        "batch": args.batch,
        "repeat": args.repeat,
        "rss_method": "VmHWM (/proc/self/status) of a fresh child process per run",
        "sizes": {},
    }
    with (
        tempfile.TemporaryDirectory() as d,
        Progress(console=console, transient=True) as progress,
        the_log(args.log, Path(d)) as log_url,
    ):
        tmp = Path(d)
        per_size = 1 + args.repeat * (len(SCENARIOS) + 1)
        task = progress.add_task("scale benchmark", total=len(sizes) * per_size)
        bench = Bench(tmp, log_url, args.batch, progress, task)
        measured: dict[int, dict[str, list[dict[str, Any]]]] = {}
        snaps: list[Snapshot] = []
        for snap in bench.fill(sizes):
            snaps.append(snap)
            if args.log == "kafka":  # one live log: measure each size before the log moves on
                measured.update(bench.measure([snap], args.repeat))
        if args.log == "sqlite":  # each size has its own copy of the log: interleave the sizes
            measured.update(bench.measure(snaps, args.repeat))
        if args.rebuild_replicas:
            progress.update(task, description="rebuild at scale")
            result["rebuild"] = rebuild_at_scale(
                tmp, bench.home.root, snaps[-1], args.rebuild_replicas
            )
    for snap in snaps:
        result["sizes"][str(snap.size)] = {
            "fill_s": snap.fill_s,
            "store_file_mib": snap.store_mib,
            **(summarise(measured[snap.size]) if args.repeat else {}),
        }
    if args.repeat:
        ratios(result, sizes)
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
