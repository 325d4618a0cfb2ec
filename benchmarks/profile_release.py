"""Where the CPU of the four-way stream's release check goes. JSON out.

    .venv/bin/python benchmarks/profile_release.py [--persons 2000] [--seed 11] [--rounds 5]
        [--add 12] [--k 10] [--top 25] [--no-profile]

Counts: the simulator's own population of ``--persons`` persons (``--seed 11`` is the seed
``benchmarks/pipeline.py`` simulates its records with), by year, sex, age group and form, as
``benchmarks/disclosure.py`` makes them; the table of ``victims_by_sex_age_form`` with every
margin and the total, as the release stage makes it. The first release is made and not measured;
then ``--rounds`` follow-ups, each protected as the release stage protects it
(``protect_margins`` carried below 2k, under the differencing rule against every exact value
published so far), each after ``--add`` more persons:

- ``--mode pipeline`` (default): as ``benchmarks/pipeline.py --round-cells new-year`` adds
  them, in a year of their own (1960 + round: a new year category, so the table grows a little),
  women aged 25-34, organ removal; ``--pre-rounds`` such rounds (5: the two-way stream's phase
  of the pipeline) come before the first release;
- ``--mode cells``: in one non-empty cell drawn at random (seeded): only a few cells' counts
  change between releases.

Out: per follow-up the CPU seconds (``time.process_time``) and a digest of what it publishes
(the suppressed aggregates and the audit's verdict: two versions of the code that print the same
digests made the same releases); with profiling (the default) the functions with the most
cumulative and the most own CPU over the follow-ups (cProfile). Profiling adds time: measure
CPU seconds with ``--no-profile``. One pass per process: the disclosure code remembers recent
patterns and audits in the process, so a second pass would not measure the same work.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import pstats
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.disclosure import count_table, population_counts, published
from trust.release.disclosure.margins import ProtectedMargins, protect_margins
from trust.release.history import AggregateKey
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM


def follow_up_counts(
    counts: Counter[tuple[str, ...]], persons: int, rng: random.Random, new_year: int | None
) -> Counter[tuple[str, ...]]:
    """``counts`` with ``persons`` more persons in one cell: of year ``new_year`` as the pipeline
    benchmark's rounds add them, or (None) a non-empty one drawn at random."""
    out = Counter(counts)
    if new_year is not None:
        out[(str(new_year), "Feminine", "25-34", "OrganRemoval")] += persons
    else:
        out[rng.choice(sorted(counts))] += persons
    return out


def digest(protected: ProtectedMargins) -> str:
    """What the release publishes: its suppressed aggregates and the audit's verdict."""
    h = hashlib.blake2b(digest_size=8)
    hidden = sorted((a.dimensions, a.key) for a in protected.table.aggregates if a.value is None)
    h.update(repr((hidden, protected.report.passed)).encode())
    return h.hexdigest()


def run(args: argparse.Namespace, prof: cProfile.Profile | None) -> tuple[list[float], list[str]]:
    """The follow-up releases: (CPU seconds, digests)."""
    spec, k, add = VICTIMS_BY_SEX_AGE_FORM, args.k, args.add
    counts = population_counts(args.persons, args.seed)
    rng = random.Random(f"{args.seed}:profile-release")
    pipeline = args.mode == "pipeline"
    year = 1960
    for _ in range(args.pre_rounds if pipeline else 0):
        counts = follow_up_counts(counts, add, rng, year)
        year += 1
    history: dict[AggregateKey, set[float]] = {}

    def publish(protected: ProtectedMargins) -> frozenset[AggregateKey]:
        return published(history, protected)

    first = protect_margins(count_table(spec, counts), k)
    hidden, guarded = publish(first), first.guarded
    cpu: list[float] = []
    digests: list[str] = [digest(first)]
    for _ in range(args.rounds):
        counts = follow_up_counts(counts, add, rng, year if pipeline else None)
        year += 1
        table = count_table(spec, counts)
        c0 = time.process_time()
        if prof is not None:
            prof.enable()
        out = protect_margins(
            table, k, earlier=history, previous=hidden, carry_below=2 * k, guarded=guarded
        )
        if prof is not None:
            prof.disable()
        cpu.append(round(time.process_time() - c0, 4))
        digests.append(digest(out))
        hidden, guarded = publish(out), out.guarded
    return cpu, digests


def top(prof: cProfile.Profile, key: str, n: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(prof, stream=io.StringIO())
    stats.sort_stats(key)
    out = []
    for func in stats.fcn_list[:n]:  # type: ignore[attr-defined]
        _, nc, tt, ct, _ = stats.stats[func]  # type: ignore[attr-defined]
        file, line, name = func
        where = f"{Path(file).name}:{line}" if line else file
        out.append(
            {
                "function": f"{where}({name})",
                "calls": nc,
                "own_s": round(tt, 3),
                "cumulative_s": round(ct, 3),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--add", type=int, default=12)
    ap.add_argument("--mode", choices=("pipeline", "cells"), default="pipeline")
    ap.add_argument("--pre-rounds", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    # CPU time, not wall time: the machine is shared
    prof = None if args.no_profile else cProfile.Profile(time.process_time)
    cpu, digests = run(args, prof)
    result: dict[str, Any] = {
        "benchmark": "profile_release",
        "persons": args.persons,
        "seed": args.seed,
        "rounds": args.rounds,
        "mode": args.mode,
        "release_cpu_s": cpu,
        "release_cpu_s_median": sorted(cpu)[len(cpu) // 2] if cpu else None,
        "digests": digests,
    }
    if prof is not None:
        result["top_cumulative"] = top(prof, "cumulative", args.top)
        result["top_own"] = top(prof, "tottime", args.top)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
