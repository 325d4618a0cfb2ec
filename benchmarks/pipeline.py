"""End to end: publish → ingest → release → consumer, on each backend, against its floor. JSON out.

    .venv/bin/python benchmarks/pipeline.py [--events 20000] [--kafka] [--rounds 30]

- ``end_to_end_events_per_s``: N events published (validate, seal, outbox, append), ingested
  (verify, decrypt, validate, minimise, seal identifiers per person, store with positions) and
  released (aggregate, suppress, sign, append), divided by the wall time of all three;
- ``floor_crypto_codec_events_per_s``: per event, Avro encode + AES-256-GCM seal + open + Avro
  decode — the symmetric work both ends must do, measured in the same run;
- ``floor_per_event_asymmetric_events_per_s``: HPKE seal + open and Ed25519 sign + verify per event
  — what the batch amortisation avoids;
- ``release_latency_ms``: per stream (``--streams``, measured one after the other), p50/p99 over
  rounds, from the moment the trust has stored a round's events to the moment a subscribed
  consumer has verified and written the release that counts them; ``release_check_cpu_ms``, the
  CPU time of the release check alone (steadier than wall time on a busy machine).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from rich.progress import Progress

from benchmarks.provenance import code_state
from benchmarks.publish import records
from benchmarks.subscribe import subscribe
from consumers.subscriber import Subscriber
from consumers.writers import ReleaseWriter
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher
from producers.workflow import destination_of
from schemas.codec import default_registry
from tiptrust import wiring
from tiptrust.home import Home
from tiptrust.runtime import tune_gc
from transport import open_log
from trust.runner import TrustRunner
from trust.stewardship.agreement import Agreement, ReleaseGrant
from trust.store.eventstore import open_store

STREAM = "victims_by_sex_age_form"
"""The four-way table with every margin (secondary suppression with its LP audit): the costliest
release, which the ingest benchmarks subscribe to."""

STREAMS = ("victims_by_year_sex", STREAM)
"""The streams whose release latency is measured, in order: a two-way count stream, then the
four-way table. The end to end's one release is the first's."""


def floors(recs: list[dict[str, Any]]) -> dict[str, float]:
    schema = default_registry().current("case_record")
    aead = AESGCM(os.urandom(32))
    t = time.perf_counter()
    for i, r in enumerate(recs):
        nonce = i.to_bytes(12, "big")
        schema.decode(aead.decrypt(nonce, aead.encrypt(nonce, schema.encode(r), b"h"), b"h"))
    sym = len(recs) / (time.perf_counter() - t)
    from schemas.keys import SigningKey, TrustKeyPair

    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    tk, sk = TrustKeyPair.generate(), SigningKey.generate("x")
    sample = [schema.encode(r) for r in recs[:3000]]
    t = time.perf_counter()
    for p in sample:
        ct = suite.encrypt(p, tk.private.public_key(), info=b"i")
        sig = sk.sign(ct)
        sk.public.public.verify(sig, ct)
        suite.decrypt(ct, tk.private, info=b"i")
    asym = len(sample) / (time.perf_counter() - t)
    return {
        "floor_crypto_codec_events_per_s": round(sym, 1),
        "floor_per_event_asymmetric_events_per_s": round(asym, 1),
    }


def _distinct_person(identifiers: dict[str, Any] | None, n: int) -> dict[str, Any] | None:
    """``identifiers`` made those of the ``n``-th of many distinct persons (name and birth date)."""
    if identifiers is None:
        return None
    letters = "".join(chr(ord("a") + (n // 26**i) % 26) for i in range(4))
    return {
        **identifiers,
        "given_names": f"Ann{letters}",
        "surnames": f"Latency{letters[::-1]}",
        "date_of_birth": dt.date(1950, 1, 1) + dt.timedelta(days=37 * n),
        "documents": [],
        "shared_ids": [],
        "phone": None,
    }


def _agreement(source: str) -> Agreement:
    grant = ReleaseGrant("ministry", ("statistics",))
    return Agreement(source, 1, dt.date(2000, 1, 1), None, ("$",), (grant,), 10)


def setup(root: Path, sources: list[str]) -> Home:
    home = Home(root)
    wiring.trust_init(home)
    for s in sources:
        key = wiring.source_init(home, s)
        wiring.register_source(
            home, s, home.source_keys(s) / f"{key.key_id}.ed25519.pub.pem", _agreement(s)
        )
    return home


ROUND_PERSONS = 12  # new persons in each latency round


def _latest_year(recs: Sequence[dict[str, Any]]) -> int | None:
    years = [(r.get("event") or {}).get("year_of_exploitation") for r in recs]
    return max((y for y in years if isinstance(y, int)), default=None)


def _latency_round(
    recs: Sequence[dict[str, Any]], r: int, cells: str, year: int | None
) -> list[Outgoing]:
    """Round ``r``'s new persons, each a different person. ``cells="current"``: copies of the
    data's records (their sex, age and forms) in the data's latest year — the week's new cases
    of a live trust, which change a few existing cells; ``"new-year"``: all in year ``1960 + r``
    (with the years made sticky, a new year column each round: a table that grows every round,
    the costliest case)."""
    batch = []
    for j in range(ROUND_PERSONS):
        n = r * ROUND_PERSONS + j
        base = recs[0] if cells == "new-year" else recs[n % len(recs)]
        rec = {**base, "case_id": f"L-{r}-{j}"}
        if cells == "new-year":
            rec["event"] = {
                **base["event"],
                "year_of_exploitation": 1960 + r,
                "forms_of_exploitation": ["OrganRemoval"],
            }
        elif year is not None:
            rec["event"] = {**(base.get("event") or {}), "year_of_exploitation": year}
        # a different person each time (else linkage makes them one person)
        rec["victims"] = [
            {
                **v,
                "victim_id": f"LV-{r}-{j}",
                **({"sex": "Feminine", "age_at_identification": 30} if cells == "new-year" else {}),
                "identifiers": _distinct_person(v["identifiers"], n),
            }
            for v in base["victims"][:1]
        ]
        batch.append(Outgoing("RecordUpsert", f"lat:{r}:{j}", rec))
    return batch


class _Watcher:
    """A subscribed consumer reading in a thread of its own: the times its releases arrived."""

    def __init__(self, url: str, stream: str, keys: Any, root: Path) -> None:
        self._args = (url, stream, keys, root / "out" / stream)
        self._arrived: list[float] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        url, stream, keys, folder = self._args
        with (
            open_log(url) as log,
            Subscriber(log, stream, "ministry", keys, ReleaseWriter(folder)) as sub,
        ):
            while not self._stop.is_set():
                if sub.run_once(timeout=0.02).written:
                    with self._cond:
                        self._arrived.append(time.perf_counter())
                        self._cond.notify_all()

    def wait_for_release(self, since: float, timeout: float = 120.0) -> float:
        """When the first release written after ``since`` (a ``perf_counter``) arrived."""
        with self._cond:
            ok = self._cond.wait_for(lambda: any(t > since for t in self._arrived), timeout)
            assert ok, "no release arrived"
            arrived = min(t for t in self._arrived if t > since)
            self._arrived = [t for t in self._arrived if t > arrived]
            return arrived


def _percentiles(values: list[float]) -> dict[str, float]:
    lat = sorted(values)
    return {
        "rounds": len(lat),
        "p50": round(statistics.median(lat), 1),
        "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
        "max": round(lat[-1], 1),
    }


def run_backend(
    url: str,
    recs: list[dict[str, Any]],
    root: Path,
    rounds: int,
    streams: Sequence[str] = STREAMS,
    cells: str = "current",
) -> dict[str, Any]:
    home = setup(root, ["police"])
    key = wiring.source_signing_key(home, "police")
    trust_pub = wiring.active_trust_public(home)
    recs = [
        {**r, "reporting_entity": {**r["reporting_entity"], "source_id": "police"}} for r in recs
    ]
    msgs = [
        Outgoing("RecordUpsert", f"case:{i}", {**r, "case_id": f"B-{i}"})
        for i, r in enumerate(recs)
    ]
    out: dict[str, Any] = {"events": len(msgs)}
    with open_log(url) as log, Outbox(root / "outbox.db") as outbox:
        pub = Publisher(
            log=log,
            source_key=key,
            trust_key=trust_pub,
            outbox=outbox,
            keyer=MessageKeyer.generate(),
            destination=destination_of(url),
            batch_size=1000,
        )
        store = open_store(home.store_url())
        subscribe(store, "ministry", streams[0], "statistics")
        runner = wiring.build_trust_runner(home, log, store, release_every_s=3600)
        t0 = time.perf_counter()
        pub.publish(msgs)
        t1 = time.perf_counter()
        summary = runner.run(until_caught_up=True)
        t2 = time.perf_counter()
        assert summary.ingest.accepted == len(msgs), summary.ingest
        out["publish_s"] = round(t1 - t0, 3)
        out["ingest_and_release_s"] = round(t2 - t1, 3)
        out["ingest_events_per_s"] = round(len(msgs) / (t2 - t1), 1)
        out["end_to_end_events_per_s"] = round(len(msgs) / (t2 - t0), 1)

        # release latency, per stream in order: each stream is subscribed when its turn comes,
        # so the first is measured alone and then beside the later ones; each round adds 12
        # persons (see _latency_round), so every subscribed stream's figures change. Each consumer
        # reads in a thread of its own (with its own log client), as it would in its own
        # process, while the trust makes its releases.
        keys = wiring.release_public_keys(home.release_keys)
        out["release_latency_ms"] = {}
        round_no = 0
        year = _latest_year(recs)
        out["latency_rounds"] = {"persons": ROUND_PERSONS, "cells": cells, "year": year}
        with contextlib.ExitStack() as watching:
            watchers: dict[str, _Watcher] = {}
            for phase, stream in enumerate(streams):
                if phase:
                    subscribe(store, "ministry", stream, "statistics")
                watchers[stream] = watching.enter_context(_Watcher(url, stream, keys, root))
                runner.run(until_caught_up=True)  # the stream's first release: not measured
                watchers[stream].wait_for_release(since=0.0)
                latencies: dict[str, list[float]] = {s: [] for s in watchers}
                check_cpu: list[float] = []
                for _ in range(rounds):
                    pub.publish(_latency_round(recs, round_no, cells, year))
                    round_no += 1
                    TrustRunner(worker=runner.worker, releases=[]).run(until_caught_up=True)
                    stored = time.perf_counter()
                    cpu = time.process_time()
                    emitted = runner.release()  # each release is sent as soon as it is made
                    check_cpu.append((time.process_time() - cpu) * 1000)
                    assert len(emitted) == len(watchers), "each round changes every stream"
                    for s, w in watchers.items():
                        latencies[s].append((w.wait_for_release(since=stored) - stored) * 1000)
                out["release_latency_ms"]["+".join(watchers)] = {
                    **{s: _percentiles(v) for s, v in latencies.items()},
                    "release_check_cpu_ms": _percentiles(check_cpu),
                }
        runner.worker.close()
        store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--kafka", action="store_true")
    ap.add_argument(
        "--streams", default=",".join(STREAMS), help="comma-separated, measured in this order"
    )
    ap.add_argument(
        "--round-cells",
        choices=("current", "new-year"),
        default="current",
        help="where each latency round's persons go: existing cells of the latest year (a live "
        "trust's new cases), or a new year each round (a table that grows every round)",
    )
    ap.add_argument(
        "--gc-default",
        action="store_true",
        help="keep CPython's collector thresholds (the CLI tunes them: tiptrust.runtime)",
    )
    args = ap.parse_args()
    if not args.gc_default:
        tune_gc()  # as the CLI's entry point does
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as d, Progress(console=console, transient=True) as progress:
        tmp = Path(d)
        task = progress.add_task("pipeline benchmark", total=3 if args.kafka else 2)
        recs = records(args.events, tmp)
        result: dict[str, Any] = {
            "benchmark": "pipeline",
            "code": code_state(),
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "gc": "default" if args.gc_default else "tuned as the CLI does",
            **floors(recs),
        }
        progress.advance(task)
        streams = args.streams.split(",")
        result["sqlite"] = run_backend(
            f"sqlite:///{tmp / 'log.db'}",
            recs,
            tmp / "sqlite",
            args.rounds,
            streams,
            args.round_cells,
        )
        progress.advance(task)
        if args.kafka:
            from infra.broker import TansuBroker

            with TansuBroker() as broker:
                result["kafka_tansu"] = run_backend(
                    broker.url, recs, tmp / "kafka", args.rounds, streams, args.round_cells
                )
            progress.advance(task)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
