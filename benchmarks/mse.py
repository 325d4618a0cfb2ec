"""Multiple-systems estimation against a population whose size is known. JSON out.

    .venv/bin/python benchmarks/mse.py [--runs 200] [--persons 2000] [--lists 5]
        [--bootstrap-runs 100] [--replicates 200] [--seed 1]

- ``dependent``: ``--runs`` seeded populations of ``--persons`` persons and ``--lists`` lists
  whose dependence two-list terms can express (the NRM list mostly takes persons the police
  saw, P(nrm | police) = 0.55 against 0.06 otherwise; a labour inspectorate leans on NGO
  referrals the same way). Per rule: bias, relative RMSE, the share of 95 % intervals holding the
  truth (a run without an estimate never counts as covered) and the runs without one. The peer
  is the same data under main effects only (lists assumed independent), which must cover worse.
- ``bootstrap``: the BCa interval (1 selection per replicate) on ``--bootstrap-runs`` of them.
- ``nested``: the same populations plus a court list that only sees persons the police saw.
- ``simulator``: the project's default simulation (``producers.simulate``), where the court is
  nested in the police list: what the estimator does with it, against the true population.
- ``timing``: seconds per estimate (selection + profile interval) for 3 to 8 lists, and a
  bootstrap of 1,000 replicates on 6 lists; targets ≤ 1 s and ≤ 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from rich.console import Console
from rich.progress import Progress

from benchmarks.provenance import code_state, machine
from producers.simulate.agencies import SOURCES, detect
from producers.simulate.population import generate
from trust.estimate import (
    CaptureHistories,
    Criterion,
    PopulationEstimate,
    Search,
    SelectionRule,
    estimate_population,
    from_persons,
)

# list name, P(on the list), and for a dependent list: (the list it leans on, P if on it)
LISTS: tuple[tuple[str, float, tuple[str, float] | None], ...] = (
    ("police", 0.15, None),
    ("nrm", 0.06, ("police", 0.55)),
    ("ngo", 0.12, None),
    ("labour", 0.05, ("ngo", 0.35)),
    ("health", 0.08, None),
    ("hotline", 0.07, None),
    ("consulate", 0.06, None),
    ("shelter", 0.09, None),
)
RULES: dict[str, tuple[SelectionRule | None, list[str] | None]] = {
    "bic": (SelectionRule(Criterion.BIC), None),
    "aic_p05": (SelectionRule(Criterion.AIC, Search.GREEDY, threshold=0.05), None),
    "pvalue_0.02": (SelectionRule(Criterion.PVALUE), None),
    "independent_peer": (None, []),  # main effects only: the lists' dependence ignored
}


def dependent_population(
    rng: np.random.Generator, persons: int, t: int, court: bool = False
) -> CaptureHistories:
    """Each person's lists drawn in order; a dependent list's probability rises if its parent
    list holds the person. With ``court``, a last list draws only from the police list."""
    names = [name for name, _, _ in LISTS[:t]]
    on: dict[str, np.ndarray] = {}
    for name, p, parent in LISTS[:t]:
        prob = np.full(persons, p)
        if parent is not None and parent[0] in on:
            prob = np.where(on[parent[0]], parent[1], p)
        on[name] = rng.random(persons) < prob
    if court:
        names.append("court")
        on["court"] = on["police"] & (rng.random(persons) < 0.4)
    codes = sum(on[n].astype(np.int64) << i for i, n in enumerate(names))
    cells = np.bincount(np.asarray(codes), minlength=2 ** len(names))[1:]
    return CaptureHistories(tuple(names), tuple(int(c) for c in cells))


def _run(h: CaptureHistories, name: str, **kw: Any) -> PopulationEstimate:
    rule, model = RULES[name]
    return estimate_population(h, rule, model=model, **kw)


def summarise(results: list[PopulationEstimate], truth: list[int]) -> dict[str, Any]:
    """Bias, RMSE and coverage against the truth; a missing estimate never counts as covered."""
    got = [(r, n) for r, n in zip(results, truth, strict=True) if r.estimate is not None]
    covered = sum(
        1
        for r, n in got
        if r.ci_low is not None and r.ci_low <= n and (r.ci_high is None or n <= r.ci_high)
    )
    rel = [(r.estimate - n) / n for r, n in got if r.estimate is not None]
    widths = [
        (r.ci_high - r.ci_low) / n for r, n in got if r.ci_high is not None and r.ci_low is not None
    ]
    return {
        "runs": len(results),
        "no_estimate": len(results) - len(got),
        "coverage_95": round(covered / len(results), 4),
        "mean_relative_bias": round(statistics.fmean(rel), 4) if rel else None,
        "relative_rmse": round(float(np.sqrt(np.mean(np.square(rel)))), 4) if rel else None,
        "median_relative_width": round(statistics.median(widths), 4) if widths else None,
        "unbounded_intervals": sum(1 for r, _ in got if r.ci_high is None),
        "mean_seconds": round(statistics.fmean(r.seconds for r in results), 4),
        "models_chosen": dict(
            Counter(" + ".join(r.model) or "main" for r, _ in got).most_common(3)
        ),
    }


def dependent(args: argparse.Namespace, tick: Callable[[], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"persons": args.persons, "lists": [n for n, _, _ in LISTS[: args.lists]]}
    per_rule: dict[str, list[PopulationEstimate]] = {name: [] for name in RULES}
    truth = []
    for run in range(args.runs):
        rng = np.random.default_rng([args.seed, run])
        h = dependent_population(rng, args.persons, args.lists)
        truth.append(args.persons)
        for name in RULES:
            per_rule[name].append(_run(h, name))
        tick()
    if truth:
        out["observed_mean"] = round(statistics.fmean(r.observed for r in per_rule["bic"]), 1)
        out["profile"] = {name: summarise(res, truth) for name, res in per_rule.items()}
    boot: list[PopulationEstimate] = []
    for run in range(args.bootstrap_runs):
        rng = np.random.default_rng([args.seed, run])
        h = dependent_population(rng, args.persons, args.lists)
        boot.append(
            estimate_population(
                h, SelectionRule(Criterion.PVALUE), bootstrap=args.replicates, seed=run
            )
        )
        tick()
    if boot:
        out["bootstrap_bca_pvalue_0.02"] = {
            "replicates": args.replicates,
            **summarise(boot, [args.persons] * len(boot)),
            "mean_distinct_models_per_run": round(
                statistics.fmean(b.bootstrap.distinct_models for b in boot if b.bootstrap), 2
            ),
        }
    return out


def nested(args: argparse.Namespace, tick: Callable[[], None]) -> dict[str, Any]:
    merged, kept, truth = [], [], []
    for run in range(args.nested_runs):
        rng = np.random.default_rng([args.seed, 10_000 + run])
        h = dependent_population(rng, args.persons, args.lists, court=True)
        merged.append(estimate_population(h))
        kept.append(estimate_population(h, merge_nested=False))
        truth.append(args.persons)
        tick()
    return {
        "what": "a court list drawn only from persons on the police list, beside the lists above",
        "merge_nested (default)": {
            "merged": sorted({f"{a} into {b}" for r in merged for a, b in r.merged}),
            **summarise(merged, truth),
        },
        "keep_nested": summarise(kept, truth),
    }


def simulator(args: argparse.Namespace, tick: Callable[[], None]) -> dict[str, Any]:
    runs = []
    for seed in range(args.simulator_runs):
        population = generate(random.Random(f"{seed}:population"), args.persons)
        detections = detect(random.Random(f"{seed}:detection"), population)
        on: dict[str, set[str]] = {}
        for source, found in detections.items():
            for d in found:
                for v in d.victims:
                    on.setdefault(v.person.person_id, set()).add(source)
        h = from_persons(on.values(), SOURCES)
        truth = len(population.persons)
        row: dict[str, Any] = {"seed": seed, "truth": truth, "observed": h.observed}
        for label, kw in (("merge_nested", {}), ("keep_nested", {"merge_nested": False})):
            e = estimate_population(h, **kw)  # type: ignore[arg-type]
            row[label] = {
                "exists": e.exists,
                "estimate": None if e.estimate is None else round(e.estimate),
                "ci": None
                if e.ci_low is None
                else [round(e.ci_low), e.ci_high and round(e.ci_high)],
                "covered": bool(
                    e.ci_low is not None
                    and e.ci_low <= truth
                    and (e.ci_high is None or truth <= e.ci_high)
                ),
                "model": list(e.model),
                "merged": [f"{a} into {b}" for a, b in e.merged],
                "reason": e.reason,
            }
        runs.append(row)
        tick()
    return {
        "what": "producers.simulate defaults: five agencies, the court only sees police cases, "
        "NGO and NRM coverage depend on sex and age (heterogeneity), events span seven years",
        "sources": list(SOURCES),
        "runs": runs,
    }


def timing(args: argparse.Namespace, tick: Callable[[], None]) -> dict[str, Any]:
    per_lists: dict[str, Any] = {}
    for t in range(3, 9):
        row = {}
        for name in ("bic", "pvalue_0.02"):
            seconds = []
            for rep in range(args.timing_repeats):
                h = dependent_population(
                    np.random.default_rng([args.seed, 50_000 + rep]), args.persons, t
                )
                started = time.perf_counter()
                _run(h, name)
                seconds.append(time.perf_counter() - started)
            row[name] = {
                "median_s": round(statistics.median(seconds), 4),
                "max_s": round(max(seconds), 4),
            }
        per_lists[str(t)] = row
        tick()
    h6 = dependent_population(np.random.default_rng([args.seed, 60_000]), args.persons, 6)
    boot = {}
    for name, rule in (
        ("pvalue_0.02", SelectionRule(Criterion.PVALUE)),
        ("bic_greedy", SelectionRule()),
    ):
        started = time.perf_counter()
        e = estimate_population(h6, rule, bootstrap=1000, seed=1)
        boot[name] = {
            "seconds": round(time.perf_counter() - started, 2),
            "distinct_models": e.bootstrap.distinct_models if e.bootstrap else None,
            "failed": e.bootstrap.failed if e.bootstrap else None,
        }
        tick()
    return {
        "per_estimate_by_lists": per_lists,
        "target_per_estimate_s": 1.0,
        "bootstrap_1000_six_lists": boot,
        "target_bootstrap_s": 60.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--persons", type=int, default=2000)
    ap.add_argument("--lists", type=int, default=5, choices=range(3, 9))
    ap.add_argument("--bootstrap-runs", type=int, default=100)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--nested-runs", type=int, default=50)
    ap.add_argument("--simulator-runs", type=int, default=5)
    ap.add_argument("--timing-repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    console = Console(stderr=True)
    total = (
        (args.runs + args.bootstrap_runs if "dependent" not in skip else 0)
        + (args.nested_runs if "nested" not in skip else 0)
        + (args.simulator_runs if "simulator" not in skip else 0)
        + (8 if "timing" not in skip else 0)
    )
    result: dict[str, Any] = {
        "benchmark": "mse",
        "code": code_state(),
        **machine(),
        "seed": args.seed,
    }
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("mse benchmark", total=total)

        def tick() -> None:
            progress.advance(task)

        parts: dict[str, Callable[[argparse.Namespace, Callable[[], None]], dict[str, Any]]] = {
            "dependent": dependent,
            "nested": nested,
            "simulator": simulator,
            "timing": timing,
        }
        for name, part in parts.items():
            if name not in skip:
                started = time.perf_counter()
                result[name] = {
                    **part(args, tick),
                    "part_seconds": round(time.perf_counter() - started, 1),
                }
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
