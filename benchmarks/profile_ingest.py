"""Where ingest time goes: publish N events to an embedded log, then run the trust's ingest worker
(``--stage ingest``, the default) or the whole runner with linkage, the followers and one release
(``--stage runner``) until caught up under cProfile, and print the functions that cost most
(cumulative and own time) as JSON, in µs per event.

    .venv/bin/python benchmarks/profile_ingest.py [--events 10000] [--top 30] [--sort tottime]
        [--stage ingest|runner]

Not a benchmark (the profiler slows Python code unevenly): it says *where* to look; the
throughput itself is measured by ``pipeline.py`` and ``scale.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline import STREAM, setup
from benchmarks.publish import records
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher
from producers.workflow import destination_of
from tiptrust import wiring
from tiptrust.runtime import tune_gc
from transport import open_log
from trust.store.eventstore import open_store


def _ingest_only(worker: Any) -> None:
    worker.start()
    while True:
        s = worker.step()
        if s.messages == 0 and s.caught_up:
            return


def profile(events: int, top: int, sort: str, stage: str = "ingest") -> dict[str, Any]:
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
            store = open_store(home.store_url())
            wiring.add_subscription(store, "ministry", STREAM, "statistics")
            runner = wiring.build_trust_runner(home, log, store, release_every_s=3600)
            prof = cProfile.Profile()
            t = time.perf_counter()
            prof.enable()
            if stage == "ingest":
                _ingest_only(runner.worker)
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
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", choices=["tottime", "cumulative"], default="tottime")
    ap.add_argument("--stage", choices=["ingest", "runner"], default="ingest")
    a = ap.parse_args()
    tune_gc()  # as the CLI does: collections would otherwise be charged to whatever allocates
    print(json.dumps(profile(a.events, a.top, a.sort, a.stage), indent=2))


if __name__ == "__main__":
    main()
