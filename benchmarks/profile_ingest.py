"""Where ingest time goes, per event: cProfile, or a CPU-time breakdown of the ingest step.

    .venv/bin/python benchmarks/profile_ingest.py [--events 10000] [--top 30] [--sort tottime]
        [--stage ingest|runner]
    .venv/bin/python benchmarks/profile_ingest.py --breakdown [--events 5000] [--repeat 5]

Both publish ``--events`` records of the simulator (the records the throughput benchmark uses) to
an embedded log once, then ingest them.

**Breakdown** (``--breakdown``): each of ``--repeat`` rounds ingests the whole log into a fresh
store with the worker alone, twice — once bare (``step_us``: the CPU time of ``worker.step`` until
caught up, nothing measured inside it) and once with the phases of the step timed (open, decode,
validate, prune, seal, event rows and the record's Avro encode within them, projections, …; each
phase's figure has the cost of the timers nested inside it taken out, calibrated in the same
process). Then, in isolation on what the rounds captured: ``validation`` runs the trust's
validator (decoded mode) over every decoded record, and ``projections`` replays every batch's
``(seq, event)`` list through ``projections.apply_many`` into an empty store, in one transaction
rolled back at the end — the two costs a change to ``schemas/validate.py`` or
``trust/store/projections.py`` moves, measured without the rest of the step's noise. Figures
are CPU microseconds per event (``process_time``: other load on a shared machine is left out),
the median of the rounds, with every round listed.
Compare two versions back to back, never against a figure from another day.

**cProfile** (the default): the worker alone (``--stage ingest``) or the whole runner with
linkage, the followers and a release (``--stage runner``) until caught up under cProfile; the
costliest functions as JSON in µs per event (``--sort tottime|cumulative``). The profiler slows
Python calls unevenly: it says where to look, the breakdown says how much.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline import STREAM, setup
from benchmarks.provenance import code_state, machine
from benchmarks.publish import records
from benchmarks.subscribe import subscribe
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher
from producers.workflow import destination_of
from schemas.codec import default_registry
from schemas.validate import Validator, validator_for
from tiptrust import wiring
from tiptrust.home import Home
from tiptrust.runtime import tune_gc
from transport import EventLog, open_log
from trust.store import projections
from trust.store.db import writer
from trust.store.events import Event
from trust.store.eventstore import EventStore, open_store

_cpu = time.process_time


# --- the log both modes read -------------------------------------------------------------------


@contextmanager
def published(events: int) -> Iterator[tuple[Path, Home, EventLog]]:
    """A trust home and an embedded log holding ``events`` published records of the simulator."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'log.db'}"
        home = setup(root, ["police"])
        recs = records(events, root)
        msgs = [
            Outgoing(
                "RecordUpsert",
                f"case:{i}",
                {
                    **r,
                    "case_id": f"B-{i}",
                    "reporting_entity": {**r["reporting_entity"], "source_id": "police"},
                },
            )
            for i, r in enumerate(recs)
        ]
        with open_log(url) as log, Outbox(root / "outbox.db") as outbox:
            Publisher(
                log=log,
                source_key=wiring.source_signing_key(home, "police"),
                trust_key=wiring.active_trust_public(home),
                outbox=outbox,
                keyer=MessageKeyer.generate(),
                destination=destination_of(url),
                batch_size=1000,
            ).publish(msgs)
            yield root, home, log


def _fresh_store(root: Path, name: str) -> EventStore:
    store = open_store(f"sqlite:///{root / name}")
    subscribe(store, "ministry", STREAM, "statistics")
    return store


def _until_caught_up(worker: Any) -> int:
    accepted = 0
    while True:
        s = worker.step()
        accepted += int(s.accepted)
        if s.messages == 0 and s.caught_up:
            return accepted


# --- the breakdown -----------------------------------------------------------------------------


class _Meter:
    """Inclusive CPU time and calls per phase; a phase's figure leaves out the cost of the timers
    nested inside it (``overhead_s`` per timed call, calibrated by :meth:`calibrate`)."""

    def __init__(self) -> None:
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.nested: Counter[str] = Counter()  # timed calls made inside each phase
        self.parent: dict[str, str | None] = {}
        self._stack: list[str] = []
        self.overhead_s = 0.0

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._stack
            self.parent.setdefault(name, stack[-1] if stack else None)
            stack.append(name)
            t = _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[name] += _cpu() - t
                stack.pop()
                self.calls[name] += 1
                for outer in stack:
                    self.nested[outer] += 1

        return timed

    def calibrate(self, n: int = 50_000) -> None:
        """The cost one timed call adds to the phase around it (the wrapper, its two clock
        reads and its bookkeeping), as the median of 5 loops of ``n`` calls."""
        probe = _Meter()
        noop = probe.wrap("probe", lambda: None)
        outer = probe.wrap("outer", lambda: [noop() for _ in range(n)])

        def bare() -> list[None]:
            return [None for _ in range(n)]

        costs: list[float] = []
        for _ in range(5):
            t = _cpu()
            outer()
            mid = _cpu()
            bare()
            costs.append(((mid - t) - (_cpu() - mid)) / n)
        self.overhead_s = max(statistics.median(costs), 0.0)

    def phases(self, events: int) -> dict[str, dict[str, Any]]:
        out = {}
        for name in self.cpu:
            own = self.cpu[name] - self.nested[name] * self.overhead_s
            out[name] = {
                "us_per_event": round(own / events * 1e6, 2),
                "calls": self.calls[name],
                "within": self.parent.get(name),
            }
        return out


@contextmanager
def _patched(targets: list[tuple[Any, str, Any]]) -> Iterator[None]:
    saved = [
        (obj, attr, obj.__dict__[attr] if attr in vars(obj) else None) for obj, attr, _ in targets
    ]
    try:
        for obj, attr, value in targets:
            setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, old in saved:
            if old is None:
                delattr(obj, attr)
            else:
                setattr(obj, attr, old)


def _instrument(meter: _Meter, runner: Any) -> list[tuple[Any, str, Any]]:
    """What to time in one runner's worker (instance attributes, and the module names the
    worker's code looks up at call time)."""
    import schemas.fields
    import trust.ingest.pipeline as pipeline_module
    import trust.store.eventstore as eventstore_module
    import trust.store.stored as stored_module

    worker = runner.worker
    pipeline = worker.pipeline
    vault = pipeline.vault
    consumer = worker._consumer
    # the payload's reader: the generated decoders' front (the registry's on an older tree)
    payloads = getattr(pipeline, "_payloads", pipeline.registry)
    w = meter.wrap
    # an event's row: its values' tuple (event_row's dict on an older tree)
    row = "event_values" if "event_values" in vars(eventstore_module) else "event_row"
    # what the projections work out before the append's lock (not on an older tree)
    prepare = vars(projections).get("prepare")
    ahead = [] if prepare is None else [(projections, "prepare", w("projections prepare", prepare))]
    return [
        (worker, "step", w("step", worker.step)),
        (consumer, "poll", w("poll", consumer.poll)),
        (consumer, "commit", w("commit offsets", consumer.commit)),
        (pipeline, "process_batch", w("process_batch", pipeline.process_batch)),
        (pipeline_module, "open_event", w("open_event", vars(pipeline_module)["open_event"])),
        (payloads, "decode_payload", w("decode_payload", payloads.decode_payload)),
        (Validator, "check", w("validate", Validator.check)),
        (schemas.fields.Pruner, "prune", w("prune", schemas.fields.Pruner.prune)),
        (vault, "prepare_deferred", w("vault.prepare_deferred", vault.prepare_deferred)),
        (vault, "seal_identifiers", w("vault.seal_identifiers", vault.seal_identifiers)),
        (worker, "_store", w("store", worker._store)),
        (eventstore_module, row, w("event_row", vars(eventstore_module)[row])),
        (stored_module, "encode_record", w("encode record", stored_module.encode_record)),
        (
            EventStore,
            "_accepted_among",
            staticmethod(w("dedupe query", EventStore._accepted_among)),
        ),
        (vault, "write_pending_in", w("vault.write_pending_in", vault.write_pending_in)),
        (
            EventStore,
            "_insert_events",
            staticmethod(w("insert events", EventStore._insert_events)),
        ),
        (projections, _apply_name(), w("projections", vars(projections)[_apply_name()])),
        *ahead,
    ]


def _apply_name() -> str:
    """The projections' function an append calls (``apply_many`` on an older tree)."""
    return "apply_run" if "apply_run" in vars(projections) else "apply_many"


def _round(root: Path, home: Home, log: EventLog, i: int, meter: _Meter | None) -> dict[str, Any]:
    store = _fresh_store(root, f"store-{i}-{'timed' if meter else 'bare'}.db")
    runner = wiring.build_trust_runner(home, log, store, release_every_s=3600)
    worker = runner.worker
    worker.start()
    captured: dict[str, Any] = {"batches": [], "datums": [], "identifiers": []}
    try:
        if meter is None:
            t = _cpu()
            accepted = _until_caught_up(worker)
            return {"accepted": accepted, "step_s": _cpu() - t}
        # what an append applies: apply_run (seqs and events apart), apply_many on an older tree
        name = _apply_name()
        apply = vars(projections)[name]
        check = Validator.check

        def capture_apply(conn: Any, *args: Any) -> None:
            if name == "apply_run":
                captured["batches"].append(list(zip(args[0], args[1], strict=True)))
            else:
                captured["batches"].append(list(args[0]))
            apply(conn, *args)

        def capture_check(self: Validator, datum: Any) -> None:
            captured["datums"].append(datum)
            # sealing clears the identifiers in the record itself: kept to be put back
            captured["identifiers"].extend(
                (v, v.get("identifiers")) for v in datum.get("victims") or ()
            )
            check(self, datum)

        capture = [(projections, name, capture_apply), (Validator, "check", capture_check)]
        with _patched(capture), _patched(_instrument(meter, runner)):
            accepted = _until_caught_up(worker)
        for victim, identifiers in captured.pop("identifiers"):
            victim["identifiers"] = identifiers  # the records as validated
        return {"accepted": accepted, **captured}
    finally:
        worker.close()
        store.close()


def _validation_s(datums: list[Any]) -> float:
    check = validator_for(default_registry().current("case_record"), decoded=True).check
    t = _cpu()
    for d in datums:
        check(d)
    return _cpu() - t


def _projections_s(root: Path, i: int, batches: list[list[tuple[int, Event]]]) -> float:
    store = _fresh_store(root, f"replay-{i}.db")
    try:
        with writer(store.engine).connect() as conn:
            tx = conn.begin()
            t = _cpu()
            for batch in batches:
                projections.apply_many(conn, batch)
            spent = _cpu() - t
            tx.rollback()
        return spent
    finally:
        store.close()


def _median_us(values: list[float], events: int) -> dict[str, Any]:
    per = [v / events * 1e6 for v in values]
    return {"us_per_event": round(statistics.median(per), 2), "rounds": [round(p, 2) for p in per]}


def breakdown(events: int, repeat: int) -> dict[str, Any]:
    meter_runs: list[dict[str, dict[str, Any]]] = []
    bare: list[float] = []
    validation: list[float] = []
    projection: list[float] = []
    with published(events) as (root, home, log):
        for i in range(repeat):
            b = _round(root, home, log, i, None)
            assert b["accepted"] == events, b
            bare.append(b["step_s"])
            meter = _Meter()
            meter.calibrate()
            timed = _round(root, home, log, i, meter)
            meter_runs.append(meter.phases(events))
            validation.append(_validation_s(timed["datums"]))
            projection.append(_projections_s(root, i, timed["batches"]))
            print(f"round {i + 1}/{repeat} done", file=sys.stderr)
    names = list(meter_runs[0])
    phases = {
        n: {
            "us_per_event": round(
                statistics.median(r[n]["us_per_event"] for r in meter_runs if n in r), 2
            ),
            "calls_per_round": meter_runs[0][n]["calls"],
            "within": meter_runs[0][n]["within"],
        }
        for n in names
    }
    for n, p in phases.items():  # what a phase spends outside the phases timed inside it
        inner = sum(q["us_per_event"] for q in phases.values() if q["within"] == n)
        if inner:
            p["rest_us_per_event"] = round(p["us_per_event"] - inner, 2)
    return {
        "benchmark": "profile_ingest (breakdown)",
        "code": code_state(),
        "machine": machine(),
        "events": events,
        "repeat": repeat,
        "step": _median_us(bare, events),
        "validation_isolated": _median_us(validation, events),
        "projections_isolated": _median_us(projection, events),
        "phases_timed": phases,
    }


# --- cProfile ----------------------------------------------------------------------------------


def profile(events: int, top: int, sort: str, stage: str = "ingest") -> dict[str, Any]:
    with published(events) as (root, home, log):
        store = _fresh_store(root, "store.db")
        runner = wiring.build_trust_runner(home, log, store, release_every_s=3600)
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        if stage == "ingest":
            runner.worker.start()
            _until_caught_up(runner.worker)
        else:
            runner.run(until_caught_up=True)
        prof.disable()
        wall = time.perf_counter() - t
        runner.worker.close()
        store.close()
    stats = pstats.Stats(prof)
    stats.sort_stats(sort)
    rows = []
    for func in stats.fcn_list[:top]:  # type: ignore[attr-defined]
        _, nc, tt, ct, _ = stats.stats[func]  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(func[0]).name}:{func[1]}:{func[2]}",
                "calls": nc,
                "own_us_per_event": round(tt / events * 1e6, 2),
                "cumulative_us_per_event": round(ct / events * 1e6, 2),
            }
        )
    return {
        "events": events,
        "stage": stage,
        "wall_s_profiled": round(wall, 3),
        "sort": sort,
        "top": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, help="default: 10,000 (cProfile), 5,000 (breakdown)")
    ap.add_argument("--breakdown", action="store_true", help="CPU time per phase, no profiler")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of the breakdown")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", choices=["tottime", "cumulative"], default="tottime")
    ap.add_argument("--stage", choices=["ingest", "runner"], default="ingest")
    a = ap.parse_args()
    tune_gc()  # as the CLI does: collections would otherwise be charged to whatever allocates
    if a.breakdown:
        out = breakdown(a.events or 5_000, a.repeat)
    else:
        out = profile(a.events or 10_000, a.top, a.sort, a.stage)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
