"""Where the producer's time goes, per event: the publish path of ``throughput.py`` under cProfile.

    .venv/bin/python benchmarks/profile_publish.py [--events 10000] [--top 40] [--sort tottime]

The records, keys, batches (1,000) and chunks (10,000 messages handed to ``Publisher.publish`` at
a time) are those of ``throughput.py``'s publish child, on a SQLite log and outbox of a fresh
trust home. First one round without a profiler (``bare_cpu_us_per_event``: the process's CPU
time, the figure ``per_cpu_vs_floor`` divides), then one under cProfile; the costliest functions
as JSON in µs per event (``--sort tottime|cumulative``). The profiler slows Python calls
unevenly: it says where to look; ``publish.py --breakdown`` times the phases without it, and
``throughput.py`` says how fast. Both rounds run after one short warm-up round (the generated
encoders and checks compiled, as a long-running publisher has them).
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

from benchmarks.pipeline import setup as setup_home
from benchmarks.provenance import code_state, machine
from benchmarks.publish import records
from benchmarks.throughput import BATCH, CHUNK, SOURCE, _messages
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Publisher
from producers.workflow import destination_of
from tiptrust import wiring
from tiptrust.home import Home
from tiptrust.runtime import tune_gc
from transport import open_log


def _round(
    root: Path, name: str, base: list[dict[str, Any]], n: int, profile: cProfile.Profile | None
) -> float:
    """One publish of ``n`` messages to a fresh log and outbox; CPU seconds."""
    home = Home(root / "home")
    log_url = f"sqlite:///{root / f'{name}-log.db'}"
    with open_log(log_url) as log, Outbox(root / f"{name}-outbox.db") as outbox:
        pub = Publisher(
            log=log,
            source_key=wiring.source_signing_key(home, SOURCE),
            trust_key=wiring.active_trust_public(home),
            outbox=outbox,
            keyer=MessageKeyer.generate(),
            destination=destination_of(log_url),
            batch_size=BATCH,
        )
        published = 0
        cpu = time.process_time()
        if profile is not None:
            profile.enable()
        for at in range(0, n, CHUNK):
            published += pub.publish(list(_messages(base, at, min(CHUNK, n - at)))).published
        if profile is not None:
            profile.disable()
        cpu = time.process_time() - cpu
    assert published == n, (published, n)
    return cpu


def profile(events: int, top: int, sort: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        setup_home(root / "home", [SOURCE])
        base = records(events, root / "sim")
        base = [
            {**r, "reporting_entity": {**r["reporting_entity"], "source_id": SOURCE}} for r in base
        ]
        _round(root, "warm", base, min(2000, events), None)
        bare = _round(root, "bare", base, events, None)
        prof = cProfile.Profile()
        _round(root, "profiled", base, events, prof)
    stats = pstats.Stats(prof)
    column = 2 if sort == "tottime" else 3
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][column])[:top]  # type: ignore[attr-defined]
    return {
        "benchmark": "profile-publish",
        "code": code_state(),
        "machine": machine(),
        "events": events,
        "bare_cpu_us_per_event": round(bare * 1e6 / events, 2),
        "sort": sort,
        "functions_us_per_event": [
            {
                "function": f"{Path(file).name}:{line}({fn})",
                "calls_per_event": round(nc / events, 2),
                "tottime_us": round(tt * 1e6 / events, 2),
                "cumtime_us": round(ct * 1e6 / events, 2),
            }
            for (file, line, fn), (_, nc, tt, ct, _) in rows
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--sort", choices=["tottime", "cumulative"], default="tottime")
    a = ap.parse_args()
    tune_gc()  # a process entry point: tuned as the CLI and throughput.py's children are
    print(json.dumps(profile(a.events, a.top, a.sort), indent=2))


if __name__ == "__main__":
    main()
