"""Producer and trust-open throughput against their floors, measured in the same run. JSON out.

    .venv/bin/python benchmarks/publish.py [--events 20000] [--kafka] [--scale 10000,100000]
    .venv/bin/python benchmarks/publish.py --breakdown [--events 10000] [--repeat 3] [--profile 30]

- ``floor_per_event_asymmetric``: Avro encode + HPKE seal + Ed25519 sign for every event — what a
  naive design pays (DESIGN §5);
- ``floor_symmetric``: Avro encode + AES-256-GCM per event — the most batching can approach;
- ``publish_<backend>``: the real producer path: validate + minimise + encode + seal (one HPKE and
  one signature per batch, AES-GCM per event) + outbox + append + flush, on each backend;
- ``trust_open``: the trust's verify + open + decode + validate per event, with the batch cache;
- ``scale`` (``--scale N,M…``): ``publish`` of a CSV export of N rows through the workflow the
  CLI uses (read, map, validate, seal, outbox, SQLite log), each size in a fresh child process:
  rows/s, the child's peak RSS (``VmHWM``: flat memory means the same figure for every N), and
  the outbox's bytes per record once everything is acknowledged. The export is the simulated
  police export, copied with a distinct case reference per copy. Beside it,
  ``publish_floor_events_per_s`` (``benchmarks/throughput.py``'s publish floor, same run).
- ``--breakdown``: where the producer's time goes, in CPU µs per event (``process_time``, so
  other load on a shared machine is left out), the median of ``--repeat`` rounds, each
  ``Publisher.publish`` of ``--events`` records in batches of 1,000 on a fresh SQLite log and
  outbox (as ``throughput.py``'s publish child): validation, the record's encode (payload and
  the bytes the outbox knows it by), sealing, the outbox's event ids, ``put`` and
  ``mark_sent``, the log's append (with its write), and the rest (the publisher's own code);
  each phase's timer cost, calibrated in the same process, taken out; the cycle collector
  tuned as the CLI tunes it, and one short round first to compile the generated code. ``--profile N`` adds
  cProfile's N costliest functions (tottime, µs per event): it says where to look, the
  breakdown how much.
Target (issue 2): the producer path and the trust's open path each >= 50k events/s on one core.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.provenance import code_state, peak_rss_mib
from producers.mapping import Mapping
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher
from producers.readers import read_rows
from producers.simulate import simulate
from producers.workflow import SourceSetup, destination_of, publish_export, read_export
from schemas.codec import default_registry
from schemas.envelope import OpenCache, open_event
from schemas.keys import Keyring, SigningKey, TrustKeyPair
from schemas.validate import validator_for
from tiptrust.runtime import tune_gc
from transport import open_log


def records(n: int, tmp: Path) -> list[dict[str, Any]]:
    sim = simulate(11, max(2000, n // 2), tmp / "sim")
    out: list[dict[str, Any]] = []
    for source in sorted(sim.rows):
        mapping = Mapping.load(tmp / "sim" / source / "mapping.yaml")
        batch = mapping.map_rows(read_rows(tmp / "sim" / source / "records.csv"))
        out.extend(m.record for m in batch.records)
    while len(out) < n:
        out.extend(out[: n - len(out)])
    return out[:n]


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def floor_asymmetric(recs: list[dict[str, Any]], trust: TrustKeyPair, source: SigningKey) -> float:
    schema = default_registry().current("case_record")
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    pub = trust.private.public_key()
    t = time.perf_counter()
    for r in recs:
        ct = suite.encrypt(schema.encode(r), pub, info=b"tiptrust")
        source.sign(ct)
    return rate(len(recs), time.perf_counter() - t)


def floor_symmetric(recs: list[dict[str, Any]]) -> float:
    schema = default_registry().current("case_record")
    aead = AESGCM(os.urandom(32))
    t = time.perf_counter()
    for i, r in enumerate(recs):
        aead.encrypt(i.to_bytes(12, "big"), schema.encode(r), b"header")
    return rate(len(recs), time.perf_counter() - t)


def _publisher(
    log: Any, outbox: Outbox, url: str, trust: TrustKeyPair, source: SigningKey
) -> Publisher:
    """The publisher both measurements drive: batches of 1,000, a fresh message-key secret."""
    return Publisher(
        log=log,
        source_key=source,
        trust_key=trust.public,
        outbox=outbox,
        keyer=MessageKeyer.generate(),
        destination=destination_of(url),
        batch_size=1000,
    )


def publish_rate(
    url: str, recs: list[dict[str, Any]], trust: TrustKeyPair, source: SigningKey, tmp: Path
) -> float:
    messages = [
        Outgoing("RecordUpsert", f"case:{i}", {**r, "case_id": f"B-{i}"})
        for i, r in enumerate(recs)
    ]
    with open_log(url) as log, Outbox(tmp / f"outbox-{time.monotonic_ns()}.db") as outbox:
        pub = _publisher(log, outbox, url, trust, source)
        t = time.perf_counter()
        report = pub.publish(messages)
        elapsed = time.perf_counter() - t
    assert report.published == len(recs), report
    return rate(len(recs), elapsed)


def trust_open_rate(url: str, trust: TrustKeyPair, source: SigningKey) -> tuple[float, int]:
    reg = default_registry()
    ring = Keyring([trust], [source.public])
    with open_log(url) as log:
        raws = [r.value for r in log.read_all("tip.inbound.police")]
    cache = OpenCache()
    t = time.perf_counter()
    for raw in raws:
        opened = open_event(raw, keyring=ring, expected_source="police", cache=cache)
        h = opened.header
        datum = reg.decode_payload(h.kind, h.schema_fingerprint, opened.payload)
        validator_for(reg.for_kind(h.kind)).check(datum)
    return rate(len(raws), time.perf_counter() - t), len(raws)


# --- breakdown: where the producer's CPU time goes ---------------------------------------------

_PHASES = (
    "validate_encode",
    "validate",
    "encode",
    "seal",
    "event_ids",
    "put",
    "mark_sent",
    "log_append",
)


def _breakdown_round(
    recs: list[dict[str, Any]], tmp: Path, profile: cProfile.Profile | None
) -> dict[str, float]:
    """One ``publish`` of ``recs`` with its phases timed; CPU µs per event."""
    from producers import publisher as publisher_module

    clock = time.process_time_ns
    spent = dict.fromkeys(_PHASES, 0)
    calls = dict.fromkeys(_PHASES, 0)

    def timed(name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += clock() - t
                calls[name] += 1

        return run

    class TimedValidator:
        def __init__(self, inner: Any) -> None:
            self.problems = timed("validate", inner.problems)
            self._inner = inner

        def content_encoder(self, registry: Any) -> Any:
            found = self._inner.content_encoder(registry)
            return None if found is None else timed("validate_encode", found)

    n = len(recs)
    messages = [
        Outgoing("RecordUpsert", f"case:{i}", {**r, "case_id": f"B-{i}"})
        for i, r in enumerate(recs)
    ]
    url = f"sqlite:///{tmp / f'log-{time.monotonic_ns()}.db'}"
    # the module's names, as the publisher calls them (a timed stand-in for the round)
    real_seal = getattr(publisher_module, "seal_events")  # noqa: B009
    real_validator = getattr(publisher_module, "validator_for")  # noqa: B009
    trust, source = TrustKeyPair.generate(), SigningKey.generate("police")
    try:
        setattr(publisher_module, "seal_events", timed("seal", real_seal))  # noqa: B010
        setattr(  # noqa: B010
            publisher_module, "validator_for", lambda s: TimedValidator(real_validator(s))
        )
        with open_log(url) as log, Outbox(tmp / f"outbox-{time.monotonic_ns()}.db") as outbox:
            pub = _publisher(log, outbox, url, trust, source)
            for name in ("event_ids", "put", "mark_sent"):
                setattr(outbox, name, timed(name, getattr(outbox, name)))
            # the publisher draws a batch's ids with their bytes (``event_ids`` as lists)
            outbox.draw_event_ids = timed(  # type: ignore[method-assign]
                "event_ids", outbox.draw_event_ids
            )
            outbox.put_sealed = timed("put", outbox.put_sealed)  # type: ignore[method-assign]
            log.append = timed("log_append", log.append)  # type: ignore[method-assign]
            log.flush = timed("log_append", log.flush)  # type: ignore[method-assign]
            pub.registry.encode_with_content = timed(  # type: ignore[method-assign]
                "encode", pub.registry.encode_with_content
            )
            nothing = timed("calibrate", lambda: None)
            spent["calibrate"] = calls["calibrate"] = 0
            for _ in range(20_000):
                nothing()
            per_call = spent.pop("calibrate") / calls.pop("calibrate")
            cpu = time.process_time()
            if profile is not None:
                profile.enable()
            report = pub.publish(messages)
            if profile is not None:
                profile.disable()
            cpu = time.process_time() - cpu
    finally:
        setattr(publisher_module, "seal_events", real_seal)  # noqa: B010
        setattr(publisher_module, "validator_for", real_validator)  # noqa: B010
    assert report.published == n, report
    out = {name: (spent[name] - calls[name] * per_call) / n / 1000 for name in _PHASES}
    out["total"] = cpu * 1e6 / n - sum(calls.values()) * per_call / n / 1000
    out["rest"] = out["total"] - sum(out[name] for name in _PHASES)
    return out


def breakdown(events: int, repeat: int, top: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recs = records(events, tmp)
        tune_gc()  # as the CLI's entry point and throughput.py's publish child do
        _breakdown_round(recs[:2000], tmp, None)  # warm: encoders and validators compiled
        rounds = [_breakdown_round(recs, tmp, None) for _ in range(repeat)]
        result: dict[str, Any] = {
            "benchmark": "publish-breakdown",
            "code": code_state(),
            "events": events,
            "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
            "cpu_us_per_event": {
                name: round(statistics.median(r[name] for r in rounds), 2) for name in rounds[0]
            },
            "rounds": [{k: round(v, 2) for k, v in r.items()} for r in rounds],
        }
        if top:
            profile = cProfile.Profile()
            _breakdown_round(recs, tmp, profile)
            stats = pstats.Stats(profile)
            rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
            result["profile_tottime_us_per_event"] = [
                {
                    "function": f"{Path(file).name}:{line}({fn})",
                    "calls_per_event": round(nc / events, 2),
                    "tottime_us": round(tt * 1e6 / events, 2),
                    "cumtime_us": round(ct * 1e6 / events, 2),
                }
                for (file, line, fn), (_, nc, tt, ct, _) in rows
            ]
        result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return result


# --- scale: publish of an export file, one child process per size -------------------------------


def write_export(sim: Path, rows: int, out: Path) -> Path:
    """``rows`` rows of the simulated police export (copies with their own case references)."""
    mapping = Mapping.load(sim / "police" / "mapping.yaml")
    case_column = mapping.case_column
    assert case_column is not None
    with (sim / "police" / "records.csv").open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        base = list(reader)
        fields = list(reader.fieldnames or [])
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        written, copy = 0, 0
        while written < rows:
            for r in base[: rows - written]:
                w.writerow({**r, case_column: f"{r[case_column]}-{copy}"})
            written += min(len(base), rows - written)
            copy += 1
    return out


def child_export(export: Path, mapping: Path, folder: Path) -> dict[str, Any]:
    """One ``publish`` of ``export`` as the CLI runs it; prints rows/s and this process's peak."""
    setup = SourceSetup(
        SigningKey.generate("police"),
        TrustKeyPair.generate().public,
        MessageKeyer.generate(),
        folder / "outbox.db",
    )
    log_url = f"sqlite:///{folder / 'log.db'}"
    t = time.perf_counter()
    parsed = read_export("police", export, mapping)
    report = publish_export(setup, log_url, parsed)
    elapsed = time.perf_counter() - t
    assert not report.problems, report.problems[:3]
    outbox_files = list(folder.glob("outbox.db*"))
    return {
        "rows": parsed.rows_read,
        "events": report.published,
        "seconds": round(elapsed, 2),
        "rows_per_s": rate(parsed.rows_read, elapsed),
        "events_per_s": rate(report.published, elapsed),
        "peak_rss_mib": peak_rss_mib(),
        "outbox_bytes_per_record": round(
            sum(f.stat().st_size for f in outbox_files) / max(report.published, 1), 1
        ),
    }


def scale(sizes: list[int], tmp: Path) -> dict[str, Any]:
    simulate(11, 2000, tmp / "scale-sim")
    mapping = tmp / "scale-sim" / "police" / "mapping.yaml"
    out: dict[str, Any] = {}
    for n in sizes:
        folder = tmp / f"scale-{n}"
        folder.mkdir()
        export = write_export(tmp / "scale-sim", n, folder / "export.csv")
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(export), str(mapping), str(folder)],
            check=True,
            capture_output=True,
            text=True,
        )
        out[str(n)] = json.loads(proc.stdout)
        print(f"scale {n} done", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--kafka", action="store_true", help="also measure on a Tansu broker")
    ap.add_argument("--scale", default="", help="export sizes in rows, e.g. 10000,100000")
    ap.add_argument("--only-scale", action="store_true", help="skip the per-event figures")
    ap.add_argument("--child", nargs=3, metavar=("EXPORT", "MAPPING", "FOLDER"), help="internal")
    ap.add_argument("--breakdown", action="store_true", help="CPU µs per event by phase")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of --breakdown")
    ap.add_argument("--profile", type=int, default=0, help="with --breakdown: cProfile top N")
    args = ap.parse_args()
    if args.breakdown:
        print(json.dumps(breakdown(args.events, args.repeat, args.profile), indent=2))
        return
    if args.child:
        export, mapping, folder = (Path(a) for a in args.child)
        print(json.dumps(child_export(export, mapping, folder)))
        return
    sizes = [int(s) for s in args.scale.split(",") if s]
    if args.only_scale:
        from benchmarks.throughput import floors

        with tempfile.TemporaryDirectory() as d:
            recs = records(5000, Path(d))
            scaled: dict[str, Any] = {
                "benchmark": "publish-scale",
                "code": code_state(),
                "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
                "publish_floor_events_per_s": floors(recs)["publish_events_per_s"],
                "scale": scale(sizes, Path(d)),
            }
        print(json.dumps(scaled, indent=2))
        return
    trust = TrustKeyPair.generate()
    source = SigningKey.generate("police")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recs = records(args.events, tmp)
        payload_bytes = (
            sum(len(default_registry().current("case_record").encode(r)) for r in recs[:1000])
            / 1000
        )
        result: dict[str, Any] = {
            "benchmark": "publish",
            "code": code_state(),
            "events": len(recs),
            "mean_payload_bytes": round(payload_bytes, 1),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_1m": round(os.getloadavg()[0], 2),
            },
            "floor_per_event_asymmetric_events_per_s": floor_asymmetric(recs[:5000], trust, source),
            "floor_symmetric_events_per_s": floor_symmetric(recs),
        }
        sqlite_url = f"sqlite:///{tmp / 'log.db'}"
        result["publish_sqlite_events_per_s"] = publish_rate(sqlite_url, recs, trust, source, tmp)
        result["trust_open_events_per_s"], result["trust_open_events"] = trust_open_rate(
            sqlite_url, trust, source
        )
        if args.kafka:
            from infra.broker import TansuBroker

            with TansuBroker() as broker:
                result["publish_kafka_events_per_s"] = publish_rate(
                    broker.url, recs, trust, source, tmp
                )
        if sizes:
            result["scale"] = scale(sizes, tmp)
        result["target_events_per_s"] = 50_000
        result["publish_vs_asymmetric_floor"] = round(
            result["publish_sqlite_events_per_s"]
            / result["floor_per_event_asymmetric_events_per_s"],
            2,
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
