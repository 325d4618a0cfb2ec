"""The differencing attacker's report over streams of releases, as JSON (for a closing note).

    .venv/bin/python benchmarks/attack.py [--seeds 7] [--persons 60] [--changes 50]
        [--scenarios suppression,mixed,four_way]

Not a benchmark (nothing is timed but the run's seconds, for information): it runs the tests'
trust (``tests/trust/release/scenario.py``: synthetic persons added one to three at a time, case
records retracted, persons merged through linkage, a release check after every change) once per
seed and scenario, feeds every check's releases to the attacker (``tests/trust/release/
attacker.py``: one LP per check over all streams the consumer holds, and every pair of checks
compared) and prints, per run: releases, release checks, changes by kind, LP solves, findings by
kind (``pinned``: a suppressed aggregate bounded to an interval narrower than k; ``small_change``:
an aggregate known exactly at two checks that changed by 1 .. k-1), per stream (method, releases,
aggregates published exactly, perturbed or suppressed), and for rounded and perturbed values the
widths of the attacker's intervals and of their changes. Scenarios: ``suppression`` — the three
two-way streams with margins under suppression only (``test_differencing.py``); ``mixed`` —
year x sex exact beside year x sex rounded down, year x age group under cell-key perturbation and
year x form under random rounding (``test_differencing_noise.py``). No value of any release is
printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import code_state, machine
from tests.trust.release.attacker import Attacker
from tests.trust.release.scenario import Trust, run
from trust.release.streams import (
    VICTIMS_BY_SEX_AGE_FORM,
    VICTIMS_BY_YEAR_AGE_GROUP,
    VICTIMS_BY_YEAR_FORM,
    VICTIMS_BY_YEAR_SEX,
    StreamSpec,
)
from trust.store.eventstore import open_store

SCENARIOS: dict[str, tuple[StreamSpec, ...]] = {
    "suppression": (VICTIMS_BY_YEAR_SEX, VICTIMS_BY_YEAR_AGE_GROUP, VICTIMS_BY_YEAR_FORM),
    "mixed": (
        VICTIMS_BY_YEAR_SEX,
        dataclasses.replace(VICTIMS_BY_YEAR_SEX, name="year_sex_rounded_down", method="round_down"),
        dataclasses.replace(VICTIMS_BY_YEAR_AGE_GROUP, name="year_age_cell_key", method="cell_key"),
        dataclasses.replace(
            VICTIMS_BY_YEAR_FORM, name="year_form_random_rounding", method="random_rounding"
        ),
    ),
    # the four-way table with every margin beside a two-way stream sharing its year margin
    "four_way": (VICTIMS_BY_SEX_AGE_FORM, VICTIMS_BY_YEAR_SEX),
}


def attack(specs: tuple[StreamSpec, ...], seed: int, persons: int, changes: int) -> dict[str, Any]:
    """One run of the scenario under ``seed``, and the attacker's report on it."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'store.db'}")
        try:
            result = run(
                Trust(store, {s.name: s for s in specs}, seed=seed),
                persons=persons,
                changes=changes,
            )
        finally:
            store.close()
    k = specs[0].k
    attacker = Attacker(k)
    for check in result.checks:
        attacker.observe(check)
    report = attacker.report()
    return {
        "seed": seed,
        "release_checks": len(result.checks),
        "changes": dict(sorted(result.steps.items())),
        **report,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="7", help="comma-separated seeds (one run each)")
    p.add_argument("--persons", type=int, default=60)
    p.add_argument("--changes", type=int, default=50)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = p.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {}
    totals: dict[str, Counter[str]] = {}
    for name in args.scenarios.split(","):
        specs = SCENARIOS[name]
        for seed in (int(s) for s in args.seeds.split(",")):
            print(f"{name} seed {seed}", file=sys.stderr, flush=True)
            out = attack(specs, seed, args.persons, args.changes)
            runs.setdefault(name, []).append(out)
            total = totals.setdefault(name, Counter())
            total.update(
                runs=1, releases=out["releases"], release_checks=out["release_checks"],
                lp_solves=out["lp_solves"], **out["changes"],
                **{f"findings_{kind}": n for kind, n in out["findings"].items()},
            )  # fmt: skip
    print(
        json.dumps(
            {
                "code": code_state(),
                "machine": machine(),
                "totals": {name: dict(c) for name, c in totals.items()},
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
