"""Incremental record linkage in the trust, through the real store: accuracy and cost per record.

    .venv/bin/python benchmarks/linkage_incremental.py [--seed 7] [--sim-persons 2000]
        [--sizes 10000,100000] [--grow-budget-s 200] [--sample 200] [--throughput 1000]
        [--store postgresql://…] [--no-peers] [--no-profile] [--no-accuracy]
        [--bulk-seed] [--store-dir DIR]

10^6 persons only when asked (``--sizes 10000,100000,1000000 --grow-budget-s 0``): it simulates
about 2.2 million persons (several GB) and links some 2 million records.

Prints one JSON document (progress goes to stderr). Every victim record takes the trust's own
path: the simulator's agency exports are mapped by each agency's ``mapping.yaml``
(:func:`producers.workflow.read_export`), each case record goes through its Avro round trip (as
ingest decodes it), its identifiers are sealed by the vault (``seal_identifiers``) into a
``RecordAccepted`` appended to the store, and :class:`trust.linkage.resolver.Resolver` — built as
``tiptrust.wiring.resolver`` builds it — is brought up to date with :func:`trust.follow.follow`.
Cases arrive in the order of their recorded date (``reporting_entity.date_recorded``), the
sources interleaved on a day. The store is a SQLite file in a temporary folder, or with
``--store`` a fresh schema of that PostgreSQL database (dropped afterwards).

``accuracy`` — the simulator (``--seed``, ``--sim-persons``), linked incrementally in pages of
1,000 events: persons after linkage against the true distinct persons (``persons_error_pct``;
target within 2 %), pairwise precision / recall / F1 of the person clusters against
``truth.csv``, persons holding several true persons and true persons split, open reviews. Peers on the same victim records (the fields the resolver compares,
one input per source, deduplicated together): tiptrust's batch linker (``link_batch``, via
``benchmarks/linkage.py``) and Splink 5 (the settings of ``benchmarks/linkage.py``'s simulator
run; clustered at tiptrust's upper threshold).

``scale`` — per size N in ``--sizes`` (persons in the store; each size in a fresh process, so its
peak RSS is its own): the simulator is run large enough, its cases are appended and linked in
pages until the store holds the records of N true persons — or until ``--grow-budget-s`` seconds
of linking ran out (``grow.budget_exhausted``; the size is then measured where growth stopped,
``store_true_persons`` says at how many; this keeps the default run near 10 minutes); then

- ``per_record``: each of the next ``--sample`` cases is appended alone and linked by one
  ``follow(store, resolver, page=1)``, timed with ``time.perf_counter`` (the append is not
  timed): latency per event, and per victim record (an event's latency divided by its victims);
- ``page_1000``: the next ``--throughput`` victim records' cases appended at once and linked by
  ``follow(page=1000)``: records per second;
- ``placement_vs_truth`` (a store seeded with the truth, ``--bulk-seed``): where those records
  went — of those whose true person the store holds, the share that joined it (``recall``),
  joined another (``wrong``) or stayed apart (a new person, or a provisional one under review);
  of the others, how many joined a stored person (``merged_in``): linkage's accuracy at the
  store's size, which the simulator's 2,000 persons of ``accuracy`` cannot show. ``by_evidence``
  splits the first by what could place them: a document or complete date of birth their
  person's stored records carry too (``identifier``), a name no other stored person has
  (``unique_name``), or nothing but a name other stored persons share (``namesakes``, with their
  median count). The simulator draws names from small pools (about 60 full names per nationality
  and sex), so at 10^5 persons the last are a large share, and no linker places them with
  confidence. ``pair_calibration``: the pairs each placement kept as evidence (its best ones),
  by match probability, with how often they are the same true person;
- ``profile`` (unless ``--no-profile``): a further sample linked one at a time under cProfile —
  cumulative time per record of the path's stages (``breakdown``) and the functions with the
  most own time (cProfile slows everything: the shares count, not the absolute times);
- at the smallest size (unless ``--no-peers``): Splink 5 trained on the store's records, then
  each of a few sample records matched against them with ``predict_between`` (Splink 5's
  successor of ``find_matches_to_new_records``), timed per record.

``--store-dir DIR`` (SQLite): each size's store, once grown (or seeded), is kept in ``DIR`` with
the vault's key and the arrivals not yet appended; a later run with the same size, seed and mode
measures a copy of it instead of growing it again (``grow`` then repeats the figures of the run
that grew it). The resolver of such a run starts with an empty memory, as after a restart: it
links 1,000 events in one page, untimed, before the timing (``resolver`` says which). A
restarted resolver reads its candidates from the store where the one that grew it had many in
memory: at 10^6, where its memory holds a tenth of the records, that is the common case anyway.
Peers are not run on a kept store.

``targets``: persons within 2 % of the truth; p99 per record <= 5 ms at 10^6 persons (goal 1 ms),
judged only when 10^6 was reached (else shown at the largest size reached); Splink's 2.2 s per
record at 10^6 is the peer figure quoted by issue 15 (not measured at that size here).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import itertools
import json
import logging
import math
import os
import pickle
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from sqlalchemy import func, select

from benchmarks.linkage import COLUMNS, Pair, _nulls, _ordered, _quiet, quality, run_tiptrust
from benchmarks.provenance import code_state, machine, peak_rss_mib
from producers.mapping import Mapping
from producers.readers import InputOptions, open_table
from producers.simulate import simulate
from producers.workflow import read_export
from schemas.codec import WireSchema, default_registry
from tiptrust.wiring import resolver as build_resolver
from trust.follow import follow
from trust.linkage.normalise import fold, normalise_document, parse_date
from trust.linkage.record import LinkRecord
from trust.linkage.resolver import Key, Resolver, link_record
from trust.linkage.settings import LinkageSettings
from trust.store.events import RecordAccepted, RecordLinked
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import link_blocks, proj_link_reviews, proj_person_links
from trust.store.vault import Vault

console = Console(stderr=True)
SPLINK_PEER_S_AT_1E6 = 2.2  # issue 15: Splink scores one new record against 10^6 in 2.2 s
DETECTED_SHARE = 0.5  # the simulator's agencies detect about 54 % of its population (a margin)
APPEND_CHUNK = 1000  # events per append (one transaction, as ingest batches)


# --- the simulator's cases as the trust receives them ----------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One case record of an agency export, as ingest decodes it (Avro bytes, identifiers still
    in), with the true person behind each of its victims."""

    recorded: int  # ordinal of the recorded date (cases without one come last)
    order: float  # position within its source's export (0..1): interleaves sources on a day
    source_id: str
    case_id: str
    avro: bytes
    victim_ids: tuple[str, ...]
    truth: tuple[str, ...]

    def keys(self) -> list[Key]:
        return [(self.source_id, self.case_id, v) for v in self.victim_ids]


@dataclass(frozen=True, slots=True)
class Simulated:
    arrivals: list[Arrival]  # in arrival order
    persons: int  # simulated population
    rows: int
    rows_left_out: int  # rows of cases the mapping withheld (none expected)
    victims_with_mixed_truth: int  # victim records whose rows name different true persons


def _schema() -> WireSchema:
    return default_registry().for_kind("RecordUpsert")


def simulated_arrivals(seed: int, persons: int, out: Path) -> Simulated:
    """Simulate, map every agency export with its own mapping, and order the cases by date."""
    summary = simulate(seed, persons, out)
    with (out / "truth.csv").open(encoding="utf-8", newline="") as f:
        truth = {(r["source"], int(r["row"])): r["true_person_id"] for r in csv.DictReader(f)}
    schema = _schema()
    arrivals: list[Arrival] = []
    left_out = mixed = 0
    for folder in sorted(p for p in out.iterdir() if (p / "mapping.yaml").exists()):
        source = folder.name
        mapping = Mapping.load(folder / "mapping.yaml").for_source(source)
        case_col, victim_col = mapping.case_column, mapping.victim_column
        if case_col is None or victim_col is None:
            raise SystemExit(f"{source}: the benchmark needs case and victim id columns")
        # which (case, victim) each data row is: the truth is per row
        row_truth: dict[tuple[str, str], set[str]] = {}
        table = open_table(folder / "records.csv", InputOptions().over(mapping.input_options))
        for row in table.rows:
            case = (row.values.get(case_col) or "").strip()
            victim = (row.values.get(victim_col) or "").strip()
            row_truth.setdefault((case, victim), set()).add(truth[(source, row.number)])
        export = read_export(source, folder / "records.csv", folder / "mapping.yaml")
        left_out += len({p.row for p in export.problems})
        n = len(export.messages)
        for k, message in enumerate(export.messages):
            datum = message.datum
            avro = schema.encode(datum)
            victims = tuple(str(v["victim_id"]) for v in datum["victims"])
            persons_of = [row_truth[(datum["case_id"], v)] for v in victims]
            mixed += sum(len(p) > 1 for p in persons_of)
            recorded = datum["reporting_entity"].get("date_recorded")
            arrivals.append(
                Arrival(
                    recorded.toordinal() if isinstance(recorded, date) else date.max.toordinal(),
                    k / max(n, 1),
                    source,
                    str(datum["case_id"]),
                    avro,
                    victims,
                    tuple(min(p) for p in persons_of),
                )
            )
    arrivals.sort(key=lambda a: (a.recorded, a.order, a.source_id))
    return Simulated(arrivals, summary.persons, sum(summary.rows.values()), left_out, mixed)


def plain_records(datum: dict[str, Any]) -> list[LinkRecord]:
    """What the resolver compares of each victim (its ``link_record``), from the record in clear
    (identifiers through JSON, as the vault gives them back)."""
    source = datum["reporting_entity"]["source_id"]
    out = []
    for victim in datum["victims"]:
        key = (source, str(datum["case_id"]), str(victim["victim_id"]))
        raw = victim.get("identifiers")
        identifiers = orjson.loads(orjson.dumps(raw)) if raw is not None else {}
        out.append(link_record(key, victim, identifiers, datum))
    return out


# --- the trust: store, vault, resolver -------------------------------------------------------


class Trust:
    """A store with its vault and resolver; appends arrivals as ingest would."""

    def __init__(self, store: EventStore, kek: bytes | None = None) -> None:
        self.store = store
        self.kek = kek or os.urandom(32)
        self.vault = Vault(store.engine, self.kek)
        self.resolver: Resolver = build_resolver(self.vault)
        self.schema = _schema()
        self.offsets: dict[str, int] = {}
        self.plain: list[LinkRecord] = []  # filled when ``keep_plain``
        self.keep_plain = False

    def append(self, arrivals: Sequence[Arrival]) -> None:
        """Seal and append ``arrivals`` in one transaction per chunk (as ingest batches)."""
        for i in range(0, len(arrivals), APPEND_CHUNK):
            chunk = arrivals[i : i + APPEND_CHUNK]
            datums = [self.schema.decode(a.avro) for a in chunk]
            self.vault.prepare(
                self.vault.person_key_id(a.source_id, a.case_id, str(v["victim_id"]))
                for a, d in zip(chunk, datums, strict=True)
                for v in d["victims"]
                if v.get("identifiers") is not None
            )
            now = time.time_ns() // 1_000_000
            items: list[tuple[Sequence[Any], Position | None]] = []
            for a, datum in zip(chunk, datums, strict=True):
                if self.keep_plain:
                    self.plain.extend(plain_records(datum))
                minimised, sealed = self.vault.seal_identifiers(a.source_id, a.case_id, datum)
                event = RecordAccepted(
                    str(uuid.uuid4()), a.source_id, a.case_id, minimised, sealed, now, now
                )
                topic = f"tip.inbound.{a.source_id}"
                offset = self.offsets.get(topic, 0)
                self.offsets[topic] = offset + 1
                items.append(([event], Position(topic, 0, offset)))
            self.store.append_batch(items, "ingest")

    def link(self, page: int = 1000) -> int:
        return follow(self.store, self.resolver, page=page)

    def placements(self) -> dict[Key, str]:
        c = proj_person_links.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(c.source_id, c.case_id, c.victim_id, c.person_id)).all()
        return {(str(s), str(k), str(v)): str(p) for s, k, v, p in rows}

    def open_reviews(self) -> int:
        c = proj_link_reviews.c
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(c.status == "open")).scalar_one())

    def persons(self) -> int:
        c = proj_person_links.c
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count(func.distinct(c.person_id)))).scalar_one())

    def block_sizes(self) -> dict[str, int]:
        """How the index is filled: digests, the largest block, blocks over the size limit and
        over the cap (looked up through their refinements)."""
        c = link_blocks.c
        settings = self.resolver.linker.settings
        limit, cap = settings.max_block_size, settings.block_cap
        sizes = select(c.block_key, func.count().label("n")).group_by(c.block_key).subquery()
        with self.store.engine.connect() as conn:
            digests, largest, over, capped = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.max(sizes.c.n), 0),
                    func.coalesce(func.sum(sa.case((sizes.c.n > limit, 1), else_=0)), 0),
                    func.coalesce(func.sum(sa.case((sizes.c.n > cap, 1), else_=0)), 0),
                )
            ).one()
        return {
            "digests": int(digests),
            "largest": int(largest),
            "over_limit": int(over),
            "over_cap": int(capped),
        }


@contextlib.contextmanager
def fresh_store(url: str | None, template: Path | None = None) -> Iterator[tuple[EventStore, str]]:
    """A new, migrated store: a SQLite file in a temporary folder (a copy of ``template`` when
    given), or a new schema of the PostgreSQL database at ``url`` (dropped afterwards). Yields the
    store and a description."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="tiptrust-linkinc-") as d:
            if template is not None:
                shutil.copyfile(template, Path(d) / "store.db")
            store = open_store(f"sqlite:///{Path(d) / 'store.db'}")
            try:
                yield store, "sqlite (file, WAL, synchronous=FULL)"
            finally:
                store.close()
        return
    from trust.store.db import normalise_url

    base = normalise_url(url)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, hide_parameters=True)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    scoped = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    store = open_store(scoped.render_as_string(hide_password=False))
    try:
        yield store, "postgresql"
    finally:
        store.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _parts(
    arrivals: Sequence[Arrival], persons: int, chunk: int, seen: set[str]
) -> Iterator[list[Arrival]]:
    """``arrivals`` in order, in parts of at most ``chunk``, until they hold the records of
    ``persons`` true persons (``seen`` collects the true persons taken so far)."""
    done = 0
    while done < len(arrivals) and len(seen) < persons:
        part: list[Arrival] = []
        while done < len(arrivals) and len(part) < chunk and len(seen) < persons:
            a = arrivals[done]
            part.append(a)
            seen.update(a.truth)
            done += 1
        yield part


def grow(
    trust: Trust,
    arrivals: Sequence[Arrival],
    persons: int,
    budget_s: float | None,
    label: str,
    chunk: int = 2000,
) -> tuple[int, dict[str, Any]]:
    """Append and link ``arrivals`` in chunks (linked in pages of 1,000 events after each) until
    the store holds the records of ``persons`` true persons, or ``budget_s`` of linking ran out.
    Returns how many arrivals went in, and the growth's figures."""
    append_s = link_s = 0.0
    seen: set[str] = set()
    done = records = 0
    rates: list[float] = []
    with _progress() as progress:
        task = progress.add_task(label, total=persons)
        for part in _parts(arrivals, persons, chunk, seen):
            done += len(part)
            t0 = time.perf_counter()
            trust.append(part)
            t1 = time.perf_counter()
            trust.link(page=1000)
            t2 = time.perf_counter()
            append_s += t1 - t0
            link_s += t2 - t1
            n = sum(len(a.victim_ids) for a in part)
            records += n
            rates.append(n / (t2 - t1))
            progress.update(task, completed=len(seen))
            if budget_s and link_s >= budget_s:
                break
    return done, {
        "events": done,
        "records": records,
        "true_persons": len(seen),
        "budget_exhausted": len(seen) < persons,
        "append_s": round(append_s, 2),
        "link_s": round(link_s, 2),
        "link_records_per_s": round(records / link_s, 1) if link_s else None,
        "link_records_per_s_first_chunk": round(rates[0], 1) if rates else None,
        "link_records_per_s_last_chunk": round(rates[-1], 1) if rates else None,
    }


def seed_bulk(
    trust: Trust, arrivals: Sequence[Arrival], persons: int, label: str, chunk: int = 5000
) -> tuple[int, dict[str, Any]]:
    """Fill the store with the records of ``persons`` true persons without scoring them: each
    true person becomes one person (:meth:`Resolver.seed_with`), its records filed, sealed and
    counted through the resolver's own path (follow, file, events), in pages of 1,000 events.
    What is measured afterwards is the cost of linking new records against a store of that size;
    its accuracy is that of the truth (no linkage errors accumulated while growing)."""
    append_s = seed_s = seed_cpu_s = 0.0
    seen: set[str] = set()
    done = records = 0
    with _progress() as progress:
        task = progress.add_task(label, total=persons)
        for part in _parts(arrivals, persons, chunk, seen):
            done += len(part)
            trust.resolver.seed_with(
                {k: t for a in part for k, t in zip(a.keys(), a.truth, strict=True)}
            )
            t0 = time.perf_counter()
            trust.append(part)
            t1, c1 = time.perf_counter(), time.process_time()
            trust.link(page=1000)
            t2 = time.perf_counter()
            seed_cpu_s += time.process_time() - c1
            append_s += t1 - t0
            seed_s += t2 - t1
            records += sum(len(a.victim_ids) for a in part)
            progress.update(task, completed=len(seen))
    return done, {
        "mode": "seeded with the truth (no scoring while growing)",
        "events": done,
        "records": records,
        "true_persons": len(seen),
        "budget_exhausted": False,
        "append_s": round(append_s, 2),
        "seed_s": round(seed_s, 2),
        "seed_records_per_s": round(records / seed_s, 1) if seed_s else None,
        "seed_cpu_ms_per_record": round(1000 * seed_cpu_s / max(records, 1), 3),
    }


# --- quality ---------------------------------------------------------------------------------


def cluster_pairs(person_of: dict[str, str]) -> set[Pair]:
    groups: dict[str, list[str]] = {}
    for record, person in person_of.items():
        groups.setdefault(person, []).append(record)
    return {_ordered(a, b) for g in groups.values() for k, a in enumerate(g) for b in g[k + 1 :]}


def purity(person_of: dict[str, str], true_person: dict[str, str]) -> dict[str, int]:
    """Persons holding records of several true persons (wrong joins), and true persons spread
    over several persons (missed joins)."""
    truths: dict[str, set[str]] = {}
    found: dict[str, set[str]] = {}
    for record, person in person_of.items():
        truths.setdefault(person, set()).add(true_person[record])
        found.setdefault(true_person[record], set()).add(person)
    return {
        "persons_with_several_true_persons": sum(len(t) > 1 for t in truths.values()),
        "true_persons_split": sum(len(p) > 1 for p in found.values()),
    }


def split_never_met(
    person_of: dict[str, str],
    true_person: dict[str, str],
    records: Sequence[LinkRecord],
    resolver: Resolver,
) -> int:
    """Of the true persons spread over several persons, those whose parts share no blocking key
    (digest) at all: blocking never brought them together, whatever the scores (the rest met and
    were kept apart by their scores or decisions). Digests only: no value leaves here."""
    by_id = {r.id: r for r in records}
    parts: dict[str, dict[str, set[str]]] = {}
    for record, person in person_of.items():
        parts.setdefault(true_person[record], {}).setdefault(person, set()).add(record)
    never = 0
    for found in parts.values():
        if len(found) < 2:
            continue
        keys = [
            {
                k.digest
                for r in group
                if r in by_id
                for k in resolver.linker.candidates_keys(by_id[r])
            }
            for group in found.values()
        ]
        met = any(keys[i] & keys[j] for i in range(len(keys)) for j in range(i + 1, len(keys)))
        never += not met
    return never


def _record_id(key: Key) -> str:
    return json.dumps(list(key))  # as ``link_record`` names a record


def _error_pct(found: int, true: int) -> float:
    return round(100 * (found - true) / true, 2) if true else 0.0


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tiptrust-sim-") as d:
        console.print(f"[bold]accuracy[/bold]: simulating {args.sim_persons} persons")
        sim = simulated_arrivals(args.seed, args.sim_persons, Path(d))
    true_person = {
        _record_id(k): t for a in sim.arrivals for k, t in zip(a.keys(), a.truth, strict=True)
    }
    truth = cluster_pairs(true_person)
    true_persons = len(set(true_person.values()))
    out: dict[str, Any] = {
        "seed": args.seed,
        "simulated_persons": sim.persons,
        "export_rows": sim.rows,
        "rows_withheld_by_mapping": sim.rows_left_out,
        "victims_with_mixed_truth": sim.victims_with_mixed_truth,
        "events": len(sim.arrivals),
        "records": len(true_person),
        "true_persons": true_persons,
        "true_pairs": len(truth),
    }
    with fresh_store(args.store) as (store, backend):
        trust = Trust(store)
        trust.keep_plain = True
        console.print("[bold]accuracy[/bold]: incremental linkage through the store")
        t0 = time.perf_counter()
        trust.append(sim.arrivals)
        t1 = time.perf_counter()
        trust.link(page=1000)
        t2 = time.perf_counter()
        placed = {_record_id(k): p for k, p in trust.placements().items()}
        persons = trust.persons()
        out["store"] = backend
        out["incremental"] = {
            "persons": persons,
            "persons_error_pct": _error_pct(persons, true_persons),
            **quality(cluster_pairs(placed), truth),
            **purity(placed, true_person),
            "true_persons_split_never_met": split_never_met(
                placed, true_person, trust.plain, trust.resolver
            ),
            "records_linked": len(placed),
            "open_reviews": trust.open_reviews(),
            "append_s": round(t1 - t0, 2),
            "link_s": round(t2 - t1, 2),
            "model_version": trust.resolver.model_version,
        }
        plain = list(trust.plain)
    frames = _frames(plain)
    console.print("[bold]accuracy[/bold]: tiptrust link_batch on the same records")
    batch = run_tiptrust(frames, True, truth)
    batch["persons_error_pct"] = _error_pct(int(batch["persons"]), true_persons)
    batch["open_reviews_pairs"] = batch.pop("review_pairs")
    out["batch_tiptrust"] = batch
    if not args.no_peers:
        console.print("[bold]accuracy[/bold]: splink on the same records")
        out["batch_splink"] = _guarded(splink_batch, frames, truth, true_persons)
    return out


def _frames(records: Sequence[LinkRecord]) -> list[pd.DataFrame]:
    """The batch format, one frame per source (ids as ``link_record`` gives them)."""
    by_source: dict[str, list[dict[str, str]]] = {}
    for r in records:
        row = {c: str(getattr(r, c, "") or "") for c in COLUMNS}
        by_source.setdefault(json.loads(r.id)[0], []).append(row)
    return [pd.DataFrame(rows, columns=list(COLUMNS)) for _, rows in sorted(by_source.items())]


# --- Splink 5 --------------------------------------------------------------------------------


def splink_linker(frame: pd.DataFrame) -> tuple[Any, Any, Any]:
    """Splink 5 on DuckDB, trained on ``frame`` (deduplicated) with the settings of
    ``benchmarks/linkage.py``'s simulator run. Returns (linker, db, registered table)."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    db = DuckDBAPI()
    table = db.register(_nulls(frame), table_name="existing")
    rules: list[Any] = [
        block_on("given_name"),
        block_on("surname"),
        block_on("date_of_birth"),
        block_on("document_number"),
        "l.given_name = r.surname and l.surname = r.given_name",
    ]
    settings = SettingsCreator(
        unique_id_column_name="id",
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=rules,
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth",
                input_is_string=True,
                datetime_format="%Y-%m-%d",
                invalid_dates_as_null=True,
            ),
            cl.ExactMatch("sex"),
            cl.ExactMatch("nationality"),
            cl.DamerauLevenshteinAtThresholds("document_number", [1, 2]),
        ],
    )
    linker = Linker(table, settings)
    training = linker.training
    training.estimate_probability_two_random_records_match(
        [block_on("document_number"), block_on("given_name", "surname", "date_of_birth")],
        recall=0.8,
    )
    training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in (block_on("date_of_birth"), block_on("surname")):
        training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    return linker, db, table


def _guarded(run: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """A peer's result, or what stopped it (a peer failing is reported, not fatal). Its log
    (Splink reports training to stderr) is silenced: stderr is for this run's progress."""
    logging.disable(logging.WARNING)
    try:
        with _quiet():
            return run(*args)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        logging.disable(logging.NOTSET)


def splink_batch(frames: list[pd.DataFrame], truth: set[Pair], true_persons: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    frame = pd.concat(frames, ignore_index=True)
    linker, _, _ = splink_linker(frame)
    upper = LinkageSettings().upper
    predictions: Any = linker.inference.predict(threshold_match_probability=0.2)
    pairs = predictions.as_pandas_dataframe()
    clusters: Any = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=upper
    )
    cluster_of = clusters.as_pandas_dataframe()
    seconds = time.perf_counter() - t0
    pairwise = {
        _ordered(str(a), str(b))
        for a, b, p in zip(pairs["id_l"], pairs["id_r"], pairs["match_probability"], strict=True)
        if p >= 0.5
    }
    person_of = {
        str(r): str(c) for r, c in zip(cluster_of["id"], cluster_of["cluster_id"], strict=True)
    }
    persons = len(set(person_of.values()))
    return {
        "seconds": round(seconds, 3),
        "persons": persons,
        "persons_error_pct": _error_pct(persons, true_persons),
        f"clustered_p_ge_{upper}": quality(cluster_pairs(person_of), truth),
        "pairwise_p_ge_0.5": quality(pairwise, truth),
        "open_reviews": None,  # Splink has no review queue
    }


def splink_incremental(existing: Sequence[LinkRecord], new: Sequence[LinkRecord]) -> dict[str, Any]:
    """Splink trained on the store's records, then each new record matched against them alone
    (``predict_between``: register the record, block, score, fetch the pairs)."""
    t0 = time.perf_counter()
    frame = pd.concat(_frames(existing), ignore_index=True)
    linker, db, table = splink_linker(frame)
    for column in ("given_name", "surname"):
        linker.table_management.compute_tf_table(column)
    trained = time.perf_counter() - t0
    times = []
    for k, record in enumerate(new):
        one = pd.concat(_frames([record]), ignore_index=True)
        t = time.perf_counter()
        df = db.register(_nulls(one), table_name=f"new_{k}")
        found: Any = linker.inference.predict_between(
            df, table, threshold_match_probability=0.2, warning_mode="never"
        )
        found.as_pandas_dataframe()
        times.append(time.perf_counter() - t)
    return {
        "existing_records": len(existing),
        "train_s": round(trained, 2),
        "records_timed": len(times),
        **_stats_ms(times, "per_record"),
    }


# --- cost per record at scale ----------------------------------------------------------------


def _stats_ms(seconds: Sequence[float], prefix: str) -> dict[str, float]:
    if not seconds:
        return {}
    ms = np.asarray(seconds) * 1000
    return {
        f"{prefix}_p50_ms": round(float(np.percentile(ms, 50)), 3),
        f"{prefix}_p90_ms": round(float(np.percentile(ms, 90)), 3),
        f"{prefix}_p99_ms": round(float(np.percentile(ms, 99)), 3),
        f"{prefix}_max_ms": round(float(ms.max()), 3),
        f"{prefix}_mean_ms": round(float(ms.mean()), 3),
    }


def one_at_a_time(
    trust: Trust, arrivals: Sequence[Arrival], label: str, cpu: list[float] | None = None
) -> tuple[list[float], int]:
    """Append each arrival alone and time the ``follow`` that links it (page of 1 event): wall
    time, and CPU time (``time.process_time``) into ``cpu`` when given."""
    times: list[float] = []
    records = 0
    with _progress() as progress:
        task = progress.add_task(label, total=len(arrivals))
        for a in arrivals:
            trust.append([a])
            t, c = time.perf_counter(), time.process_time()
            handled = trust.link(page=1)
            times.append(time.perf_counter() - t)
            if cpu is not None:
                cpu.append(time.process_time() - c)
            if handled != 1:
                raise RuntimeError(f"follow handled {handled} events, expected 1")
            records += len(a.victim_ids)
            progress.advance(task)
    return times, records


# Where a record's time goes: (label, file suffix, function) — cumulative time of each, per record.
# Functions of the resolver that a change renames are left out of the breakdown, not faked.
BREAKDOWN: tuple[tuple[str, str, str], ...] = (
    ("follow: all", "trust/follow.py", "follow"),
    ("follow: read the new event (read_types)", "store/eventstore.py", "read_types"),
    (
        "follow: position + transaction (advance_follower)",
        "store/eventstore.py",
        "advance_follower",
    ),
    ("resolver.apply", "linkage/resolver.py", "apply"),
    ("resolver: open the record's identifiers (_ops)", "linkage/resolver.py", "_ops"),
    ("resolver: index lookup and candidates (_prefetch)", "linkage/resolver.py", "_prefetch"),
    ("resolver: load stored records (_load)", "linkage/resolver.py", "_load"),
    (
        "resolver: decrypt candidates' fields (open_features)",
        "linkage/resolver.py",
        "open_features",
    ),
    (
        "resolver: decrypt candidates' fields (open_linkable)",
        "linkage/resolver.py",
        "open_linkable",
    ),
    ("vault: person data key lookups (_data_key)", "store/vault.py", "_data_key"),
    ("normalise fields (record.prepare)", "linkage/record.py", "prepare"),
    ("resolver: decide (_place)", "linkage/resolver.py", "_place"),
    ("resolver: score candidates (_score)", "linkage/resolver.py", "_score"),
    ("resolver: file index rows + sealed fields (_file)", "linkage/resolver.py", "_file"),
    ("decision events + projections (append_in)", "store/eventstore.py", "append_in"),
    ("SQL: execute (all statements)", "engine/base.py", "_execute_context"),
    ("SQLite: commit", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("SQLite: fetch rows", "~", "<method 'fetchone' of 'sqlite3.Cursor' objects>"),
)


def profile_summary(profiler: cProfile.Profile, records: int, top: int = 12) -> dict[str, Any]:
    """cProfile's view of the per-record path: a breakdown by stage (cumulative ms per record)
    and the functions with the most own time."""
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    per = max(records, 1)
    breakdown = []
    for label, suffix, name in BREAKDOWN:
        hits = [
            (v[1], v[3])
            for (filename, _, function), v in raw.items()
            if function == name and (filename == suffix or filename.endswith(suffix))
        ]
        if hits:
            calls = sum(h[0] for h in hits)
            cum = max(h[1] for h in hits)  # the outermost of recursive entries
            breakdown.append(
                {
                    "stage": label,
                    "cum_ms_per_record": round(1000 * cum / per, 3),
                    "calls_per_record": round(calls / per, 2),
                }
            )
    own = []
    for (filename, line, name), (_, calls, tottime, _, _) in raw.items():
        parts = Path(filename).parts
        where = "/".join(parts[-2:]) if len(parts) >= 2 else filename
        own.append((tottime, calls, f"{where}:{line}({name})"))
    own.sort(reverse=True)
    return {
        "records": records,
        "profiled_ms_per_record": round(1000 * total / per, 3),
        "breakdown": breakdown,
        "own_time_top": [
            {
                "function": f,
                "own_ms_per_record": round(1000 * t / per, 3),
                "share_pct": round(100 * t / total, 1) if total else 0.0,
                "calls_per_record": round(n / per, 2),
            }
            for t, n, f in own[:top]
        ],
    }


class SqlCounter:
    """Counts the SQL statements (by their first word and table) and transactions a ``follow``
    sends to the store's engine, while :meth:`counting`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: dict[str, int] = {}
        self.commits = 0
        self._on = False
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if self._on:
            words = sql.split()
            verb = words[0].upper() if words else "?"
            table = next(
                (
                    w.strip('"')
                    for i, w in enumerate(words[1:], 1)
                    if words[i - 1].upper() in ("FROM", "INTO", "UPDATE", "TABLE")
                ),
                "",
            )
            kind = f"{verb} {table}".strip()
            self.statements[kind] = self.statements.get(kind, 0) + 1

    def _commit(self, conn: Any) -> None:
        if self._on:
            self.commits += 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False

    def per_record(self, records: int) -> dict[str, Any]:
        per = max(records, 1)
        return {
            "statements": round(sum(self.statements.values()) / per, 2),
            "commits": round(self.commits / per, 2),
            "by_kind": {
                k: round(n / per, 2)
                for k, n in sorted(self.statements.items(), key=lambda kv: -kv[1])
            },
        }


WARM_EVENTS = 1000  # events a restarted resolver links (in one page, untimed) before the timing


class _StateUnpickler(pickle.Unpickler):
    """Reads a kept state whether this module pickled it as ``__main__`` (run as a script) or
    under its own name (imported by another script)."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("__main__", __name__) and name in ("Arrival", "Evidence"):
            return {"Arrival": Arrival, "Evidence": Evidence}[name]
        return super().find_class(module, name)


@dataclass(frozen=True)
class Kept:
    """A grown store kept in ``--store-dir`` (SQLite only), to measure a size again without
    growing it again (10^6 takes most of an hour): the store file, and beside it the vault's key,
    the log offsets, the growth's figures and the arrivals not yet appended."""

    folder: Path
    size: int
    mode: str
    seed: int

    @property
    def db(self) -> Path:
        return self.folder / f"store-{self.size}-{self.mode}-seed{self.seed}.db"

    @property
    def state(self) -> Path:
        return self.db.with_suffix(".state")

    def exists(self) -> bool:
        return self.db.exists() and self.state.exists()

    def save(
        self,
        trust: Trust,
        grow: dict[str, Any],
        rest: Sequence[Arrival],
        evidence: Evidence | None,
    ) -> None:
        database = trust.store.engine.url.database
        assert database, "only a SQLite store is kept"
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.db.with_suffix(".partial")
        with (
            contextlib.closing(sqlite3.connect(database)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)  # a consistent copy while the store stays open
        partial.replace(self.db)
        with self.state.open("wb") as f:
            seeded = dict(trust.resolver.seeded)
            state = (trust.kek, dict(trust.offsets), grow, list(rest), seeded, evidence)
            pickle.dump(state, f)

    def load(
        self,
    ) -> tuple[
        bytes, dict[str, int], dict[str, Any], list[Arrival], dict[str, str], Evidence | None
    ]:
        with self.state.open("rb") as f:  # written by :meth:`save` of this benchmark only
            state = _StateUnpickler(f).load()
        if len(state) == 5:  # kept before the evidence was
            state = (*state, None)
        kek, offsets, grow, rest, seeded, evidence = state
        return kek, offsets, grow, rest, seeded, evidence


def population_for(persons: int, extra_records: int) -> int:
    """A simulated population whose detected persons cover ``persons`` with records to spare."""
    return math.ceil((persons * 1.1 + extra_records) / DETECTED_SHARE)


def scale_one(args: argparse.Namespace, size: int, peers: bool) -> dict[str, Any]:
    """One size, in this process: grow the store to ``size`` persons, then measure."""
    extra = args.sample + args.throughput + (0 if args.no_profile else args.profile_sample)
    kept = (
        Kept(Path(args.store_dir), size, "seeded" if args.bulk_seed else "grown", args.seed)
        if args.store_dir and args.store is None
        else None
    )
    out: dict[str, Any] = {"persons_target": size}
    arrivals: list[Arrival] | None = None
    if kept is None or not kept.exists():
        population = population_for(size, extra + (WARM_EVENTS if kept else 0))
        with tempfile.TemporaryDirectory(prefix="tiptrust-sim-") as d:
            console.print(f"[bold]scale {size}[/bold]: simulating {population} persons")
            t0 = time.perf_counter()
            sim = simulated_arrivals(args.seed, population, Path(d))
            simulate_s = time.perf_counter() - t0
        arrivals = sim.arrivals
        out["simulated_population"] = population
        out["simulate_and_map_s"] = round(simulate_s, 1)
    with fresh_store(args.store, kept.db if arrivals is None and kept else None) as (
        store,
        backend,
    ):
        if arrivals is None:
            assert kept is not None
            kek, offsets, out["grow"], rest, seeded, evidence = kept.load()
            trust = Trust(store, kek)
            trust.offsets = offsets
            trust.resolver.seeded.update(seeded)
            # a restarted resolver remembers nothing: it links some events first, untimed
            trust.append(rest[:WARM_EVENTS])
            trust.link(page=1000)
            rest = rest[WARM_EVENTS:]
            out["store"] = backend
            out["resolver"] = (
                f"restarted on the store kept in {kept.db.name}: warmed by linking "
                f"{WARM_EVENTS} events in one page"
            )
            peers = False
        else:
            trust = Trust(store)
            trust.keep_plain = peers
            out["store"] = backend
            if args.bulk_seed:
                cut, out["grow"] = seed_bulk(trust, arrivals, size, f"seed {size} persons")
            else:
                cut, out["grow"] = grow(
                    trust, arrivals, size, args.grow_budget_s, f"grow to {size} persons"
                )
            rest = arrivals[cut:]
            evidence = Evidence.of(arrivals[:cut]) if args.bulk_seed else None
            if kept is not None:
                kept.save(trust, out["grow"], rest, evidence)
            out["resolver"] = "the one that grew the store (its memory as growth left it)"
        sample = rest[: args.sample]
        rest = rest[args.sample :]
        batch: list[Arrival] = []
        records = 0
        while rest and records < args.throughput:
            batch.append(rest[0])
            records += len(rest[0].victim_ids)
            rest = rest[1:]
        profiled = [] if args.no_profile else rest[: args.profile_sample]
        if len(sample) < args.sample:
            raise SystemExit(f"the simulation for {size} persons is too small for the sample")
        true_persons = int(out["grow"]["true_persons"])
        persons = trust.persons()
        out["store_records"] = out["grow"]["records"]
        out["store_true_persons"] = true_persons
        out["store_persons_after_linkage"] = persons
        out["store_persons_error_pct"] = _error_pct(persons, true_persons)
        out["index"] = trust.block_sizes()
        existing_plain = list(trust.plain)
        trust.keep_plain = False

        cpu: list[float] = []
        times, sample_records = one_at_a_time(trust, sample, "one event at a time", cpu)
        per_record = [
            t / len(a.victim_ids) for t, a in zip(times, sample, strict=True) if a.victim_ids
        ]
        cpu_record = [
            t / len(a.victim_ids) for t, a in zip(cpu, sample, strict=True) if a.victim_ids
        ]
        out["per_record"] = {
            "events": len(sample),
            "records": sample_records,
            **_stats_ms(times, "per_event"),
            **_stats_ms(per_record, "per_record"),
            **_stats_ms(cpu_record, "per_record_cpu"),
        }

        trust.append(batch)
        before_batch = store.last_seq()
        t = time.perf_counter()
        trust.link(page=1000)
        seconds = time.perf_counter() - t
        out["page_1000"] = {
            "events": len(batch),
            "records": records,
            "seconds": round(seconds, 3),
            "records_per_s": round(records / seconds, 1) if seconds else None,
        }
        if trust.resolver.seeded:
            out["placement_vs_truth"] = placement_vs_truth(trust, batch, before_batch, evidence)
        if profiled:
            profiler = cProfile.Profile()
            profiled_records = 0
            sql = SqlCounter(store.engine)
            for a in profiled:
                trust.append([a])
                profiler.enable()
                with sql.counting():
                    trust.link(page=1)
                profiler.disable()
                profiled_records += len(a.victim_ids)
            out["profile"] = profile_summary(profiler, profiled_records)
            if args.profile_out:
                profiler.dump_stats(args.profile_out)
            out["profile"]["sql_per_record"] = sql.per_record(profiled_records)
        out["store_persons_at_end"] = trust.persons()
        database = store.engine.url.database
        if backend.startswith("sqlite") and database:
            db_file = Path(database)
            size_b = sum(p.stat().st_size for p in db_file.parent.glob(db_file.name + "*"))
            out["store_mib"] = round(size_b / 2**20, 1)
    if peers:
        console.print(f"[bold]scale {size}[/bold]: splink predict_between per record")
        schema = _schema()
        new = [
            r for a in sample[: args.splink_sample] for r in plain_records(schema.decode(a.avro))
        ]
        out["splink_incremental"] = _guarded(splink_incremental, existing_plain, new)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _name_key(record: LinkRecord) -> str:
    return f"{fold(record.given_name)}|{fold(record.surname)}"


def _birth_key(record: LinkRecord) -> str | None:
    """A complete date of birth, day and month in either order (the simulator's swaps)."""
    birth = parse_date(record.date_of_birth)
    if birth is None or birth.month is None or birth.day is None:
        return None
    low, high = sorted((birth.month, birth.day))
    return f"{birth.year}-{low}-{high}"


@dataclass(slots=True)
class Evidence:
    """What the stored records of each true person carry that could tell it from its namesakes:
    for ``placement_vs_truth``'s question whether a missed join was there to be made."""

    documents: dict[str, set[str]]  # true person -> its records' normalised documents
    births: dict[str, set[str]]  # true person -> its records' complete dates of birth
    names: dict[str, set[str]]  # folded given name and surname -> true persons with it
    names_of: dict[str, set[str]]  # true person -> its records' name keys

    @classmethod
    def of(cls, arrivals: Sequence[Arrival]) -> Evidence:
        schema = _schema()
        out = cls({}, {}, {}, {})
        for a in arrivals:
            records = plain_records(schema.decode(a.avro))
            for record, label in zip(records, a.truth, strict=True):
                document = normalise_document(record.document_number)
                if document:
                    out.documents.setdefault(label, set()).add(document)
                birth = _birth_key(record)
                if birth:
                    out.births.setdefault(label, set()).add(birth)
                name = _name_key(record)
                out.names.setdefault(name, set()).add(label)
                out.names_of.setdefault(label, set()).add(name)
        return out

    def kind(self, record: LinkRecord, label: str) -> tuple[str, int]:
        """How ``record`` of true person ``label`` could be told from the stored namesakes:
        ``identifier`` (a document or complete date of birth one of its person's stored records
        carries too), else ``unique_name`` (no other stored person has any of its person's
        names) or ``namesakes`` — with how many other stored persons share a name with it."""
        document = normalise_document(record.document_number)
        birth = _birth_key(record)
        if (document and document in self.documents.get(label, ())) or (
            birth and birth in self.births.get(label, ())
        ):
            return "identifier", 0
        others = set().union(*(self.names[n] for n in self.names_of.get(label, ())))
        others.discard(label)
        return ("namesakes", len(others)) if others else ("unique_name", 0)


CALIBRATION_BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)


def pair_calibration(
    trust: Trust, batch: Sequence[Arrival], after_seq: int, placed: dict[Key, str]
) -> list[dict[str, Any]]:
    """How often the pairs that decided ``batch``'s placements (each ``RecordLinked``'s kept
    evidence: its best pairs, of the persons it met) are the same true person, by the pair's
    match probability: calibrated probabilities make ``share_true`` close to
    ``mean_probability`` in every bin. Stored records take their true person from the seeded
    person they are in; the batch's from the simulator."""
    person_label = {person: label for label, person in trust.resolver.seeded.items()}
    label_of: dict[Key, str] = {
        key: person_label[person] for key, person in placed.items() if person in person_label
    }
    label_of.update({k: t for a in batch for k, t in zip(a.keys(), a.truth, strict=True)})
    batch_keys: set[Key] = set()
    for a in batch:
        batch_keys.update(a.keys())
    bins = CALIBRATION_BINS
    counts = [[0, 0, 0.0] for _ in bins[:-1]]
    upto = trust.store.last_seq()
    after = after_seq
    while after < upto:
        page = trust.store.read_types({RecordLinked.event_type}, after, upto, 1000)
        if not page:
            break
        after = page[-1][0]
        for _, event in page:
            assert isinstance(event, RecordLinked)
            mine = event.victim.key()
            if mine not in batch_keys:
                continue
            for pair in event.evidence:
                other = label_of.get(pair.other.key())
                if other is None:
                    continue
                k = min(
                    int(np.searchsorted(bins, pair.probability, side="right")) - 1, len(counts) - 1
                )
                counts[k][0] += 1
                counts[k][1] += int(other == label_of[mine])
                counts[k][2] += pair.probability
    return [
        {
            "probability": f"[{lo:g}, {hi:g})" if hi < 1.0 else f"[{lo:g}, 1]",
            "pairs": n,
            "share_true": round(t / n, 3) if n else None,
            "mean_probability": round(sp / n, 3) if n else None,
        }
        for (lo, hi), (n, t, sp) in zip(itertools.pairwise(bins), counts, strict=True)
    ]


def placement_vs_truth(
    trust: Trust, batch: Sequence[Arrival], after_seq: int, evidence: Evidence | None = None
) -> dict[str, Any]:
    """Where ``batch``'s records went, against the truth the store was seeded with (each true
    person one person, :meth:`Resolver.seed_with`): of the records whose true person is in the
    store, how many joined it (``recall``), another stored person (``wrong``) or neither (a new
    person, or one provisional while a review is open: ``apart``); of the others, how many
    joined a stored person (``merged_in``).

    With the stored records' ``evidence``, the records whose person is stored are also split by
    what could place them (``by_evidence``): ``identifier`` — a document or complete date of
    birth that a stored record of their person carries too; ``unique_name`` — no such
    identifier, but no other stored person has their person's names; ``namesakes`` — nothing but
    a name (and context) that other stored persons share (``namesakes_median``: how many). The
    last are not there to be joined with confidence by any linker. ``pair_calibration``: see
    :func:`pair_calibration` (the decisions after ``after_seq``)."""
    label_person = trust.resolver.seeded  # true person -> its person id
    stored = set(label_person.values())
    placed = trust.placements()
    schema = _schema()
    out: dict[str, Any] = dict.fromkeys(
        ("expected_joins", "joined", "wrong", "apart", "new", "merged_in"), 0
    )
    kinds: dict[str, dict[str, Any]] = {}
    namesakes: list[int] = []
    for a in batch:
        records = plain_records(schema.decode(a.avro)) if evidence else None
        for i, (key, label) in enumerate(zip(a.keys(), a.truth, strict=True)):
            person = placed.get(key)
            target = label_person.get(label)
            if target is None:  # a person the store did not hold (unless this batch made it)
                out["new"] += 1
                out["merged_in"] += int(person in stored)
                continue
            out["expected_joins"] += 1
            outcome = "joined" if person == target else "wrong" if person in stored else "apart"
            out[outcome] += 1
            if evidence is not None and records is not None:
                kind, n = evidence.kind(records[i], label)
                counts = kinds.setdefault(kind, dict.fromkeys(("records", "joined", "wrong"), 0))
                counts["records"] += 1
                counts[outcome] = counts.get(outcome, 0) + 1
                if kind == "namesakes":
                    namesakes.append(n)
    out["recall"] = round(out["joined"] / max(out["expected_joins"], 1), 4)
    if evidence is not None:
        for counts in kinds.values():
            counts["recall"] = round(counts["joined"] / max(counts["records"], 1), 4)
        out["by_evidence"] = dict(sorted(kinds.items()))
        out["namesakes_median"] = int(np.median(namesakes)) if namesakes else 0
    out["open_reviews_in_store"] = trust.open_reviews()
    out["pair_calibration"] = pair_calibration(trust, batch, after_seq, placed)
    return out


def scale_in_child(args: argparse.Namespace, size: int, peers: bool) -> dict[str, Any]:
    """Run one size in a fresh process (its peak RSS its own, nothing cached from the last)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one-size",
        str(size),
        "--seed",
        str(args.seed),
        "--sample",
        str(args.sample),
        "--throughput",
        str(args.throughput),
        "--profile-sample",
        str(args.profile_sample),
        *(["--profile-out", args.profile_out] if args.profile_out else []),
        "--splink-sample",
        str(args.splink_sample),
    ]
    if args.store:
        cmd += ["--store", args.store]
    if args.store_dir:
        cmd += ["--store-dir", args.store_dir]
    if args.grow_budget_s is not None:
        cmd += ["--grow-budget-s", str(args.grow_budget_s)]
    if args.no_profile:
        cmd.append("--no-profile")
    if args.bulk_seed:
        cmd.append("--bulk-seed")
    if not peers:
        cmd.append("--no-peers")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- the run ---------------------------------------------------------------------------------


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets beside what was measured (None where the run cannot judge)."""
    out: dict[str, Any] = {}
    acc = result.get("accuracy")
    if acc:
        err = acc["incremental"]["persons_error_pct"]
        out["persons_within_2pct"] = {"met": abs(err) <= 2.0, "error_pct": err}
    scale = result.get("scale") or []
    if scale:
        largest = max(scale, key=lambda s: s["store_true_persons"])
        p99 = largest["per_record"].get("per_record_p99_ms")
        reached = largest["store_true_persons"]
        judged = reached >= 1_000_000 and p99 is not None
        out["p99_per_record_le_5ms_at_1e6"] = {
            "largest_store_persons": reached,
            "p99_ms": p99,
            "met": (p99 <= 5.0) if judged else None,
            "le_5ms_at_largest": p99 is not None and p99 <= 5.0,
            "goal_1ms_at_largest": p99 is not None and p99 <= 1.0,
            "note": None if judged else "10^6 persons not reached in this run",
        }
        if p99:
            out["splink_peer_per_record_s_at_1e6"] = SPLINK_PEER_S_AT_1E6
            out["splink_peer_over_our_p99_at_largest"] = round(SPLINK_PEER_S_AT_1E6 * 1000 / p99, 1)
        grown = [s for s in scale if not str(s["grow"].get("mode", "")).startswith("seeded")]
        if grown:
            # the issue judges persons within 2 % on the simulator's 2,000 (above); at a national
            # size the same figure, beside it (names repeat far more there: see by_evidence)
            out["persons_error_pct_grown"] = {
                str(s["store_true_persons"]): s["store_persons_error_pct"] for s in grown
            }
        for section in scale:
            splink = section.get("splink_incremental") or {}
            if "per_record_p50_ms" in splink:
                ours = section["per_record"]
                out["same_run_vs_splink_predict_between"] = {
                    "store_persons": section["store_true_persons"],
                    "tiptrust_p50_ms": ours.get("per_record_p50_ms"),
                    "tiptrust_p99_ms": ours.get("per_record_p99_ms"),
                    "splink_p50_ms": splink["per_record_p50_ms"],
                    "splink_p99_ms": splink["per_record_p99_ms"],
                }
    return out


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sim-persons", type=int, default=2000, help="accuracy's simulated persons")
    ap.add_argument(
        "--sizes", default="10000,100000", help="persons in the store (comma-separated)"
    )
    ap.add_argument("--sample", type=int, default=200, help="events timed one at a time")
    ap.add_argument("--throughput", type=int, default=1000, help="records linked at page 1000")
    ap.add_argument("--profile-sample", type=int, default=60, help="events linked under cProfile")
    ap.add_argument("--profile-out", default=None, help="write the raw cProfile stats here")
    ap.add_argument("--splink-sample", type=int, default=20, help="Splink's timed new records")
    ap.add_argument(
        "--grow-budget-s",
        type=float,
        default=200.0,
        help="seconds of linking a size's growth may take (0: no limit); if it runs out, the "
        "size is measured where growth stopped (reported)",
    )
    ap.add_argument("--store", default=None, help="a PostgreSQL URL (default: a SQLite file)")
    ap.add_argument("--no-peers", action="store_true", help="no Splink / batch peers")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument(
        "--bulk-seed",
        action="store_true",
        help="fill each size's store by seeding the simulator's true persons through the "
        "resolver (no scoring while growing; fast enough for 10^5-10^6), then time new records",
    )
    ap.add_argument(
        "--store-dir",
        default=None,
        help="keep each size's grown SQLite store here, and measure a kept one again instead of "
        "growing it (its resolver restarted: see the module text)",
    )
    ap.add_argument("--one-size", type=int, default=None, help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse()
    if args.one_size is not None:  # a child: one size, its JSON on stdout
        print(json.dumps(scale_one(args, args.one_size, not args.no_peers)))
        return
    result: dict[str, Any] = {
        "benchmark": "linkage_incremental",
        "code": code_state(),
        **machine(),
    }
    if not args.no_accuracy:
        result["accuracy"] = accuracy(args)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    result["scale"] = [
        scale_in_child(args, size, peers=(k == 0 and not args.no_peers))
        for k, size in enumerate(sizes)
    ]
    result["targets"] = targets(result)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
