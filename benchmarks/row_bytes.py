"""Stored bytes per accepted event against its payload, quickly. One JSON.

    .venv/bin/python benchmarks/row_bytes.py [--events 3000] [--no-linkage]

Publishes ``--events`` records of the simulator (the records ``throughput.py`` uses, as
``profile_ingest.py`` publishes them) to an embedded log, ingests them into a fresh SQLite store
with the trust's ingest worker (the real path: open, decode, validate, minimise, seal the
identifiers, store), then runs the trust's followers once (linkage among them) unless
``--no-linkage``. Reports, per stored event type, the mean bytes of its ``stored_events`` row —
every column's stored bytes (text as UTF-8, integers as 8) and the parts of it (``payload``,
``body``, ``body_schema``, ``event_id``) — beside the mean Avro payload of the same records (the
current case record schema's bytes, as ``throughput.py``'s ``mean_payload_bytes``).
``record_row_vs_payload`` is the figure ``throughput.py``'s ``scale`` part reports: an accepted
record's ``payload`` + ``body`` over the mean payload; ``record_full_row_vs_payload`` counts every
column of the row (its ids, topic, offsets, the schema fingerprint).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline import STREAM
from benchmarks.profile_ingest import published
from benchmarks.provenance import code_state
from benchmarks.publish import records
from benchmarks.subscribe import subscribe
from schemas.codec import default_registry
from tiptrust import wiring
from tiptrust.runtime import tune_gc
from trust.store.eventstore import open_store

_PARTS = ("payload", "body", "body_schema", "event_id")


def _columns(db: sqlite3.Connection) -> list[str]:
    return [r[1] for r in db.execute("PRAGMA table_info(stored_events)")]


def measure(store_path: Path) -> dict[str, Any]:
    """Mean stored bytes of each event type's rows in the store at ``store_path``."""
    with contextlib.closing(sqlite3.connect(store_path)) as db:
        cols = _columns(db)

        def size(col: str) -> str:
            # text as its UTF-8 bytes, a blob as its bytes, an integer as 8, NULL as 0
            return (
                f"coalesce(CASE typeof({col}) WHEN 'integer' THEN 8 WHEN 'real' THEN 8 "
                f"ELSE length(CAST({col} AS BLOB)) END, 0)"
            )

        parts = [p for p in _PARTS if p in cols]
        full = " + ".join(size(f'"{c}"') for c in cols)
        sel = ", ".join(f"avg({size(p)})" for p in parts)
        out: dict[str, Any] = {}
        for row in db.execute(
            f"SELECT event_type, count(*), avg({full}), {sel} FROM stored_events "
            "GROUP BY event_type ORDER BY event_type"
        ):
            t, n, whole, *means = row
            out[t] = {
                "rows": n,
                "full_row_bytes": round(whole, 1),
                **{f"{p}_bytes": round(m, 1) for p, m in zip(parts, means, strict=True)},
            }
    return out


def run(events: int, linkage: bool) -> dict[str, Any]:
    """Fill a fresh store through the real path (see the module docstring); :func:`measure`."""
    with published(events) as (root, home, log):
        store = open_store(f"sqlite:///{root / 'store.db'}")
        subscribe(store, "ministry", STREAM, "statistics")
        runner = wiring.build_trust_runner(home, log, store, release_every_s=3600)
        worker = runner.worker
        worker.start()
        while True:
            s = worker.step()
            if s.messages == 0 and s.caught_up:
                break
        if linkage:
            runner.follow()
        worker.close()
        store.close()
        return measure(root / "store.db")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--no-linkage", action="store_true")
    args = ap.parse_args()
    tune_gc()

    case = default_registry().current("case_record")
    with tempfile.TemporaryDirectory() as tmp:
        recs = records(args.events, Path(tmp))
    police = [
        {**r, "reporting_entity": {**r["reporting_entity"], "source_id": "police"}} for r in recs
    ]
    # throughput.py's mean payload: the simulator's records as they are; and the records as
    # ingested here (profile_ingest.py names their cases B-0, B-1, …: shorter case ids)
    payload = statistics.fmean(len(case.encode(r)) for r in police)
    ingested = statistics.fmean(
        len(case.encode({**r, "case_id": f"B-{i}"})) for i, r in enumerate(police)
    )
    by_type = run(args.events, not args.no_linkage)
    acc = by_type.get("RecordAccepted", {})
    row = sum(acc.get(f"{p}_bytes", 0.0) for p in ("payload", "body"))
    print(
        json.dumps(
            {
                "benchmark": "row_bytes",
                "code": code_state(),
                "events": args.events,
                "mean_payload_bytes": round(payload, 1),
                "record_row_bytes": round(row, 1),
                "record_row_vs_payload": round(row / payload, 2),
                "mean_ingested_payload_bytes": round(ingested, 1),
                "record_row_vs_ingested_payload": round(row / ingested, 2),
                "record_full_row_vs_payload": round(acc.get("full_row_bytes", 0.0) / payload, 2),
                "by_type": by_type,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
