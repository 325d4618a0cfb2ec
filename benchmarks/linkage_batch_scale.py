"""Batch linkage at scale: ``tiptrust link batch`` on 10^4 … 10^6 generated records, with a truth.

    .venv/bin/python benchmarks/linkage_batch_scale.py [--sizes 10000,100000,1000000] [--seed 1]
        [--keep DIR] [--timeout S] [--block-cap 50]
    .venv/bin/python benchmarks/linkage_batch_scale.py --generate 1000000 --out DIR

``--block-cap N`` passes the command's ``--block-cap N`` (a key's block over N records joined
through its refinements, as the trust's linker looks records up).

The simulator (``producers/simulate``) needs over an hour for a million records, so this makes
batch-format CSVs directly, in the spirit of FEBRL's generator: persons drawn first, then one to
five records of each, every record corrupted independently. Persons take their nationality,
name group and name pools from the simulator (its citizenship weights, plus the home country);
each pool is widened by recombining the halves of its names (``Kowa`` + ``lenko``), so that a
million persons are not all namesakes, and names are drawn with Zipf-like frequencies (the
simulator's own names the commonest). Dates of birth span ages 11 to 60; six in ten persons
hold a document. Corruptions per record: a known romanisation variant (the simulator's
``VARIANTS``), diacritics dropped, one keying error, given name and surname swapped, a surname
missing, a date of birth missing, reduced to its year or month, day and month swapped or one
digit mistyped, sex or nationality missing, the document left out or mistyped. Deterministic
from the seed; the truth (``id,person``) goes to its own file.

Each size runs ``tiptrust link batch --dedupe`` in a fresh child process; printed as JSON: wall
seconds, the child's CPU seconds (user + system) and peak RSS (``os.wait4``), the pairs written,
precision / recall / F1 of those same-person pairs against the truth, and the target beside them
(Splink 5, tuned, links 10^6 records in 343 s within 9.8 GB).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.provenance import code_state, machine
from producers.simulate.noise import VARIANTS, ascii_fold
from producers.simulate.population import CITIZENSHIPS, HOME, NAME_GROUP, NAMES

ROOT = Path(__file__).resolve().parents[1]
TARGET: dict[str, Any] = {
    "seconds": 343.0,
    "peak_rss_gib": 9.8,
    "records": 1_000_000,
    "by": "Splink 5, tuned",
}
COLUMNS = ("id", "given_name", "surname", "date_of_birth", "sex", "nationality", "document_number")
RECORDS_PER_PERSON = (1, 2, 3, 4, 5)
RECORDS_WEIGHTS = (0.55, 0.25, 0.11, 0.06, 0.03)
HOME_WEIGHT = 60.0  # the home country's share against the foreign citizenships' weights (100)
ZIPF = 1.1  # name frequency ~ 1 / rank**ZIPF within a pool
DOCUMENT_LETTERS = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"))
NEIGHBOURS = {
    "a": "sq", "e": "wr", "i": "uo", "o": "ip", "n": "bm", "m": "n", "r": "et", "s": "ad",
    "t": "ry", "u": "yi", "l": "k", "h": "gj", "d": "sf", "k": "jl", "y": "tu",
}  # fmt: skip
# per record: probability of each corruption
RATES = {
    "variant": 0.25,  # of names with a known romanisation variant
    "ascii": 0.3,
    "typo_given": 0.04,
    "typo_surname": 0.04,
    "swap_names": 0.03,
    "no_surname": 0.04,
    "no_given": 0.01,
    "no_birth": 0.12,
    "year_only": 0.04,
    "year_month": 0.03,
    "day_month": 0.03,
    "digit": 0.02,
    "no_sex": 0.05,
    "no_nationality": 0.06,
    "drop_document": 0.4,
    "typo_document": 0.03,
}


def widened_pool(names: Sequence[str]) -> list[str]:
    """The pool's names first, then each name's first half joined to another's second half
    (distinct, in a fixed order): a pool of k names becomes about k**2, in the pool's style."""
    out = list(dict.fromkeys(names))
    seen = set(out)
    singles = [n for n in names if " " not in n and "-" not in n and len(n) >= 4]
    heads = [n[: (len(n) + 1) // 2] for n in singles]
    tails = [n[(len(n) + 1) // 2 :] for n in singles]
    for i, head in enumerate(heads):
        for j, tail in enumerate(tails):
            if i != j:
                name = head + tail.lower()
                if name not in seen:
                    seen.add(name)
                    out.append(name)
    return out


def _zipf(n: int) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** ZIPF
    out: np.ndarray = w / w.sum()
    return out


def _typo(rng: np.random.Generator, text: str) -> str:
    """One keying error: swapped, dropped, doubled or neighbouring letter."""
    if len(text) < 3:
        return text
    i = int(rng.integers(1, len(text) - 1))
    kind = int(rng.integers(4))
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    neighbours = NEIGHBOURS.get(text[i].lower())
    if kind == 2 or not neighbours:
        return text[:i] + text[i] + text[i:]
    return text[:i] + neighbours[int(rng.integers(len(neighbours)))] + text[i + 1 :]


def _has_diacritics(text: str) -> bool:
    return unicodedata.normalize("NFKD", text) != text or ascii_fold(text) != text


def generate(records: int, seed: int, out: Path) -> dict[str, Any]:
    """Write ``out/records.csv`` (batch format) and ``out/truth.csv`` (``id,person``)."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    countries = [HOME, *CITIZENSHIPS]
    weights = np.array([HOME_WEIGHT, *(w for w, _ in CITIZENSHIPS.values())], dtype=np.float64)
    pools: dict[str, tuple[list[str], list[str], list[str]]] = {}
    for group, (women, men, families) in NAMES.items():
        pools[group] = (widened_pool(women), widened_pool(men), widened_pool(families))

    mean = float(np.dot(RECORDS_PER_PERSON, RECORDS_WEIGHTS))
    persons = int(records / mean * 1.25) + 16  # more than enough: cut at ``records`` below
    per_person = rng.choice(RECORDS_PER_PERSON, size=persons, p=RECORDS_WEIGHTS)
    cumulative = np.cumsum(per_person)
    persons = int(np.searchsorted(cumulative, records)) + 1
    per_person = per_person[:persons]
    per_person[-1] -= int(cumulative[persons - 1]) - records

    country = rng.choice(len(countries), size=persons, p=weights / weights.sum())
    u = rng.random(persons)
    sex = np.where(u < 0.55, 0, np.where(u < 0.985, 1, 2))  # F, M, X
    given = np.empty(persons, dtype=object)
    surname = np.empty(persons, dtype=object)
    for c, code in enumerate(countries):
        female, male, surnames = pools[NAME_GROUP[code]]
        for code_of_sex, pool in ((0, female), (1, male), (2, [*female, *male])):
            at = np.flatnonzero((country == c) & (sex == code_of_sex))
            given[at] = np.array(pool, dtype=object)[
                rng.choice(len(pool), len(at), p=_zipf(len(pool)))
            ]
        at = np.flatnonzero(country == c)
        surname[at] = np.array(surnames, dtype=object)[
            rng.choice(len(surnames), len(at), p=_zipf(len(surnames)))
        ]
    # birth: ages 11 to 60 at 2025, a uniform day of the year (28-day February: always valid)
    year = 2025 - rng.integers(11, 61, size=persons)
    month = rng.integers(1, 13, size=persons)
    day = rng.integers(1, 29, size=persons)
    has_document = rng.random(persons) < 0.6
    document = np.char.add(
        DOCUMENT_LETTERS[rng.integers(0, len(DOCUMENT_LETTERS), persons)],
        rng.integers(1_000_000, 10_000_000, persons).astype(str),
    )

    # records: person index per record, shuffled
    person = np.repeat(np.arange(persons), per_person)
    person = person[rng.permutation(len(person))]
    n = len(person)
    draws = {k: rng.random(n) < p for k, p in RATES.items()}
    sex_codes = np.array(["F", "M", "X"], dtype=object)
    out.mkdir(parents=True, exist_ok=True)
    with (
        (out / "records.csv").open("w", newline="", encoding="utf-8") as f,
        (out / "truth.csv").open("w", newline="", encoding="utf-8") as t,
    ):
        w = csv.writer(f)
        tw = csv.writer(t)
        w.writerow(COLUMNS)
        tw.writerow(("id", "person"))
        for r in range(n):
            p = int(person[r])
            g, s = str(given[p]), str(surname[p])
            if draws["variant"][r] and g in VARIANTS:
                options = VARIANTS[g]
                g = options[int(rng.integers(len(options)))]
            if draws["variant"][r] and s in VARIANTS:
                options = VARIANTS[s]
                s = options[int(rng.integers(len(options)))]
            if draws["ascii"][r]:
                g, s = ascii_fold(g), ascii_fold(s)
            if draws["typo_given"][r]:
                g = _typo(rng, g)
            if draws["typo_surname"][r]:
                s = _typo(rng, s)
            if draws["no_surname"][r]:
                s = ""
            elif draws["no_given"][r]:
                g = ""
            if draws["swap_names"][r]:
                g, s = s, g
            y, m, d = int(year[p]), int(month[p]), int(day[p])
            if draws["no_birth"][r]:
                birth = ""
            elif draws["year_only"][r]:
                birth = f"{y:04d}"
            elif draws["year_month"][r]:
                birth = f"{y:04d}-{m:02d}"
            else:
                if draws["day_month"][r] and d <= 12 and d != m:
                    m, d = d, m
                elif draws["digit"][r]:
                    if rng.random() < 0.5:
                        y = y - y % 10 + int(rng.integers(10))
                    else:
                        d = (
                            d - d % 10 + int(rng.integers(1, 10))
                            if d >= 10
                            else int(rng.integers(1, 10))
                        )
                birth = f"{y:04d}-{m:02d}-{d:02d}"
            doc = ""
            if has_document[p] and not draws["drop_document"][r]:
                doc = str(document[p])
                if draws["typo_document"][r]:
                    i = int(rng.integers(1, len(doc)))
                    doc = doc[:i] + str(int(rng.integers(10))) + doc[i + 1 :]
            w.writerow(
                (
                    f"r{r:07d}",
                    g,
                    s,
                    birth,
                    "" if draws["no_sex"][r] else sex_codes[sex[p]],
                    "" if draws["no_nationality"][r] else countries[country[p]],
                    doc,
                )
            )
            tw.writerow((f"r{r:07d}", f"p{p:07d}"))
    return {
        "records": n,
        "persons": persons,
        "seed": seed,
        "generate_s": round(time.perf_counter() - t0, 1),
    }


def truth_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Record index pairs (as sorted int64 codes ``a * n + b``) of each true person, and the
    person index per record."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str)
    rec = frame["id"].str[1:].astype(np.int64).to_numpy()
    per = frame["person"].str[1:].astype(np.int64).to_numpy()
    person = np.empty(len(rec), dtype=np.int64)
    person[rec] = per
    return _pair_codes_within(person), person


def _pair_codes_within(label: np.ndarray) -> np.ndarray:
    n = len(label)
    order = np.argsort(label, kind="stable")
    sorted_label = label[order]
    starts = np.flatnonzero(np.r_[True, sorted_label[1:] != sorted_label[:-1]])
    sizes = np.diff(np.r_[starts, n])
    codes: list[np.ndarray] = []
    for size in np.unique(sizes[sizes > 1]):
        block = order[starts[sizes == size, None] + np.arange(size)]
        a, b = np.triu_indices(size, 1)
        lo = np.minimum(block[:, a], block[:, b]).ravel()
        hi = np.maximum(block[:, a], block[:, b]).ravel()
        codes.append(lo * n + hi)
    return np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)


def score(pairs_csv: Path, truth: np.ndarray, n: int) -> dict[str, Any]:
    import pandas as pd

    frame = pd.read_csv(pairs_csv, dtype=str)
    a = frame["id_l"].str[1:].astype(np.int64).to_numpy()
    b = frame["id_r"].str[1:].astype(np.int64).to_numpy()
    predicted = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    tp = len(np.intersect1d(predicted, truth, assume_unique=True))
    precision = tp / len(predicted) if len(predicted) else 0.0
    recall = tp / len(truth) if len(truth) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "pairs": len(predicted),
        "true_pairs": len(truth),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def run_child(argv: list[str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``argv``; its wall seconds, CPU seconds and peak RSS (from ``wait4``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "stdout": stdout.strip()[-300:],
        "stderr": stderr.strip()[-600:] if proc.returncode else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--generate", type=int, default=None, help="only write this many records")
    ap.add_argument("--out", type=Path, default=None, help="with --generate: where")
    ap.add_argument("--keep", type=Path, default=None, help="keep generated data here")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per child run")
    ap.add_argument(
        "--block-cap",
        type=int,
        default=None,
        help="the command's --block-cap: a key's block over N records joined through its "
        "refinements",
    )
    args = ap.parse_args()
    if args.generate is not None:
        print(json.dumps(generate(args.generate, args.seed, args.out or Path("."))))
        return
    result: dict[str, Any] = {
        "benchmark": "linkage_batch_scale",
        "target": TARGET,
        "block_cap": args.block_cap,
        "code": code_state(),
        **machine(),
        "sizes": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            data = base / f"n{size}"
            if not (data / "records.csv").exists() or not (data / "truth.csv").exists():
                made = generate(size, args.seed, data)
            else:
                made = {"records": size, "seed": args.seed, "reused": True}
            truth, _ = truth_pairs(data / "truth.csv")
            out = data / "pairs.csv"
            argv = [
                str(ROOT / ".venv/bin/tiptrust"),
                "link",
                "batch",
                "--input",
                str(data / "records.csv"),
                "--dedupe",
                "--out",
                str(out),
                *([] if args.block_cap is None else ["--block-cap", str(args.block_cap)]),
            ]
            run = run_child(argv, args.timeout)
            entry: dict[str, Any] = {"size": size, "data": made, "tiptrust": run}
            if run["exit"] == 0:
                entry["tiptrust"].update(score(out, truth, size))
            if size == TARGET["records"]:
                entry["meets_target"] = (
                    run["exit"] == 0
                    and run["wall_s"] <= TARGET["seconds"]
                    and run["peak_rss_mib"] <= TARGET["peak_rss_gib"] * 1024
                )
            result["sizes"].append(entry)
            print(json.dumps(entry), file=sys.stderr)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
