"""Privacy-preserving (CLK) linkage against plain linkage on the same simulated records.

    .venv/bin/python benchmarks/linkage_clk.py [--sim-persons 2000] [--sim-seed 11] [--balanced]

The simulator's agency exports (read through their own mapping.yaml, as in
``benchmarks/linkage.py``) are linked and deduplicated together three ways in one run:

- ``plain``: ``link_batch`` with the default settings (every column: names, date of birth, sex,
  nationality, document number);
- ``plain_same_fields``: the same with the document number blanked — exactly the information a
  CLK source sends, so the difference to ``clk`` is the cost of the encoding alone;
- ``clk``: every record encoded by :class:`schemas.clk.ClkEncoder` under one key (given name,
  surname, date of birth; sex and nationality as codes), linked by ``link_clk_batch``.

Prints one JSON object: precision, recall, F1, pairs, persons and wall time per mode, the CLK
parameters, and ``f1_gap`` = plain F1 - CLK F1 (the issue's target: at most 0.03).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from benchmarks.linkage import _records, quality, simulator_frames, truth_pairs
from benchmarks.provenance import code_state, machine, peak_rss_mib
from producers.simulate import simulate
from schemas.clk import ClkEncoder, ClkParameters
from trust.linkage.batch import BatchInput, BatchResult, link_batch
from trust.linkage.clk import encode_record, link_clk_batch
from trust.linkage.settings import LinkageSettings

Pair = tuple[str, str]


def _summary(result: BatchResult, truth: set[Pair], seconds: float) -> dict[str, Any]:
    predicted = {(p.id_l, p.id_r) for p in result.pairs}
    return {
        **quality(predicted, truth),
        "seconds": round(seconds, 3),
        "candidate_pairs": result.candidate_pairs,
        "review_pairs": len(result.review),
        "persons": len(result.clustering.persons),
        "model_version": result.linker.model_version,
    }


def run_plain(frames: list[pd.DataFrame], truth: set[Pair], key: bytes) -> dict[str, Any]:
    t0 = time.perf_counter()
    inputs = []
    for k, frame in enumerate(frames):
        records = _records(frame)
        inputs.append(BatchInput(f"input{k}", records, tuple(range(1, len(records) + 1))))
    result = link_batch(inputs, dedupe=True, settings=LinkageSettings(), key=key)
    return _summary(result, truth, time.perf_counter() - t0)


def run_clk(
    frames: list[pd.DataFrame],
    truth: set[Pair],
    key: bytes,
    parameters: ClkParameters,
    clk_key: bytes,
) -> dict[str, Any]:
    """Encoding (the sources' work) is timed apart from linkage (the trust's)."""
    t0 = time.perf_counter()
    encoder = ClkEncoder(clk_key, parameters)
    inputs = [[encode_record(encoder, r) for r in _records(frame)] for frame in frames]
    encode_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = link_clk_batch(inputs, dedupe=True, key=key)
    out = _summary(result, truth, time.perf_counter() - t1)
    out["encode_seconds"] = round(encode_seconds, 3)
    return out


def compare(
    persons: int,
    seed: int,
    parameters: ClkParameters,
    *,
    same_fields: bool = True,
    key: bytes | None = None,
    clk_key: bytes | None = None,
) -> dict[str, Any]:
    """Plain and CLK linkage of one simulated population (the test calls this at a small size
    with fixed keys; by default both keys are fresh random secrets)."""
    with tempfile.TemporaryDirectory() as d:
        simulate(seed, persons, Path(d))
        frames, person = simulator_frames(Path(d))
    truth = truth_pairs([i for f in frames for i in f["id"]], person.__getitem__)
    key = key or os.urandom(32)
    out: dict[str, Any] = {
        "simulated_persons": persons,
        "records": sum(len(f) for f in frames),
        "true_pairs": len(truth),
        "true_persons": len(set(person.values())),
        "clk_parameters": parameters.id,
        "plain": run_plain(frames, truth, key),
    }
    if same_fields:
        blanked = [f.assign(document_number="") for f in frames]
        out["plain_same_fields"] = run_plain(blanked, truth, key)
    out["clk"] = run_clk(frames, truth, key, parameters, clk_key or os.urandom(32))
    out["f1_gap"] = round(out["plain"]["f1"] - out["clk"]["f1"], 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-persons", type=int, default=2000)
    ap.add_argument("--sim-seed", type=int, default=11)
    ap.add_argument("--bits", type=int, default=ClkParameters().bits)
    ap.add_argument("--hashes", type=int, default=ClkParameters().hashes)
    ap.add_argument("--balanced", action="store_true")
    ap.add_argument("--xor-fold", action="store_true")
    args = ap.parse_args()
    parameters = ClkParameters(args.bits, args.hashes, args.balanced, args.xor_fold)
    result: dict[str, Any] = {"benchmark": "linkage_clk", "code": code_state(), **machine()}
    result.update(compare(args.sim_persons, args.sim_seed, parameters))
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
