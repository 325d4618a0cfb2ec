"""k-anonymous synthetic microdata: utility, leaks and time of every mode beside pac-synth. JSON out.

    .venv/bin/python benchmarks/synthesize.py [--sizes 20000,100000] [--ks 5,10,20] [--length 4]
        [--simulated 20000] [--modes default,pairs,classic] [--no-peer] [--bound-max-rows 20000]

Datasets: a generated 7-attribute categorical table (sex, age group, citizenship with a long tail,
form, industry only for forced labour, means of control, region; sex → form → industry and
form → age, form → means of control; a few missing cells) at each of ``--sizes``, and the victims of
the simulator's hidden population (``producers.simulate``; 8 attributes). Per dataset and ``k``:

- ``default``, ``pairs`` and ``classic`` (the modes of ``--modes``; ``rounding`` there is the
  default mode's fallback without a fit, the default mode before the fit): the report of the
  issue (per length 1 … ``--length``: mean absolute and relative error over the sensitive
  combinations held by ≥ k rows, the share of them present), ``mre_le2`` (the relative error
  pooled over lengths 1 and 2, the target's measure), expansion, seconds (wall) and
  ``cpu_seconds`` (this process's CPU time, steadier on a shared machine), the checker's leaks by
  length and single counts that are not the rounded-down ones;
- ``pacsynth``: the DP aggregate-seeded synthesiser (pac-synth, default parameters; it does not
  take k, so it runs once per dataset) scored the same way; its ``leaks`` are the distinct
  combinations, of any length, present in its output but held by fewer than k sensitive rows;
- ``bound_mre_le2`` (datasets up to ``--bound-max-rows`` rows): a lower bound on ``mre_le2`` for
  *any* synthesiser whose rows are all held by ≥ k sensitive rows and whose single counts are the
  rounded-down ones — the optimum of the linear-programming relaxation (HiGHS) over counts of every
  such row. It is the floor of this measure, measured in the same run (the ``pairs`` mode's fit
  solves the same programme over fewer columns; the default mode's weighs triples too). Interior
  point method: about 5 s to 2 minutes per ``k`` at 10^5 rows, so ``--bound-max-rows 100000`` is
  practical.

``summary`` has one line per dataset, ``k`` and mode, with the errors of lengths 3 and 4 beside
``mre_le2``; for the default mode on the generated data, whether it meets each of the issue's
targets (no leak, exact rounded-down single counts, ``mre_le2`` and seconds at that size), and,
where the floor was measured, whether the ``mre_le2`` target can be met at all by any
synthesiser keeping the promises (the floor at or below it).

The generator's citizenship tail (80 countries, Zipf exponent 1.6) was set so that the classic
mode reproduces the issue's reference run of the classic algorithm at 2·10⁴ rows and k = 10
(mean relative error of lengths ≤ 2 about 0.65, about two thirds more rows).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import scipy.sparse as sparse
from rich.console import Console
from rich.progress import Progress, TaskID
from scipy.optimize import linprog

from benchmarks.provenance import code_state, machine, peak_rss_mib
from producers.simulate.population import generate as simulate_population
from schemas.rules import age_group
from trust.synthesize import Table, UtilityReport, check, length_utility, synthesize
from trust.synthesize.combinations import sub_combinations
from trust.synthesize.default import synthesize_default

MRE_TARGET = {"20000": 0.49, "100000": 0.35}
SECONDS_TARGET = {"20000": 9.9, "100000": 21.0}
TARGETS: dict[str, Any] = {
    "leaks": 0,
    "mre_le2_max": MRE_TARGET,
    "seconds_max": SECONDS_TARGET,
    "seconds_goal": {"20000": 1.8},
}

SEX = ("Female", "Male", "NonConforming")
SEX_P = (0.58, 0.405, 0.015)
AGES = ("0-8", "9-17", "18-20", "21-23", "24-26", "27-29", "30-38", "39-47", "48+")
FORMS = (
    "SexualExploitation",
    "ForcedLabour",
    "DomesticServitude",
    "ForcedMarriage",
    "ForcedCriminality",
    "OrganRemoval",
    "Other",
)
FORM_GIVEN_SEX = (
    (0.55, 0.22, 0.11, 0.06, 0.04, 0.005, 0.015),
    (0.07, 0.66, 0.05, 0.01, 0.18, 0.01, 0.02),
    (0.50, 0.30, 0.05, 0.02, 0.10, 0.00, 0.03),
)
INDUSTRIES = (
    "Agriculture",
    "Construction",
    "Manufacturing",
    "Fishing",
    "Hospitality",
    "DomesticWork",
    "Mining",
    "Retail",
    "CarWash",
    "NailBar",
    "Transport",
)
INDUSTRY_GIVEN_SEX = (
    (0.15, 0.02, 0.18, 0.01, 0.18, 0.25, 0.01, 0.06, 0.01, 0.12, 0.01),
    (0.25, 0.22, 0.12, 0.08, 0.08, 0.03, 0.06, 0.03, 0.08, 0.01, 0.04),
    (0.2, 0.1, 0.15, 0.05, 0.2, 0.1, 0.02, 0.08, 0.03, 0.05, 0.02),
)
CONTROLS = (
    "PsychologicalAbuse",
    "Threats",
    "DebtBondage",
    "RestrictsMovement",
    "TakesEarnings",
    "PhysicalAbuse",
    "SexualAbuse",
    "FalsePromises",
    "WithholdsDocuments",
    "DrugsAlcohol",
    "ExcessiveHours",
)
REGIONS = (
    "North",
    "NorthEast",
    "NorthWest",
    "Yorkshire",
    "EastMidlands",
    "WestMidlands",
    "East",
    "London",
    "SouthEast",
    "SouthWest",
    "Wales",
    "Scotland",
    "NorthernIreland",
)
REGION_P = (0.03, 0.04, 0.11, 0.09, 0.07, 0.1, 0.08, 0.22, 0.1, 0.05, 0.04, 0.05, 0.02)
AGE_GIVEN_FORM = (
    (0.01, 0.14, 0.2, 0.18, 0.15, 0.11, 0.15, 0.05, 0.01),
    (0.01, 0.05, 0.08, 0.1, 0.12, 0.12, 0.28, 0.16, 0.08),
    (0.02, 0.1, 0.08, 0.1, 0.1, 0.1, 0.25, 0.15, 0.1),
    (0.0, 0.3, 0.35, 0.18, 0.08, 0.04, 0.04, 0.01, 0.0),
    (0.02, 0.35, 0.2, 0.12, 0.09, 0.07, 0.1, 0.04, 0.01),
    (0.0, 0.02, 0.1, 0.15, 0.15, 0.15, 0.25, 0.13, 0.05),
    (0.02, 0.1, 0.1, 0.12, 0.12, 0.12, 0.22, 0.12, 0.08),
)
CONTROL_GIVEN_FORM = (
    (0.2, 0.15, 0.1, 0.1, 0.1, 0.1, 0.12, 0.05, 0.03, 0.04, 0.01),
    (0.12, 0.1, 0.15, 0.08, 0.18, 0.06, 0.01, 0.12, 0.1, 0.01, 0.07),
    (0.15, 0.1, 0.05, 0.2, 0.1, 0.1, 0.05, 0.05, 0.12, 0.01, 0.07),
    (0.25, 0.2, 0.02, 0.2, 0.02, 0.1, 0.15, 0.02, 0.02, 0.01, 0.01),
    (0.15, 0.2, 0.15, 0.05, 0.1, 0.1, 0.02, 0.08, 0.05, 0.08, 0.02),
    (0.2, 0.2, 0.2, 0.1, 0.05, 0.1, 0.0, 0.1, 0.05, 0.0, 0.0),
    (0.15, 0.15, 0.1, 0.1, 0.1, 0.1, 0.05, 0.1, 0.05, 0.05, 0.05),
)
COUNTRIES = 80
ZIPF = 1.6


def _pick(rng: np.random.Generator, n: int, p: tuple[float, ...] | np.ndarray) -> np.ndarray:
    weights = np.asarray(p, dtype=np.float64)
    return rng.choice(len(weights), size=n, p=weights / weights.sum())


def generated(rows: int, seed: int) -> Table:
    """The 7-attribute categorical dataset of the issue (see the module docstring)."""
    rng = np.random.default_rng(seed)
    sex = _pick(rng, rows, SEX_P)
    form = np.zeros(rows, dtype=np.int64)
    industry = np.full(rows, -1, dtype=np.int64)
    for s in range(len(SEX)):
        held = sex == s
        form[held] = _pick(rng, int(held.sum()), FORM_GIVEN_SEX[s])
        labour = held & (form == FORMS.index("ForcedLabour"))
        industry[labour] = _pick(rng, int(labour.sum()), INDUSTRY_GIVEN_SEX[s])
    age = np.zeros(rows, dtype=np.int64)
    control = np.zeros(rows, dtype=np.int64)
    for f in range(len(FORMS)):
        held = form == f
        age[held] = _pick(rng, int(held.sum()), AGE_GIVEN_FORM[f])
        control[held] = _pick(rng, int(held.sum()), CONTROL_GIVEN_FORM[f])
    citizenship = _pick(rng, rows, 1.0 / np.arange(1, COUNTRIES + 1) ** ZIPF)
    region = _pick(rng, rows, REGION_P)
    missing = rng.random((rows, 3))
    countries = [f"C{i:03d}" for i in range(COUNTRIES)]
    out = [
        (
            SEX[sex[i]],
            AGES[age[i]] if missing[i, 0] > 0.04 else "",
            countries[citizenship[i]] if missing[i, 1] > 0.03 else "",
            FORMS[form[i]],
            INDUSTRIES[industry[i]] if industry[i] >= 0 else "",
            CONTROLS[control[i]] if missing[i, 2] > 0.1 else "",
            REGIONS[region[i]],
        )
        for i in range(rows)
    ]
    columns = ("sex", "age_group", "citizenship", "form", "industry", "means_of_control", "region")
    return Table.from_rows(columns, out)


def simulated(persons: int, seed: int) -> Table:
    """One row per victim of each event of the simulator's hidden population."""
    population = simulate_population(random.Random(f"{seed}:population"), persons)
    rows = []
    for e in population.events:
        for v in e.victims:
            rows.append(
                (
                    v.person.sex,
                    age_group(v.age),
                    v.person.citizenship,
                    e.forms[0],
                    "" if e.industry == "Unknown" else e.industry,
                    e.country,
                    e.methods_of_control[0] if e.methods_of_control else "",
                    e.method_of_recruitment,
                )
            )
    columns = (
        "sex",
        "age_group",
        "citizenship",
        "form",
        "industry",
        "country_of_exploitation",
        "means_of_control",
        "recruitment",
    )
    return Table.from_rows(columns, rows)


def score(
    sensitive: Table,
    synthetic: Table,
    k: int,
    length: int,
    mode: str,
    seconds: float,
    cpu_seconds: float | None = None,
) -> dict[str, Any]:
    verdict = check(
        sensitive.columns, list(sensitive.rows()), synthetic.columns, list(synthetic.rows()), k
    )
    report = UtilityReport(
        k=k,
        length=length,
        mode=mode,
        seconds=seconds,
        rows_in=sensitive.n_rows,
        rows_out=synthetic.n_rows,
        leaks=verdict.leaks,
        lengths=length_utility(sensitive, synthetic, k, length),
    )
    cpu = {} if cpu_seconds is None else {"cpu_seconds": round(cpu_seconds, 3)}
    return {
        **report.to_json(),
        **cpu,
        "mre_le2": round(report.mre_up_to(2), 4),
        "leaks_by_length": {str(n): c for n, c in verdict.leaks_by_length.items()},
        "single_count_mismatches": verdict.single_count_mismatches,
    }


def peer(sensitive: Table) -> tuple[Table, float] | None:
    """pac-synth's output on ``sensitive`` (its default parameters), or None if not installed."""
    try:
        import pacsynth
    except ImportError:
        return None
    raw = [list(sensitive.columns), *(list(r) for r in sensitive.rows())]
    started = time.perf_counter()
    synthesizer = pacsynth.DpAggregateSeededSynthesizer(
        pacsynth.DpAggregateSeededParametersBuilder().build()
    )
    synthesizer.fit(pacsynth.Dataset(raw))
    out = synthesizer.sample()
    seconds = time.perf_counter() - started
    # encode with the sensitive vocabulary, so the two tables are compared value for value
    index = [{v: c for c, v in enumerate(vocab, start=1)} for vocab in sensitive.vocab]
    header = list(out[0])
    order = [header.index(c) for c in sensitive.columns]
    codes = np.array(
        [[index[j].get(row[order[j]].strip(), 0) for j in range(len(order))] for row in out[1:]],
        dtype=np.int32,
    ).reshape(-1, sensitive.n_columns)
    return sensitive.with_codes(codes), seconds


def bound_mre_le2(sensitive: Table, k: int) -> float:
    """The LP-relaxation optimum of ``mre_le2`` over every synthetic table made of rows held by ≥ k
    sensitive rows, with single counts rounded down to multiples of k (a lower bound). Built
    column-pair by column-pair (no loop over kinds) and solved by HiGHS's interior point method
    with crossover (the simplex takes minutes at 10^5 rows)."""
    sub = sub_combinations(sensitive)
    m = sensitive.n_columns
    held = sub.support >= k
    held[:, 0] = False
    p, mask = np.nonzero(held)
    keys, first = np.unique(sub.key[p, mask], return_index=True)
    rows_p, rows_m = p[first], mask[first]
    width = np.array([bin(x).count("1") for x in range(1 << m)])
    singles = np.flatnonzero(width[rows_m] == 1)
    pairs = np.flatnonzero(width[rows_m] == 2)
    # the constraint rows are the single and pair kinds; kind t counts in the row of each of its
    # sub-combinations on one or two columns
    row_keys = np.concatenate([keys[singles], keys[pairs]])
    by_key = np.argsort(row_keys)
    r_parts: list[np.ndarray] = []
    c_parts: list[np.ndarray] = []
    for a in range(m):
        for b in range(a, m):
            sub_mask = (1 << a) | (1 << b)
            holding = np.flatnonzero((rows_m & sub_mask) == sub_mask)
            found = np.searchsorted(row_keys, sub.key[rows_p[holding], sub_mask], sorter=by_key)
            r_parts.append(by_key[found])
            c_parts.append(holding)
    r = np.concatenate(r_parts)
    c = np.concatenate(c_parts)
    n_s, n_p, n_t = len(singles), len(pairs), len(keys)
    a_rows = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_s + n_p, n_t))
    slack = sparse.vstack([sparse.csr_matrix((n_s, n_p)), sparse.identity(n_p)])
    count_s = sub.support[rows_p[singles], rows_m[singles]].astype(np.float64)
    count_p = sub.support[rows_p[pairs], rows_m[pairs]].astype(np.float64)
    result = linprog(
        np.concatenate([np.zeros(n_t), 1.0 / count_p, 1.0 / count_p]),
        A_eq=sparse.hstack([a_rows, -slack, slack]).tocsr(),
        b_eq=np.concatenate([count_s - count_s % k, count_p]),
        bounds=(0, None),
        method="highs-ipm",
    )
    single_err = float(((count_s % k) / count_s).sum())
    return round((single_err + float(result.fun)) / (n_s + n_p), 4)


def run_dataset(
    name: str,
    table: Table,
    ks: list[int],
    length: int,
    modes: list[str],
    with_peer: bool,
    with_bound: bool,
    tick: Callable[[str], None],
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "dataset": name,
        "rows": table.n_rows,
        "columns": table.n_columns,
        "runs": [],
    }
    peer_out = None
    if with_peer:
        tick(f"{name}: pac-synth")
        peer_out = peer(table)
        if peer_out is None:
            result["pacsynth"] = "not installed (scripts/setup.sh bench)"
    for k in ks:
        run: dict[str, Any] = {"k": k}
        for mode in modes:
            tick(f"{name}: {mode}, k={k}")
            started, cpu_started = time.perf_counter(), time.process_time()
            if mode == "rounding":  # the default mode without its fit (its fallback)
                synthetic = synthesize_default(table, k, seed=k, fit="rounding")
            else:
                synthetic = synthesize(table, k, mode, seed=k)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            run[mode] = score(table, synthetic, k, length, mode, seconds, cpu)
        if peer_out is not None:
            run["pacsynth"] = score(table, peer_out[0], k, length, "pacsynth", peer_out[1])
        if with_bound:
            tick(f"{name}: bound, k={k}")
            run["bound_mre_le2"] = bound_mre_le2(table, k)
        result["runs"].append(run)
    return result


def summary(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per dataset, k and mode; the issue's targets checked for the default mode."""
    rows = []
    for d in datasets:
        size = str(d["rows"]) if d["dataset"] == "generated" else None
        for run in d["runs"]:
            for mode in ("default", "pairs", "rounding", "classic", "pacsynth"):
                if mode not in run:
                    continue
                r = run[mode]
                line = {
                    "dataset": d["dataset"],
                    "rows": d["rows"],
                    "k": run["k"],
                    "mode": mode,
                    "mre_le2": r["mre_le2"],
                    "mre_by_length": {n: u["mre"] for n, u in r["lengths"].items()},
                    "leaks": r["leaks"],
                    "seconds": r["seconds"],
                    "cpu_seconds": r.get("cpu_seconds"),
                    "expansion": r["expansion"],
                }
                if "bound_mre_le2" in run:
                    line["bound_mre_le2"] = run["bound_mre_le2"]
                if mode == "default" and size in MRE_TARGET:
                    line["meets_leak_target"] = r["leaks"] == 0
                    line["meets_single_count_target"] = r["single_count_mismatches"] == 0
                    line["meets_mre_target"] = r["mre_le2"] <= MRE_TARGET[size]
                    line["meets_time_target"] = r["seconds"] <= SECONDS_TARGET[size]
                    if "bound_mre_le2" in run:
                        line["mre_target_reachable"] = run["bound_mre_le2"] <= MRE_TARGET[size]
                rows.append(line)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--ks", default="5,10,20")
    ap.add_argument("--length", type=int, default=4)
    ap.add_argument("--simulated", type=int, default=20000, help="persons (0: skip)")
    ap.add_argument("--modes", default="default,pairs,classic")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--bound-max-rows", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    ks = [int(s) for s in args.ks.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    tables: list[tuple[str, int]] = [("generated", n) for n in sizes]
    if args.simulated:
        tables.append(("simulated", args.simulated))
    steps = len(tables) * (len(ks) * (len(modes) + 1) + 1)
    datasets = []
    with Progress(console=Console(stderr=True)) as progress:
        task: TaskID = progress.add_task("synthesize", total=steps)

        def tick(what: str) -> None:
            progress.update(task, advance=1, description=what)

        for name, size in tables:
            table = (
                generated(size, args.seed) if name == "generated" else simulated(size, args.seed)
            )
            datasets.append(
                run_dataset(
                    name,
                    table,
                    ks,
                    args.length,
                    modes,
                    not args.no_peer,
                    table.n_rows <= args.bound_max_rows,
                    tick,
                )
            )
    result = {
        "benchmark": "synthesize",
        "code": code_state(),
        **machine(),
        "targets": TARGETS,
        "summary": summary(datasets),
        "datasets": datasets,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
