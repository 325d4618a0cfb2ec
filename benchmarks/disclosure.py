"""Secondary suppression and the LP audit on every standard stream's table, beside the naive LP. JSON.

    .venv/bin/python benchmarks/disclosure.py [--years 10] [--persons-per-year 1500] [--k 10]
        [--naive-sample 20] [--naive-full-below 400] [--seed 11] [--streams NAME ...]
        [--population N] [--baseline] [--follow-up N]
    .venv/bin/python benchmarks/disclosure.py --sizes 1000 10000 100000 [--years 8]
        [--releases 5] [--population 2000 --seed 7]

Counts: ``--persons-per-year`` persons a year drawn (multinomial, seeded) from the joint
distribution of sex, age group and form among the victims of the project's simulator
(``producers.simulate.population``), over ``--years`` years. Every standard stream broken down by
these dimensions (``trust.release.streams``; one per shape) is measured on its own table of the
same persons, made as the release stage makes it: the stream's categories and structural zeros
(``trust.release.aggregate.table_from_counts``), every margin and the total, age groups with
``0-17`` and ``18+`` (``trust.release.disclosure.table.from_count_table``). The largest is
``victims_by_sex_age_form`` (year x sex x age group x form).

With ``--population N`` the counts are instead the simulator's own population of N persons
(``generate``, seeded as the demo seeds it: ``--seed 7 --population 2000`` is the demo's data),
every victim counted once per event in the event's year — the demo's table without the noise of
the agencies' exports and linkage.

Per stream:

- ``secondary``: primary suppression below k (zeros included), then secondary suppression
  (``secondary_suppression``, ending with its audit) — wall and CPU seconds, rounds, widening
  and proof LPs, information loss;
- ``secondary_baseline`` (``--baseline``): the same by the earlier method (``method="cells"``:
  a screen per round, widening LPs over every cell), in the same run;
- ``follow_up`` (``--follow-up N``): N persons added to cells drawn at random (seeded), then the
  next release's secondary suppression three ways: from scratch (``fresh``), starting from the
  first release's whole pattern (``carried``) and from its aggregates still below 2k
  (``carried_below_2k``, what the release stage carries) — CPU seconds, LPs, information loss
  and how many aggregates changed status since the first release;
- ``audit``: the audit of the resulting pattern alone, cold (``audit`` given no hints: the
  release's last check finds the witnesses' tables and solves no LP) — wall and CPU seconds,
  LPs, verdict;
- ``naive_audit``: the plain audit (two LPs over the whole table per suppressed aggregate,
  ``naive_audit``), in full when the table has at most ``--naive-full-below`` suppressed
  aggregates, else on ``--naive-sample`` of them drawn at random (seeded) and **extrapolated**
  (``extrapolated: true``); its verdict is compared with the audit's on what it covers.

With ``--sizes N ...`` it measures instead what one release of the four-way stream costs the
release stage (``protect_margins``, the table to publish from the count table, its last audit
included) over N persons (``--years`` years of N / years persons from the simulator's mix; with
``--population`` also the simulator's own population): the first release, ``--releases``
follow-ups after one more person each (carried below 2k and under the differencing rule, as
the stage runs them) and the first counts given again (``replay_margins``) — CPU seconds, audit
LPs, aggregates published (``releases``).

CPU seconds are this process's (``time.process_time``): on a shared machine they move less with
the load than wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.provenance import code_state, machine, peak_rss_mib
from producers.simulate.population import generate
from schemas.rules import age_group
from trust.release.aggregate import MULTIPLE, CountTable, table_from_counts
from trust.release.disclosure.audit import audit, naive_audit
from trust.release.disclosure.margins import (
    ProtectedMargins,
    carried_pattern,
    protect_margins,
    replay_margins,
)
from trust.release.disclosure.secondary import (
    Method,
    SuppressionPattern,
    primary_mask,
    secondary_suppression,
)
from trust.release.disclosure.table import HierarchicalTable, from_count_table
from trust.release.errors import ReleaseError
from trust.release.history import AggregateKey
from trust.release.streams import STREAMS, StreamSpec

T = TypeVar("T")

#: The simulated persons' dimensions, in this order.
DIMENSIONS = ("year", "sex", "age_group", "form")


def simulated_profile(seed: int) -> Counter[tuple[str, str, str]]:
    """Victims of the simulator by (sex, age group, form), one form cell per person."""
    population = generate(random.Random(f"{seed}:population"), 6000)
    out: Counter[tuple[str, str, str]] = Counter()
    for event in population.events:
        form = event.forms[0] if len(set(event.forms)) == 1 else MULTIPLE
        for v in event.victims:
            out[(v.person.sex, age_group(v.age), form)] += 1
    return out


def simulated_counts(years: int, per_year: int, seed: int) -> Counter[tuple[str, ...]]:
    """Persons by (year, sex, age group, form): ``per_year`` a year from the simulator's mix."""
    profile = simulated_profile(seed)
    keys = sorted(profile)
    p = np.array([profile[k] for k in keys], dtype=np.float64)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    counts: Counter[tuple[str, ...]] = Counter()
    for y in year_codes(years):
        for (sex, age, form), n in zip(keys, rng.multinomial(per_year, p), strict=True):
            if n:
                counts[(y, sex, age, form)] = int(n)
    return counts


def population_counts(persons: int, seed: int) -> Counter[tuple[str, ...]]:
    """The simulator's population of ``persons`` (seeded as ``simulate`` seeds it): every victim
    once per event, by (the event's year, sex, age group, the event's form or ``Multiple``)."""
    population = generate(random.Random(f"{seed}:population"), persons)
    out: Counter[tuple[str, ...]] = Counter()
    for event in population.events:
        form = event.forms[0] if len(set(event.forms)) == 1 else MULTIPLE
        for v in event.victims:
            out[(str(event.year), v.person.sex, age_group(v.age), form)] += 1
    return out


def changed_counts(
    counts: Counter[tuple[str, ...]], persons: int, seed: int
) -> Counter[tuple[str, ...]]:
    """``counts`` with ``persons`` more persons, each in a cell drawn at random among the
    non-empty ones (seeded): the next release after a few records arrived."""
    rng = random.Random(f"{seed}:follow-up")
    keys = sorted(counts)
    out = Counter(counts)
    for _ in range(persons):
        out[rng.choice(keys)] += 1
    return out


def year_codes(years: int) -> tuple[str, ...]:
    return tuple(str(2015 + i) for i in range(years))


def stream_table(spec: StreamSpec, counts: Counter[tuple[str, ...]]) -> HierarchicalTable:
    """The table with margins of stream ``spec`` over the simulated persons, as the release
    stage makes it: the stream's categories and structural zeros (``table_from_counts``), its
    hierarchy (``from_count_table``)."""
    at = [DIMENSIONS.index(d) for d in spec.dimensions]
    classes = spec.classifications()
    cells: Counter[tuple[str, ...]] = Counter()
    for key, n in counts.items():
        cells[tuple(c.category_of(key[i]) for c, i in zip(classes, at, strict=True))] += n
    return from_count_table(table_from_counts(spec, cells))


def timed(f: Callable[[], T]) -> tuple[T, float, float]:
    """``f()``, its wall and CPU seconds."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = f()
    return out, round(time.perf_counter() - w0, 3), round(time.process_time() - c0, 3)


def suppression(
    table: HierarchicalTable,
    k: int,
    method: Method = "classes",
    start: np.ndarray | None = None,
    *,
    audit_start: bool | None = None,
    before: SuppressionPattern | None = None,
) -> tuple[SuppressionPattern, dict[str, Any]]:
    """Secondary suppression of ``table`` timed, and what it gives (``before``: a pattern of
    another table of the same shape, to count aggregates whose status changed)."""
    primary = primary_mask(table, k)
    pattern, wall, cpu = timed(
        lambda: secondary_suppression(
            table, primary, k, method=method, start=start, audit_start=audit_start
        )
    )
    out: dict[str, Any] = {
        "seconds": wall,
        "cpu_seconds": cpu,
        "rounds": pattern.rounds,
        "widening_lps": pattern.widening_lps,
        "proof_lps": pattern.proof_lps,
        "final_audit_lps": pattern.report.lp_solves if pattern.report else None,
        "passed": bool(pattern.report and pattern.report.passed),
        "information_loss": vars(pattern.information_loss()),
    }
    if start is not None:
        out["carried"] = int((start & ~primary).sum())
    if before is not None:
        out["newly_suppressed"] = int((pattern.suppressed & ~before.suppressed).sum())
        out["published_again"] = int((~pattern.suppressed & before.suppressed).sum())
    return pattern, out


def measure(
    table: HierarchicalTable,
    k: int,
    naive_sample: int,
    naive_full_below: int,
    seed: int,
    *,
    baseline: bool = False,
    follow_up: HierarchicalTable | None = None,
) -> dict[str, Any]:
    primary = primary_mask(table, k)
    out: dict[str, Any] = {
        "table": {
            "shape": dict(zip([d.name for d in table.dimensions], table.shape, strict=True)),
            "aggregates": table.size,
            "cells": int(table.is_cell.sum()),
            "constraints": int(table.constraints.shape[0]),
            "persons": int(table.values[table.grand_total]),
            "primary": int(primary.sum()),
            "primary_cells": int((primary & table.is_cell).sum()),
        }
    }
    print(f"{table.stream}: secondary suppression …", file=sys.stderr)
    pattern, out["secondary"] = suppression(table, k)
    if baseline:
        print(f"{table.stream}: secondary suppression, earlier method …", file=sys.stderr)
        _, out["secondary_baseline"] = suppression(table, k, "cells")
        out["secondary_speedup_vs_baseline_cpu"] = round(
            out["secondary_baseline"]["cpu_seconds"] / max(out["secondary"]["cpu_seconds"], 1e-3),
            1,
        )
    if follow_up is not None:
        print(f"{table.stream}: follow-up release …", file=sys.stderr)
        earlier = [table.breakdown(int(i)) for i in np.flatnonzero(pattern.suppressed)]
        runs: dict[str, Any] = {
            "persons_added": int(
                follow_up.values[follow_up.grand_total] - table.values[table.grand_total]
            )
        }
        # as protect_margins runs them: a whole pattern is audited first, a partial one not
        for name, start, first in (
            ("fresh", None, False),
            ("carried", carried_pattern(follow_up, earlier), True),
            ("carried_below_2k", carried_pattern(follow_up, earlier, 2 * k), False),
        ):
            runs[name] = suppression(follow_up, k, start=start, audit_start=first, before=pattern)[
                1
            ]
        out["follow_up"] = runs
    print(f"{table.stream}: audit …", file=sys.stderr)
    # cold: without the tables secondary suppression's witnesses rest on (those settle it without
    # an LP, and an audit of the same pattern later in the process finds them remembered)
    report, wall, cpu = timed(
        lambda: audit(table, pattern.suppressed, k, sensitive=primary, hints=np.zeros((0, 0)))
    )
    out["audit"] = {
        "seconds": wall,
        "cpu_seconds": cpu,
        "lp_solves": report.lp_solves,
        "suppressed_audited": len(report.bounds),
        "passed": report.passed,
    }
    hidden = [b.index for b in report.bounds]
    full = len(hidden) <= naive_full_below
    sample = hidden if full else sorted(random.Random(seed).sample(hidden, naive_sample))
    print(f"{table.stream}: naive audit on {len(sample)} aggregates …", file=sys.stderr)
    naive, wall, cpu = timed(
        lambda: naive_audit(table, pattern.suppressed, k, sensitive=primary, only=sample)
    )
    fast_failing = {f.bounds.index for f in report.findings} & set(sample)
    scale = len(hidden) / max(1, len(sample))
    out["naive_audit"] = {
        "aggregates": len(sample),
        "lp_solves": naive.lp_solves,
        "seconds": wall,
        "cpu_seconds": cpu,
        "seconds_per_lp": round(wall / max(1, naive.lp_solves), 4),
        "seconds_all": round(wall * scale, 1),
        "cpu_seconds_all": round(cpu * scale, 1),
        "extrapolated": not full,
        "same_verdict": {f.bounds.index for f in naive.findings} == fast_failing,
    }
    out["audit_speedup_vs_naive_cpu"] = round(
        out["naive_audit"]["cpu_seconds_all"] / max(out["audit"]["cpu_seconds"], 1e-3), 1
    )
    return out


def count_table(spec: StreamSpec, counts: Counter[tuple[str, ...]]) -> CountTable:
    """The release count table of stream ``spec`` over the simulated persons."""
    at = [DIMENSIONS.index(d) for d in spec.dimensions]
    classes = spec.classifications()
    cells: Counter[tuple[str, ...]] = Counter()
    for key, n in counts.items():
        cells[tuple(c.category_of(key[i]) for c, i in zip(classes, at, strict=True))] += n
    return table_from_counts(spec, cells)


def published(
    history: dict[AggregateKey, set[float]], protected: ProtectedMargins
) -> frozenset[AggregateKey]:
    """Record the values ``protected`` publishes in ``history`` (every exact value published so
    far, per aggregate, as the release stage keeps them); returns the aggregates it hides."""
    for a in protected.table.aggregates:
        if a.value is not None:
            history.setdefault((a.dimensions, a.key), set()).add(float(a.value))
    return frozenset((a.dimensions, a.key) for a in protected.table.aggregates if a.value is None)


def releases(
    spec: StreamSpec, counts: Counter[tuple[str, ...]], k: int, follow_ups: int, seed: int
) -> dict[str, Any]:
    """What a release of ``spec`` costs the release stage (``protect_margins``, everything from
    the count table to the table to publish, its last audit included): the first release, then
    ``follow_ups`` releases each after one more person (carried below 2k against the exact values
    published so far, as the stage runs it), then the first counts again (``replay_margins``, the
    replay rule: the audit alone). CPU seconds each; ``p99`` over the follow-ups is their max."""
    history: dict[AggregateKey, set[float]] = {}

    def publish(protected: ProtectedMargins) -> frozenset[AggregateKey]:
        return published(history, protected)

    first_counts = count_table(spec, counts)
    first, _, first_cpu = timed(lambda: protect_margins(first_counts, k))
    hidden = publish(first)
    guarded = first.guarded
    now = counts
    cpu: list[float] = []
    failed = 0
    for n in range(follow_ups):
        now = changed_counts(now, 1, seed + n)
        table = count_table(spec, now)
        c0 = time.process_time()
        try:
            out = protect_margins(
                table, k, earlier=history, previous=hidden, carry_below=2 * k, guarded=guarded
            )
        except ReleaseError:
            failed += 1
            continue
        cpu.append(round(time.process_time() - c0, 3))
        hidden, guarded = publish(out), out.guarded
    replay, _, replay_cpu = timed(
        lambda: replay_margins(first_counts, k, publish(first), guarded=first.guarded)
    )
    return {
        "persons": int(sum(counts.values())),
        "aggregates": len(first.table.aggregates),
        "first": {
            "cpu_seconds": first_cpu,
            "published": sum(a.value is not None for a in first.table.aggregates),
            "audit_lps": first.report.lp_solves,
        },
        "follow_ups": {
            "releases": len(cpu),
            "refused": failed,
            "cpu_seconds_median": round(float(np.median(cpu)), 3) if cpu else None,
            "cpu_seconds_max": round(max(cpu), 3) if cpu else None,
        },
        "replay": {
            "cpu_seconds": replay_cpu,
            "given_again": replay is not None,
            "audit_lps": None if replay is None else replay.report.lp_solves,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--persons-per-year", type=int, default=1500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--naive-sample", type=int, default=20)
    ap.add_argument("--naive-full-below", type=int, default=400)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--streams", nargs="*", default=None)
    ap.add_argument("--population", type=int, default=None)
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--follow-up", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--releases", type=int, default=5)
    args = ap.parse_args()
    if args.sizes:
        sizes(args)
        return
    if args.population:
        counts = population_counts(args.population, args.seed)
    else:
        counts = simulated_counts(args.years, args.persons_per_year, args.seed)
    later = changed_counts(counts, args.follow_up, args.seed) if args.follow_up else None
    # one table per shape (a stream of the same dimensions as one measured is the same table)
    names: list[str] = []
    for spec in STREAMS.values():
        shapes = {STREAMS[n].dimensions for n in names}
        if set(spec.dimensions) <= set(DIMENSIONS) and spec.dimensions not in shapes:
            names.append(spec.name)
    names = args.streams or names
    out: dict[str, Any] = {
        "benchmark": "disclosure",
        "code": code_state(),
        **machine(),
        "k": args.k,
        "protection": f"symmetric p = k = {args.k}",
        "counts": (
            f"the simulator's population of {args.population} persons (seed {args.seed})"
            if args.population
            else f"{args.years} years of {args.persons_per_year} persons (seed {args.seed})"
        ),
        "streams": {},
    }
    for name in names:
        table = stream_table(STREAMS[name], counts)
        out["streams"][name] = measure(
            table,
            args.k,
            args.naive_sample,
            args.naive_full_below,
            args.seed,
            baseline=args.baseline,
            follow_up=None if later is None else stream_table(STREAMS[name], later),
        )
    out["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    out["peak_rss_mib"] = peak_rss_mib()
    json.dump(out, sys.stdout, indent=2)
    print()


def sizes(args: argparse.Namespace) -> None:
    """``--sizes N ...``: the four-way stream's release cost (:func:`releases`) over N persons
    (``--years`` years of N / years persons each, from the simulator's mix; ``--population``
    makes the first size the simulator's own population instead)."""
    spec = STREAMS[(args.streams or ["victims_by_sex_age_form"])[0]]
    out: dict[str, Any] = {
        "benchmark": "disclosure_release_sizes",
        "code": code_state(),
        **machine(),
        "stream": spec.name,
        "k": args.k,
        "counts": f"{args.years} years from the simulator's mix (seed {args.seed})",
        "sizes": {},
    }
    for n in args.sizes:
        print(f"{spec.name}: {n} persons …", file=sys.stderr)
        counts = simulated_counts(args.years, max(1, n // args.years), args.seed)
        out["sizes"][str(n)] = releases(spec, counts, args.k, args.releases, args.seed)
    if args.population:
        print(f"{spec.name}: the simulator's population of {args.population} …", file=sys.stderr)
        counts = population_counts(args.population, args.seed)
        out["sizes"][f"population_{args.population}"] = releases(
            spec, counts, args.k, args.releases, args.seed
        )
    out["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    out["peak_rss_mib"] = peak_rss_mib()
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
