"""Secondary suppression and the LP audit on the largest standard table, beside the naive LP. JSON.

    .venv/bin/python benchmarks/disclosure.py [--years 10] [--persons-per-year 1500] [--k 10]
        [--naive-sample 20] [--seed 11]

The table: year (``--years``) x sex x age group (with ``0-17`` and ``18+``) x form, every code of
the release code lists (``trust.release.aggregate``), with every margin and the total
(``trust.release.disclosure.table``). Counts: ``--persons-per-year`` persons a year drawn
(multinomial, seeded) from the joint distribution of sex, age group and form among the victims
of the project's simulator (``producers.simulate.population``).

- ``secondary``: primary suppression below k (zeros included), then secondary suppression
  (``secondary_suppression``) — seconds, rounds, widening LPs and the information loss;
- ``audit``: the fast audit of the resulting pattern (``audit``) — seconds, LPs, verdict;
- ``naive_audit``: the plain audit (two LPs over the whole table per suppressed aggregate) timed
  on ``--naive-sample`` suppressed aggregates drawn at random (seeded) and **extrapolated** to all
  of them; its verdict on the sample is compared with the fast audit's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.provenance import code_state
from producers.simulate.population import generate
from schemas.rules import age_group
from trust.release.aggregate import FORMS, MULTIPLE, SEXES
from trust.release.disclosure.audit import audit, naive_audit
from trust.release.disclosure.secondary import primary_mask, secondary_suppression
from trust.release.disclosure.table import (
    AGE_GROUP_HIERARCHY,
    Dimension,
    HierarchicalTable,
    build_table,
)
from trust.release.streams import AGE_GROUPS


def simulated_profile(seed: int) -> Counter[tuple[str, str, str]]:
    """Victims of the simulator by (sex, age group, form), one form cell per person."""
    population = generate(random.Random(f"{seed}:population"), 6000)
    out: Counter[tuple[str, str, str]] = Counter()
    for event in population.events:
        form = event.forms[0] if len(set(event.forms)) == 1 else MULTIPLE
        for v in event.victims:
            out[(v.person.sex, age_group(v.age), form)] += 1
    return out


def largest_table(years: int, per_year: int, seed: int) -> HierarchicalTable:
    profile = simulated_profile(seed)
    keys = sorted(profile)
    p = np.array([profile[k] for k in keys], dtype=np.float64)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    year_codes = tuple(str(2015 + i) for i in range(years))
    counts: dict[tuple[str, ...], int] = {}
    for y in year_codes:
        for (sex, age, form), n in zip(keys, rng.multinomial(per_year, p), strict=True):
            if n:
                counts[(y, sex, age, form)] = int(n)
    dims = (
        Dimension("year", year_codes),
        Dimension("sex", SEXES),
        Dimension("age_group", AGE_GROUPS, AGE_GROUP_HIERARCHY),
        Dimension("form", FORMS),
    )
    return build_table(dims, counts, stream="victims_by_sex_age_form")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--persons-per-year", type=int, default=1500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--naive-sample", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    k = args.k
    table = largest_table(args.years, args.persons_per_year, args.seed)
    primary = primary_mask(table, k)
    out: dict[str, Any] = {
        "benchmark": "disclosure",
        "code": code_state(),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "table": {
            "shape": dict(zip([d.name for d in table.dimensions], table.shape, strict=True)),
            "aggregates": table.size,
            "cells": int(table.is_cell.sum()),
            "constraints": int(table.constraints.shape[0]),
            "persons": int(table.values[table.grand_total]),
            "primary": int(primary.sum()),
            "primary_cells": int((primary & table.is_cell).sum()),
        },
        "k": k,
        "protection": f"symmetric p = k = {k}",
    }
    print("secondary suppression …", file=sys.stderr)
    t0 = time.perf_counter()
    pattern = secondary_suppression(table, primary, k)
    out["secondary"] = {
        "seconds": round(time.perf_counter() - t0, 2),
        "rounds": pattern.rounds,
        "widening_lps": pattern.widening_lps,
        "information_loss": vars(pattern.information_loss()),
    }
    print("fast audit …", file=sys.stderr)
    report = audit(table, pattern.suppressed, k, sensitive=primary)
    out["audit"] = {
        "seconds": report.seconds,
        "lp_solves": report.lp_solves,
        "suppressed_audited": len(report.bounds),
        "passed": report.passed,
    }
    hidden = [b.index for b in report.bounds]
    sample = sorted(random.Random(args.seed).sample(hidden, min(args.naive_sample, len(hidden))))
    print(f"naive audit on {len(sample)} aggregates …", file=sys.stderr)
    naive = naive_audit(table, pattern.suppressed, k, sensitive=primary, only=sample)
    fast_failing = {f.bounds.index for f in report.findings} & set(sample)
    out["naive_audit"] = {
        "sampled_aggregates": len(sample),
        "lp_solves": naive.lp_solves,
        "seconds_sample": naive.seconds,
        "seconds_per_lp": round(naive.seconds / max(1, naive.lp_solves), 4),
        "seconds_extrapolated_to_all": round(naive.seconds / max(1, len(sample)) * len(hidden), 1),
        "extrapolated": True,
        "same_verdict_on_sample": {f.bounds.index for f in naive.findings} == fast_failing,
    }
    out["speedup_vs_naive_extrapolated"] = round(
        out["naive_audit"]["seconds_extrapolated_to_all"] / max(report.seconds, 1e-9), 1
    )
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
