"""Throughput of both paths against their floors, end to end, and as the store grows. One JSON.

    .venv/bin/python benchmarks/throughput.py [--events 20000] [--rounds 30]
        [--sizes 10000,100000] [--million] [--kafka] [--skip part,...]
        [--workers 1,2] [--worker-events 40000] [--worker-rounds 3]

Parts (``--skip`` takes their names):

- ``floors``: what each path cannot avoid, measured here on primitives, per event —
  ``publish``: Avro encode of the record and its header, AES-256-GCM seal, Merkle leaf and tree,
  envelope encode, plus one HPKE seal and one Ed25519 signature per batch; ``ingest``: envelope
  decode (the header's bytes sliced, not re-encoded), Merkle inclusion proof, AES-256-GCM open,
  payload Avro decode (the reader generated from the schema, as ingest's), and per victim with
  identifiers one person key id (HMAC-SHA256) and one identifiers seal (JSON + AES-256-GCM),
  plus one signature check and one HPKE open per batch.
  Beside them the two floors ``pipeline.py`` has always reported (same names).
- ``publish``: the producer on a SQLite log (validate, minimise, encode, seal, outbox, append,
  flush), events/s and per CPU-second, and its ratio to the publish floor.
- ``ingest``: the trust's ingest worker alone (poll, verify, open, decode, validate, minimise,
  dedupe, seal identifiers, store with positions and projections) on the events just published,
  in a fresh process: events/s, per CPU-second (``per core``: ingest is one thread) and its ratio to
  the ingest floor — the issue's target is >= 0.5, its goal 0.65.
- ``pipeline_sqlite`` (``pipeline_kafka`` with ``--kafka``, on a Tansu broker): ``pipeline.py``'s
  end to end (publish, then ingest with linkage and one release) and the release latency over
  ``--rounds``.
- ``scale``: a store filled through the real path (publish, then the trust with linkage, no
  release until caught up) to each of ``--sizes`` (``--million`` adds 10^6); at each size, in
  fresh processes: ingest of its last 5,000 events by the worker alone (events/s, per CPU-second,
  peak RSS), the release check (the first ``release_once`` of a process, then one with nothing
  new), the rebuild through the CLI (``tiptrust trust rebuild``: seconds and peak RSS), and the
  bytes per stored event (the ``stored_events`` row of an accepted record — its ``payload`` and
  ``body``, and every column of it — a ``RecordLinked`` row, and the whole store file per event)
  beside the mean Avro payload.

- ``workers_kafka`` (only with ``--workers``, e.g. ``1,2``): scale-out of ingest on a Tansu broker.
  For each count, a fresh broker and trust: ``--worker-events`` published to the source's inbound
  topic (4 partitions), then that many ingest workers started together, each in its own process
  and a member of the consumer group ``trust-ingest`` (appends serialised by the store's
  single-writer lock; one SQLite store file), until the store's positions reach the end of every
  partition. ``events_per_s`` runs from the moment the workers are told to start (group join
  included) to the last one done; ``events_per_s_from_first_batch`` from the first stored batch;
  ``events_per_cpu_s`` over the workers' CPU time summed. The counts alternate in each of
  ``--worker-rounds`` rounds; medians, and every run beside them (with the machine's load before
  it). ``ratio`` is each count's median events/s over the first count's — the issue's target for
  two workers against one is >= 1.5. The machine's cores are shared with the broker (and with
  whatever else runs on it: read ``loadavg_1m_before``). Per worker, ``append_lock_held_s`` is
  the wall time it held the store's append lock, ``append_lock_cpu_s`` its appending thread's
  CPU time meanwhile (the rest: its commit's fsync, and waiting for a core), and
  ``append_lock_wait_s`` the time it queued for the lock; ``serial_fraction`` is the held time
  summed over the workers, over the run's time from its first stored batch.

Every figure is read beside its floor from the same run; compare two versions back to back on
the same machine (each from its own ``git worktree`` with ``PYTHONPATH`` set to it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import io
import json
import os
import pickle
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastavro
import orjson
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.pipeline import floors as pipeline_floors
from benchmarks.pipeline import run_backend
from benchmarks.pipeline import setup as setup_home
from benchmarks.provenance import code_state, machine, peak_rss_mib
from benchmarks.publish import records
from benchmarks.row_bytes import measure as row_bytes
from benchmarks.subscribe import subscribe as subscribe_approved
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher
from producers.workflow import destination_of
from schemas.codec import default_registry
from schemas.envelope import (
    ENVELOPE_SCHEMA,
    EventHeader,
    encode_header,
    merkle_root_from_proof,
    merkle_tree,
    new_event_id,
)
from schemas.fastdecode import for_schema
from schemas.keys import SigningKey, TrustKeyPair
from tiptrust import wiring
from tiptrust.home import Home
from tiptrust.runtime import tune_gc
from transport import open_log

SOURCE = "police"
BATCH = 1000  # the producer's batch and the trust's poll, as wired
SCALE_MEASURE = 5_000  # the last events ingested to reach each size: ingest measured there
CHUNK = 10_000  # publish in chunks: the producer never holds more than this many records
TARGET_INGEST_RATIO = 0.5
GOAL_INGEST_RATIO = 0.65
PARTS = ("floors", "publish", "ingest", "pipeline", "scale", "workers")
TARGET_TWO_WORKERS = 1.5  # two ingest workers against one, on Kafka


# --- floors -------------------------------------------------------------------------------------

_ENV_REST = fastavro.parse_schema(
    {
        "type": "record",
        "name": "EnvelopeAfterHeader",
        "namespace": "bench",
        "fields": [
            {
                "name": "batch",
                "type": {
                    "type": "record",
                    "name": "Seal",
                    "fields": [
                        {"name": "batch_id", "type": {"type": "fixed", "name": "U", "size": 16}},
                        {"name": "size", "type": "int"},
                        {"name": "encapsulated_key", "type": "bytes"},
                        {"name": "root", "type": {"type": "fixed", "name": "S", "size": 32}},
                        {"name": "signature", "type": "bytes"},
                    ],
                },
            },
            {"name": "index", "type": "int"},
            {"name": "proof", "type": {"type": "array", "items": "S"}},
            {"name": "ciphertext", "type": "bytes"},
        ],
    }
)
_HEADER_SCHEMA = fastavro.parse_schema(
    {**ENVELOPE_SCHEMA.source["fields"][1]["type"], "namespace": "org.tiptrust.wire"}
)


def _varint_end(raw: bytes) -> int:
    i = 0
    while raw[i] & 0x80:
        i += 1
    return i + 1


def _time_per_event(n: int, fn: Callable[[], None]) -> float:
    """CPU seconds per event of ``fn`` (the process's, so other load on the machine is left out,
    as in the per-CPU-second figures it is compared with)."""
    t = time.process_time()
    fn()
    return (time.process_time() - t) / n


def floor_per_batch_s() -> dict[str, float]:
    """One HPKE seal + Ed25519 signature (producer) and one verify + HPKE open (trust)."""
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    tk, sk = TrustKeyPair.generate(), SigningKey.generate(SOURCE)
    n = 300
    seal = open_ = 0.0
    for _ in range(n):
        dek = os.urandom(32)
        t = time.process_time()
        ct = suite.encrypt(dek, tk.private.public_key(), info=b"info")
        sig = sk.sign(ct)
        t2 = time.process_time()
        sk.public.public.verify(sig, ct)
        suite.decrypt(ct, tk.private, info=b"info")
        t3 = time.process_time()
        seal += t2 - t
        open_ += t3 - t2
    return {"publish": seal / n, "ingest": open_ / n}


def floors(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-event floors of the producer's and the trust's paths (see the module docstring)."""
    schema = default_registry().current("case_record")
    fingerprint = schema.fingerprint
    per_batch = floor_per_batch_s()
    dek = AESGCM(os.urandom(32))
    headers = [
        EventHeader(SOURCE, new_event_id(), "RecordUpsert", fingerprint, 0, "t" * 16, "s" * 16)
        for _ in recs
    ]
    payloads: list[bytes] = []
    envelopes: list[bytes] = []
    seal = {
        "batch_id": uuid.uuid4().bytes,
        "size": 0,
        "encapsulated_key": os.urandom(48),
        "root": b"",
        "signature": os.urandom(64),
    }

    def publish() -> None:
        for start in range(0, len(recs), BATCH):
            part = range(start, min(start + BATCH, len(recs)))
            hb = [encode_header(headers[i]) for i in part]
            pl = [schema.encode(recs[i]) for i in part]
            cts = [
                dek.encrypt(_nonce(j), p, h) for j, (p, h) in enumerate(zip(pl, hb, strict=True))
            ]
            leaves = [
                hashlib.sha256(b"\x00" + h + c).digest() for h, c in zip(hb, cts, strict=True)
            ]
            root, proofs = merkle_tree(leaves)
            s = {**seal, "size": len(leaves), "root": root}
            for j, i in enumerate(part):
                buf = io.BytesIO()
                fastavro.schemaless_writer(
                    buf,
                    ENVELOPE_SCHEMA.parsed,
                    {
                        "version": 1,
                        "header": headers[i].to_avro(),
                        "batch": s,
                        "index": j,
                        "proof": proofs[j],
                        "ciphertext": cts[j],
                    },
                )
                envelopes.append(buf.getvalue())
                payloads.append(pl[j])

    publish_s = _time_per_event(len(recs), publish) + per_batch["publish"] / BATCH
    id_key = os.urandom(32)
    person = AESGCM(os.urandom(32))
    decode_payload = for_schema(schema)  # the generated reader, as ingest's (fastavro's values)

    def ingest() -> None:
        for raw in envelopes:
            cut = _varint_end(raw)
            buf = io.BytesIO(raw)
            buf.seek(cut)
            fastavro.schemaless_reader(buf, _HEADER_SCHEMA, None)
            header_bytes = raw[cut : buf.tell()]
            env: dict[str, Any] = fastavro.schemaless_reader(buf, _ENV_REST, None)  # type: ignore[assignment]
            leaf = hashlib.sha256(b"\x00" + header_bytes + env["ciphertext"]).digest()
            if (
                merkle_root_from_proof(leaf, env["index"], env["batch"]["size"], env["proof"])
                != (env["batch"]["root"])
            ):
                raise AssertionError("floor: proof does not verify")
            payload = dek.decrypt(_nonce(env["index"]), env["ciphertext"], header_bytes)
            datum = decode_payload(payload)
            for v in datum["victims"]:
                if v.get("identifiers") is not None:
                    message = b"".join(
                        len(b).to_bytes(4, "big") + b
                        for b in (
                            SOURCE.encode(),
                            datum["case_id"].encode(),
                            v["victim_id"].encode(),
                        )
                    )
                    hmac.digest(id_key, message, "sha256")
                    nonce = os.urandom(12)
                    person.encrypt(nonce, orjson.dumps(v["identifiers"]), message)

    ingest_s = _time_per_event(len(envelopes), ingest) + per_batch["ingest"] / BATCH
    victims = sum(len(r["victims"]) for r in recs) / len(recs)
    return {
        "publish_events_per_s": round(1 / publish_s, 1),
        "publish_us_per_event": round(publish_s * 1e6, 2),
        "ingest_events_per_s": round(1 / ingest_s, 1),
        "ingest_us_per_event": round(ingest_s * 1e6, 2),
        "victims_per_record": round(victims, 2),
        "mean_payload_bytes": round(statistics.fmean(map(len, payloads)), 1),
        **pipeline_floors(recs),
    }


def median_floors(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure of several runs of :func:`floors` as its median, with the range of the two
    floors the ratios divide by (one run on a busy machine swings by half)."""
    out: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]
    }
    out["runs"] = len(runs)
    for key in ("publish_events_per_s", "ingest_events_per_s"):
        out[f"{key}_range"] = [min(r[key] for r in runs), max(r[key] for r in runs)]
    return out


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + index.to_bytes(8, "big")


# --- publishing and ingesting (children) --------------------------------------------------------


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _messages(base: list[dict[str, Any]], start: int, n: int) -> Iterator[Outgoing]:
    for i in range(start, start + n):
        yield Outgoing("RecordUpsert", f"case:{i}", {**base[i % len(base)], "case_id": f"T-{i}"})


def child_publish(home: Path, log_url: str, base_path: Path, start: int, n: int) -> dict[str, Any]:
    base = pickle.loads(base_path.read_bytes())
    h = Home(home)
    published = 0
    with open_log(log_url) as log, Outbox(home / "outbox.db") as outbox:
        pub = Publisher(
            log=log,
            source_key=wiring.source_signing_key(h, SOURCE),
            trust_key=wiring.active_trust_public(h),
            outbox=outbox,
            keyer=MessageKeyer.generate(),
            destination=destination_of(log_url),
            batch_size=BATCH,
        )
        rss = peak_rss_mib()
        wall = cpu = 0.0
        for at in range(start, start + n, CHUNK):
            # the agency's messages are made before the clock starts: publish is what is timed
            messages = list(_messages(base, at, min(CHUNK, start + n - at)))
            cpu0, t0 = _cpu_s(), time.perf_counter()
            report = pub.publish(messages)
            wall, cpu = wall + time.perf_counter() - t0, cpu + _cpu_s() - cpu0
            published += report.published
    assert published == n, (published, n)
    return {
        "events": n,
        "events_per_s": round(n / wall, 1),
        "events_per_cpu_s": round(n / cpu, 1),
        "rss_at_start_mib": rss,
        "peak_rss_mib": peak_rss_mib(),
    }


def child_ingest(home: Path, log_url: str, store_url: str, follow: bool) -> dict[str, Any]:
    """The ingest worker alone until caught up (then, with ``follow``, the runner's followers —
    linkage, erasure, receipts — once, untimed in the ingest figures)."""
    from trust.store.eventstore import open_store

    with open_log(log_url) as log:
        store = open_store(store_url)
        runner = wiring.build_trust_runner(Home(home), log, store, release_every_s=3600)
        worker = runner.worker
        worker.start()
        rss = peak_rss_mib()
        accepted = messages = 0
        cpu0, t0 = _cpu_s(), time.perf_counter()
        while True:
            s = worker.step()
            accepted += s.accepted
            messages += s.messages
            if s.messages == 0 and s.caught_up:
                break
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        out: dict[str, Any] = {
            "events": accepted,
            "messages": messages,
            "events_per_s": round(accepted / wall, 1),
            "events_per_cpu_s": round(accepted / cpu, 1),
            "rss_at_start_mib": rss,
            "peak_rss_mib": peak_rss_mib(),
        }
        if follow:
            t = time.perf_counter()
            runner.follow()
            out["followers_s"] = round(time.perf_counter() - t, 2)
        worker.close()
        store.close()
    return out


def child_member(home: Path, log_url: str, store_url: str, go: Path, total: int) -> dict[str, Any]:
    """One ingest worker of the group: built, then waits for ``go`` (so every member joins the
    group at once), then ingests until the store's positions cover ``total`` messages."""
    from trust.ingest.worker import INGEST_CONSUMER
    from trust.store.eventstore import open_store

    with open_log(log_url) as log:
        store = open_store(store_url)
        runner = wiring.build_trust_runner(
            Home(home), log, store, release_every_s=3600, retention_every_s=None
        )
        worker = runner.worker
        lock = _time_append_lock(store)
        print("ready", file=sys.stderr, flush=True)
        while not go.exists():
            time.sleep(0.002)
        accepted = messages = skipped = 0
        first: float | None = None
        cpu0 = _cpu_s()
        worker.start()
        while True:
            s = worker.step()
            if s.messages and first is None:
                first = time.time()
            accepted += s.accepted
            messages += s.messages
            skipped += s.skipped
            if s.messages == 0 and sum(store.positions(INGEST_CONSUMER).values()) >= total:
                break
        end, cpu = time.time(), _cpu_s() - cpu0
        worker.close()
        store.close()
    return {
        "accepted": accepted,
        "messages": messages,
        "skipped": skipped,
        "first_batch_at": first,
        "done_at": end,
        "cpu_s": round(cpu, 2),
        "append_lock_held_s": round(lock["held"], 2),
        "append_lock_wait_s": round(lock["wait"], 2),
        "append_lock_cpu_s": round(lock["cpu"], 2),
    }


def _time_append_lock(store: Any) -> dict[str, float]:
    """Seconds this process held the store's append lock (the serial part of ingest: from the
    file lock to the commit), the appending thread's CPU seconds while it held it, and the seconds
    it waited for it — measured around the SQLite store's append queue
    (``trust.store.eventstore``), a benchmark-only wrapper."""
    times = {"held": 0.0, "wait": 0.0, "cpu": 0.0}
    queue = store._queue
    if queue is None:
        return times
    held = queue.held

    @contextlib.contextmanager
    def timed() -> Iterator[None]:
        t0 = time.perf_counter()
        with held():
            t1, c1 = time.perf_counter(), time.thread_time()
            times["wait"] += t1 - t0
            try:
                yield
            finally:
                times["held"] += time.perf_counter() - t1
                times["cpu"] += time.thread_time() - c1

    setattr(queue, "held", timed)  # noqa: B010 (an instance attribute over the method)
    return times


def child_release_check(home: Path, log_url: str, store_url: str) -> dict[str, Any]:
    from trust.store.eventstore import open_store

    with open_log(log_url) as log:
        store = open_store(store_url)
        runner = wiring.build_trust_runner(Home(home), log, store, release_every_s=3600)
        stage = runner.releases[0]
        t = time.perf_counter()
        stage.release_once()
        cold = time.perf_counter() - t
        t = time.perf_counter()
        stage.release_once()
        idle = time.perf_counter() - t
        runner.worker.close()
        store.close()
    return {"cold_s": round(cold, 3), "idle_s": round(idle, 4), "peak_rss_mib": peak_rss_mib()}


def run_child(args: list[str]) -> dict[str, Any]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    print(f"  {args[0]}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def run_members(args: list[list[str]], go: Path) -> tuple[float, list[dict[str, Any]]]:
    """Start one child per ``args``, wait until each is ready, then create ``go``; returns when
    ``go`` was created and what each child reported."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", *a],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in args
    ]
    for p in procs:
        assert p.stderr is not None
        line = p.stderr.readline()
        if line.strip() != "ready":
            p.wait()
            raise RuntimeError(f"a member did not start:\n{line}{p.stderr.read()[-4000:]}")
    go_at = time.time()
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a member failed ({p.returncode}):\n{stderr[-4000:]}")
        out.append(json.loads(stdout))
    return go_at, out


def cli_rebuild(home: Path, store_url: str) -> dict[str, Any]:
    """``tiptrust trust rebuild`` in a subprocess: wall seconds and the child's peak RSS."""
    cmd = [sys.executable, "-m", "tiptrust", "trust", "rebuild", "--home", str(home)]
    cmd += ["--store", store_url]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = (
        proc.stdout.read() if proc.stdout else b"",
        proc.stderr.read() if proc.stderr else b"",
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rebuild failed ({proc.returncode}):\n{err.decode()[-4000:]}")
    return {
        "seconds": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "identical": b"identical" in out,
    }


def stored_bytes(store_path: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(store_path)) as db:
        n, row = db.execute(
            "SELECT count(*), avg(length(CAST(payload AS BLOB)) + coalesce(length(body), 0)) "
            "FROM stored_events WHERE event_type = 'RecordAccepted'"
        ).fetchone()
        total = db.execute("SELECT count(*) FROM stored_events").fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    by_type = row_bytes(store_path)  # every column of the row, per event type
    return {
        "accepted_records": n,
        "stored_events": total,
        "record_row_bytes": round(row or 0.0, 1),
        "record_full_row_bytes": by_type.get("RecordAccepted", {}).get("full_row_bytes", 0.0),
        "linked_row_bytes": by_type.get("RecordLinked", {}).get("full_row_bytes", 0.0),
        "store_file_bytes_per_event": round(store_path.stat().st_size / max(total, 1), 1),
    }


# --- the parent ---------------------------------------------------------------------------------


class Trust:
    """One trust home, one SQLite log and store, filled through the real path by children."""

    def __init__(self, root: Path, base: list[dict[str, Any]], log_url: str = "") -> None:
        self.root = root
        self.home = setup_home(root / "home", [SOURCE])
        self.log_url = log_url or f"sqlite:///{root / 'log.db'}"
        self.store_path = root / "store.db"
        self.store_url = f"sqlite:///{self.store_path}"
        self.base_path = root / "base.pickle"
        self.base_path.write_bytes(pickle.dumps(base))
        self.published = 0

    def publish(self, n: int) -> dict[str, Any]:
        out = run_child(
            [
                "publish",
                str(self.home.root),
                self.log_url,
                str(self.base_path),
                str(self.published),
                str(n),
            ]
        )
        self.published += n
        return out

    def ingest(self, follow: bool) -> dict[str, Any]:
        return run_child(
            ["ingest", str(self.home.root), self.log_url, self.store_url, "1" if follow else "0"]
        )


def subscribe(store_url: str) -> None:
    from trust.store.eventstore import open_store

    store = open_store(store_url)
    subscribe_approved(store, "ministry", "victims_by_sex_age_form", "statistics")
    store.close()


def part_publish_ingest(tmp: Path, base: list[dict[str, Any]], events: int) -> dict[str, Any]:
    trust = Trust(tmp / "pi", base)
    subscribe(trust.store_url)
    publish = trust.publish(events)
    ingest = trust.ingest(follow=False)
    assert ingest["events"] == events, ingest
    return {"publish": publish, "ingest": ingest}


def part_scale(tmp: Path, base: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """At each size N: fill to N - SCALE_MEASURE, then measure ingest of the last SCALE_MEASURE
    (so every size measures the same batch), the release check, the rebuild and the bytes."""
    trust = Trust(tmp / "scale", base)
    subscribe(trust.store_url)
    out: dict[str, Any] = {}
    stored = 0
    for n in sizes:
        t = time.perf_counter()
        if n - SCALE_MEASURE > stored:
            trust.publish(n - SCALE_MEASURE - stored)
            stored += trust.ingest(follow=True)["events"]
        fill_s = round(time.perf_counter() - t, 1)
        trust.publish(SCALE_MEASURE)
        ingest = trust.ingest(follow=True)
        stored += ingest["events"]
        assert stored == n, (stored, n)
        check = run_child(["check", str(trust.home.root), trust.log_url, trust.store_url])
        out[str(n)] = {
            "fill_s": fill_s,
            "ingest": ingest,
            "release_check": check,
            "rebuild_cli": cli_rebuild(trust.home.root, trust.store_url),
            "bytes": stored_bytes(trust.store_path),
        }
        print(f"scale: {n:,} done", file=sys.stderr)
    return out


def _workers_once(tmp: Path, base: list[dict[str, Any]], events: int, n: int) -> dict[str, Any]:
    """One measurement: a fresh broker and trust, ``events`` published, ``n`` workers started."""
    from infra.broker import TansuBroker
    from transport import topics

    with TansuBroker() as broker:
        trust = Trust(tmp, base, log_url=broker.url)
        with open_log(broker.url) as log:
            log.create_topic(topics.inbound(SOURCE), 4)  # what the publisher makes, made first
        publish = trust.publish(events)
        go = trust.root / "go"
        args = [
            ["member", str(trust.home.root), broker.url, trust.store_url, str(go), str(events)]
            for _ in range(n)
        ]
        load = round(os.getloadavg()[0], 2)
        go_at, members = run_members(args, go)
    accepted = sum(m["accepted"] for m in members)
    assert accepted == events, (accepted, events)
    done = max(m["done_at"] for m in members)
    first = min(m["first_batch_at"] for m in members if m["first_batch_at"] is not None)
    return {
        "events_per_s": round(events / (done - go_at), 1),
        "events_per_s_from_first_batch": round(events / (done - first), 1),
        "events_per_cpu_s": round(events / sum(m["cpu_s"] for m in members), 1),
        "wall_s": round(done - go_at, 2),
        "join_s": round(first - go_at, 2),
        "per_worker": [
            {
                k: m[k]
                for k in (
                    "accepted",
                    "messages",
                    "skipped",
                    "cpu_s",
                    "append_lock_held_s",
                    "append_lock_wait_s",
                    "append_lock_cpu_s",
                )
            }
            for m in members
        ],
        # the share of the run the store's append lock was held: no worker count can go faster
        # than the appends alone (Amdahl)
        "serial_fraction": round(sum(m["append_lock_held_s"] for m in members) / (done - first), 3),
        "publish_events_per_s": publish["events_per_s"],
        "loadavg_1m_before": load,
    }


def part_workers(
    tmp: Path, base: list[dict[str, Any]], events: int, counts: list[int], rounds: int
) -> dict[str, Any]:
    """Ingest by 1, 2, … workers of one consumer group on Tansu (see the module notes): the
    counts alternate within each of ``rounds`` rounds (so a change in the machine's load falls on
    all of them alike); medians over the rounds."""
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for r in range(rounds):
        for n in counts:
            runs[n].append(_workers_once(tmp / f"workers-{r}-{n}", base, events, n))
            print(f"workers: round {r + 1}, {n} done", file=sys.stderr)
    by: dict[str, Any] = {}
    for n in counts:
        median = {
            key: round(statistics.median(run[key] for run in runs[n]), 1)
            for key in ("events_per_s", "events_per_s_from_first_batch", "events_per_cpu_s")
        }
        median["serial_fraction"] = round(
            statistics.median(run["serial_fraction"] for run in runs[n]), 3
        )
        by[str(n)] = {**median, "runs": runs[n]}
    one = by[str(counts[0])]
    if counts[0] == 1:
        # what the serial share of one worker allows n workers on idle cores (Amdahl's law)
        f = one["serial_fraction"]
        one["amdahl_bound"] = {str(n): round(1 / (f + (1 - f) / n), 2) for n in counts[1:]}
    for n in counts[1:]:
        for key in ("events_per_s", "events_per_s_from_first_batch"):
            ratio = "ratio" if key == "events_per_s" else "ratio_from_first_batch"
            by[str(n)][ratio] = round(by[str(n)][key] / one[key], 3)
    return {
        "events": events,
        "partitions": 4,
        "store": "sqlite",
        "rounds": rounds,
        "by_workers": by,
        "target_two_vs_one": TARGET_TWO_WORKERS,
    }


def child(argv: list[str]) -> None:
    tune_gc()  # a child is a process entry point: tuned as the CLI's is
    kind, *rest = argv
    if kind == "publish":
        out = child_publish(Path(rest[0]), rest[1], Path(rest[2]), int(rest[3]), int(rest[4]))
    elif kind == "ingest":
        out = child_ingest(Path(rest[0]), rest[1], rest[2], rest[3] == "1")
    elif kind == "member":
        out = child_member(Path(rest[0]), rest[1], rest[2], Path(rest[3]), int(rest[4]))
    else:
        out = child_release_check(Path(rest[0]), rest[1], rest[2])
    print(json.dumps(out))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--million", action="store_true", help="add 10^6 stored events to the scale")
    ap.add_argument("--kafka", action="store_true", help="the pipeline on a Tansu broker too")
    ap.add_argument(
        "--workers", default="", help="ingest by this many workers of one group on Tansu: 1,2"
    )
    ap.add_argument("--worker-events", type=int, default=40_000, help="events for --workers")
    ap.add_argument("--worker-rounds", type=int, default=3, help="rounds for --workers")
    ap.add_argument("--skip", default="", help=f"parts to leave out, of {','.join(PARTS)}")
    args = ap.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(PARTS):
        ap.error(f"unknown parts: {sorted(skip - set(PARTS))}")
    sizes = sorted(
        {int(s) for s in args.sizes.split(",") if s} | ({10**6} if args.million else set())
    )
    if sizes and sizes[0] < SCALE_MEASURE:
        ap.error(f"sizes start at {SCALE_MEASURE} (each measures its last {SCALE_MEASURE} events)")
    tune_gc()  # as the CLI's entry point does
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "code": code_state(),
        "machine": machine(),
        "events": args.events,
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recs = records(args.events, tmp / "sim")
        # the case ids the publish child gives them (``_messages``), so that the mean payload is
        # that of the records stored
        recs = [
            {
                **r,
                "reporting_entity": {**r["reporting_entity"], "source_id": SOURCE},
                "case_id": f"T-{i}",
            }
            for i, r in enumerate(recs)
        ]
        floor_runs: list[dict[str, Any]] = []
        if "floors" not in skip:
            floor_runs.append(floors(recs))
            result["floors"] = floor_runs[0]
            print("floors done", file=sys.stderr)
        if not {"publish", "ingest"} <= skip:
            pi = part_publish_ingest(tmp, recs, args.events)
            if floor_runs:  # the floors again after the children, and the median of the runs
                floor_runs += [floors(recs), floors(recs)]
                result["floors"] = median_floors(floor_runs)
            result["publish"] = pi["publish"]
            result["ingest"] = pi["ingest"]
            if "floors" in result:
                f = result["floors"]
                result["publish"]["per_cpu_vs_floor"] = round(
                    pi["publish"]["events_per_cpu_s"] / f["publish_events_per_s"], 3
                )
                result["ingest"]["per_cpu_vs_floor"] = round(
                    pi["ingest"]["events_per_cpu_s"] / f["ingest_events_per_s"], 3
                )
                result["ingest"]["target_vs_floor"] = TARGET_INGEST_RATIO
                result["ingest"]["goal_vs_floor"] = GOAL_INGEST_RATIO
            print("publish and ingest done", file=sys.stderr)
        if "pipeline" not in skip:
            result["pipeline_sqlite"] = run_backend(
                f"sqlite:///{tmp / 'p-log.db'}", recs, tmp / "p-sqlite", args.rounds
            )
            print("pipeline (sqlite) done", file=sys.stderr)
            if args.kafka:
                from infra.broker import TansuBroker

                with TansuBroker() as broker:
                    result["pipeline_kafka"] = run_backend(
                        broker.url, recs, tmp / "p-kafka", args.rounds
                    )
                print("pipeline (kafka) done", file=sys.stderr)
        if "scale" not in skip:
            result["scale"] = part_scale(tmp, recs, sizes)
            if "floors" in result:
                mean = result["floors"]["mean_payload_bytes"]
                for entry in result["scale"].values():
                    entry["bytes"]["record_row_vs_payload"] = round(
                        entry["bytes"]["record_row_bytes"] / mean, 2
                    )
                    entry["bytes"]["record_full_row_vs_payload"] = round(
                        entry["bytes"]["record_full_row_bytes"] / mean, 2
                    )
        if args.workers and "workers" not in skip:
            counts = [int(c) for c in args.workers.split(",") if c]
            many = records(args.worker_events, tmp / "sim-workers")
            many = [
                {**r, "reporting_entity": {**r["reporting_entity"], "source_id": SOURCE}}
                for r in many
            ]
            result["workers_kafka"] = part_workers(
                tmp, many, args.worker_events, counts, args.worker_rounds
            )
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
