"""Linkage accuracy as the store grows: persons against the truth, pairwise quality, and the
review queue, at several simulated sizes, through the trust's real path.

    .venv/bin/python benchmarks/linkage_scale.py [--seed 7] [--sizes 2000,10000,20000]

Per size (simulated population, as ``tiptrust demo --persons``): the simulator's exports are
mapped, sealed and appended as ingest does, and linked by the trust's resolver in pages of 1,000
events (:mod:`benchmarks.linkage_incremental`'s ``Trust``). Printed per size, as one JSON
document: persons after linkage against the true distinct persons, pairwise precision / recall /
F1 of the person clusters, open reviews (and per true person), and ``decisions`` — why each
record went where it went, counted from the resolver's own decision step (observed, not
re-implemented):

- ``joined`` / ``new_person`` / ``shared_identifier``;
- ``bridge``: several candidate persons each joinable (a provisional join and a review), split by
  whether the joinable persons hold one true person (``same_truth``: an earlier missed link) or
  several (``namesakes``), and whether the provisional choice was right;
- ``review_only``: no person joinable, but one at or above the lower threshold (``between``) or
  with support overruled by records below the conflict threshold (``conflicted``);
- ``candidates`` per record (records compared, persons met): how blocking grows with the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.linkage import quality
from benchmarks.linkage_incremental import (
    Trust,
    _error_pct,
    _record_id,
    cluster_pairs,
    console,
    fresh_store,
    purity,
    simulated_arrivals,
)
from benchmarks.provenance import code_state, machine, peak_rss_mib
from trust.linkage import resolver as resolver_module
from trust.linkage.resolver import Key
from trust.store.events import LinkDecision, PairEvidence


class DecisionLog:
    """Counts the resolver's decisions against the truth, by wrapping its decision step."""

    def __init__(self, true_person: Mapping[Key, str]) -> None:
        self.truth = true_person
        self.counts: Counter[str] = Counter()
        self.pool: list[int] = []
        self.persons_met: list[int] = []
        self.best_levels: Counter[str] = Counter()
        self.pairs: list[tuple[float, bool, tuple[int, ...]]] = []  # (p, true match, levels)
        self.keep_pairs = False
        # per decision: (kind, [(max probability, holds the truth, best pair's levels)] per person)
        self.decisions: list[tuple[str, list[tuple[float, bool, tuple[int, ...]]]]] = []

    def observe(
        self,
        run: Any,
        key: Key,
        by_person: Mapping[str, list[PairEvidence]],
        joins: Sequence[str],
        reviews: Sequence[str],
        join_decision: str,
        lean: str | None = None,
    ) -> None:
        c = self.counts
        mine = self.truth.get(key)
        settings = run.settings

        def truths(person: str) -> set[str]:
            return {self.truth.get(k, "?") for k in run.members.get(person, ())}

        if self.keep_pairs:
            for evidence in by_person.values():
                for e in evidence:
                    same = self.truth.get(e.other.key()) == mine
                    self.pairs.append((e.probability, same, tuple(e.levels.values())))
        if self.keep_pairs:
            kind = (
                "joined"
                if len(joins) == 1
                else "bridge"
                if joins
                else "review_lean"
                if lean
                else "review"
                if reviews
                else "new"
            )
            self.decisions.append(
                (
                    kind,
                    [
                        (top.probability, mine in truths(p), tuple(top.levels.values()))
                        for p, ev in by_person.items()
                        for top in [max(ev, key=lambda e: e.probability)]
                    ],
                )
            )
        self.pool.append(sum(len(v) for v in by_person.values()))
        self.persons_met.append(len(by_person))
        true_cands = [p for p in by_person if mine in truths(p)]
        if join_decision == LinkDecision.SHARED_IDENTIFIER:
            c["shared_identifier"] += 1
            return
        if len(joins) == 1:
            c["joined"] += 1
            c["joined_right" if mine in truths(joins[0]) else "joined_wrong"] += 1
            if reviews:
                c["joined_with_other_close"] += 1
            return
        if len(joins) > 1:
            c["bridge"] += 1
            held = [truths(p) for p in joins]
            tops = {next(iter(t)) for t in held if len(t) == 1}
            if len(tops) == 1 and all(len(t) == 1 for t in held):
                c["bridge_same_truth"] += 1  # the persons are pieces of one true person
            else:
                c["bridge_namesakes"] += 1
            right = sum(1 for p in joins if mine in truths(p))
            c[f"bridge_true_among_joinable_{min(right, 2)}"] += 1
            best = min(
                joins,
                key=lambda p: (
                    -max(e.probability for e in by_person[p]),
                    min(e.other.key() for e in by_person[p]),
                ),
            )
            c[
                "bridge_provisional_right" if mine in truths(best) else "bridge_provisional_wrong"
            ] += 1
            c[f"bridge_joinable_{min(len(joins), 4)}"] += 1
            for p in joins:
                top = max(by_person[p], key=lambda e: e.probability)
                if mine not in truths(p):
                    for name, level in top.levels.items():
                        self.best_levels[f"{name}={level}"] += 1
            return
        if reviews and lean is not None:
            c["review_provisional"] += 1
            c[
                "review_provisional_right" if mine in truths(lean) else "review_provisional_wrong"
            ] += 1
        elif reviews:
            c["review_only"] += 1
            conflicted = any(
                any(e.probability >= settings.upper for e in by_person[p]) for p in reviews
            )
            c["review_conflicted" if conflicted else "review_between"] += 1
            c["review_truth_among" if true_cands else "review_truth_absent"] += 1
            return
        c["new_person"] += 1
        c["new_person_truth_existed" if true_cands else "new_person_truth_absent"] += 1


_LOGS: list[DecisionLog] = []  # the log decisions are counted in (the last one)


def instrument(log: DecisionLog) -> None:
    """Wrap the resolver's decision step (once) so every decision is counted in ``log``."""
    wrapped = bool(_LOGS)
    _LOGS.append(log)
    if wrapped:
        return
    original = resolver_module._Run._decide

    def _decide(
        self: Any,
        op: Any,
        by_person: Mapping[str, list[PairEvidence]],
        joins: Sequence[str],
        reviews: Sequence[str],
        join_decision: str,
        scored: Sequence[PairEvidence] = (),
        **kw: Any,
    ) -> None:
        _LOGS[-1].observe(self, op.key, by_person, joins, reviews, join_decision, kw.get("lean"))
        original(self, op, by_person, joins, reviews, join_decision, scored, **kw)

    resolver_module._Run._decide = _decide  # type: ignore[method-assign,assignment]


def _pct(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {
        "mean": round(float(a.mean()), 2),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": int(a.max()),
    }


def calibration(pairs: Sequence[tuple[float, bool, tuple[int, ...]]]) -> list[dict[str, Any]]:
    """Scored pairs by probability band: how many, and the share that truly match."""
    edges = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97, 0.99, 0.999, 1.0 + 1e-9)
    out = []
    for lo, hi in itertools.pairwise(edges):
        band = [same for p, same, _ in pairs if lo <= p < hi]
        if band:
            out.append(
                {
                    "p": f"[{lo}, {min(hi, 1.0)})",
                    "pairs": len(band),
                    "match_share": round(sum(band) / len(band), 3),
                }
            )
    return out


def one_size(
    seed: int, persons: int, page: int, dump: str | None = None, **settings: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tiptrust-sim-") as d:
        console.print(f"[bold]{persons}[/bold]: simulating")
        sim = simulated_arrivals(seed, persons, Path(d))
    true_person: dict[Key, str] = {
        k: t for a in sim.arrivals for k, t in zip(a.keys(), a.truth, strict=True)
    }
    truth_pairs = cluster_pairs({_record_id(k): t for k, t in true_person.items()})
    true_persons = len(set(true_person.values()))
    log = DecisionLog(true_person)
    log.keep_pairs = True
    instrument(log)
    with fresh_store(None) as (store, _):
        trust = Trust(store)
        if settings:  # thresholds other than the defaults, to compare
            linker = trust.resolver.linker
            linker.settings = dataclasses.replace(linker.settings, **settings)  # type: ignore[arg-type]
        console.print(f"[bold]{persons}[/bold]: linking {len(true_person)} records")
        trust.append(sim.arrivals)
        t0 = time.process_time()
        trust.link(page=page)
        cpu = time.process_time() - t0
        placed = {_record_id(k): p for k, p in trust.placements().items()}
        found = trust.persons()
        reviews = trust.open_reviews()
    by_id = {_record_id(k): t for k, t in true_person.items()}
    out = {
        "simulated_persons": persons,
        "records": len(true_person),
        "true_persons": true_persons,
        "persons": found,
        "persons_error_pct": _error_pct(found, true_persons),
        **quality(cluster_pairs(placed), truth_pairs),
        **purity(placed, by_id),
        "open_reviews": reviews,
        "open_reviews_per_1000_true_persons": round(1000 * reviews / true_persons, 1),
        "link_cpu_s": round(cpu, 1),
        "link_cpu_ms_per_record": round(1000 * cpu / max(len(true_person), 1), 2),
        "decisions": dict(sorted(log.counts.items())),
        "records_compared": _pct(log.pool),
        "persons_met": _pct(log.persons_met),
        "wrong_bridge_best_levels": dict(log.best_levels.most_common(25)),
        "calibration": calibration(log.pairs),
    }
    if dump:
        import pickle

        with open(f"{dump}.{persons}.pkl", "wb") as f:
            pickle.dump({"pairs": log.pairs, "decisions": log.decisions}, f)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sizes", default="2000,10000,20000")
    ap.add_argument("--page", type=int, default=1000)
    ap.add_argument("--join-share", type=float, default=None)
    ap.add_argument("--review-share", type=float, default=None)
    ap.add_argument("--dump", default=None, help="write the scored pairs here (pickle per size)")
    args = ap.parse_args()
    overrides = {
        k: v
        for k, v in (("join_share", args.join_share), ("review_share", args.review_share))
        if v is not None
    }
    result: dict[str, Any] = {
        "benchmark": "linkage_scale",
        "settings": overrides,
        "code": code_state(),
        **machine(),
    }
    result["sizes"] = [
        one_size(args.seed, int(s), args.page, args.dump, **overrides)
        for s in args.sizes.split(",")
        if s.strip()
    ]
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
