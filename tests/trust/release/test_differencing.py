"""Differencing safety across releases (disclosure/differencing.md), tried by an attacker.

A trust with linkage releases the streams with margins to one consumer after every change —
persons added one to three at a time, case records retracted, persons merged by an operator —
and the attacker takes every release the consumer received: for every pair of releases it
compares every aggregate it knows exactly (published, or pinned by linear programming from the
release's published values) and reports any that changed by 1 .. k-1. Every record here is
synthetic: random strings stand in for names.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import os
import random
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from schemas.codec import default_registry
from schemas.keys import SigningKey
from schemas.release import Release, decode_release
from tests.trust.store.builders import case_record, eid, retracted
from trust.follow import follow
from trust.linkage import KeyedHasher, LinkageSettings, Linker
from trust.linkage import review as rv
from trust.linkage.model import default_model
from trust.linkage.resolver import Resolver
from trust.release.disclosure.differencing import too_close
from trust.release.disclosure.table import TOTAL, Dimension, build_table, incidence
from trust.release.publish import ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import (
    REPEAT_VICTIMISATION,
    VICTIMS_BY_YEAR_AGE_GROUP,
    VICTIMS_BY_YEAR_FORM,
    VICTIMS_BY_YEAR_SEX,
)
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import RecordAccepted, ReleaseIssued, SubscriptionAdded, VictimRef
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.vault import Vault

KEY = SigningKey.generate("trust")
K = 10
STREAMS = {
    s.name: s for s in (VICTIMS_BY_YEAR_SEX, VICTIMS_BY_YEAR_AGE_GROUP, VICTIMS_BY_YEAR_FORM)
}
SOURCES = ("src-a", "src-b")
#: the stream whose releases the attacker also solves LPs on (small: two years x seven sexes)
LP_STREAM = VICTIMS_BY_YEAR_SEX.name


class Trust:
    """A store with linkage (deterministic person ids) and the release stage over it."""

    def __init__(self, store: EventStore, seed: int) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.vault = Vault(store.engine, os.urandom(32))
        counter = itertools.count(1)
        linker = Linker(LinkageSettings(), default_model(), KeyedHasher(self.vault.linkage_key()))
        self.resolver = Resolver(self.vault, linker, person_ids=lambda: f"P-{next(counter)}")
        grants = (ReleaseGrant("ministry", ("statistics",)),)
        agreements = [Agreement(s, 1, dt.date(2000, 1, 1), None, ("$",), grants) for s in SOURCES]
        policy = Policy(Agreements(agreements, default_registry().current("case_record")))
        self.stage = ReleaseStage(
            store=store,
            signer=ReleaseSigner(KEY),
            policy=policy,
            streams=STREAMS,
            upstream=[self.resolver],
            linkage_model=linker.model.version,
        )
        self.offset = 0
        self.cases: list[VictimRef] = []
        for name in STREAMS:
            store.append(
                [SubscriptionAdded(eid(), "ministry", name, "statistics", 0)], None, "operator"
            )

    def _token(self) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(10))

    def add(self) -> None:
        """One new synthetic person in a case of its own."""
        source = self.rng.choice(SOURCES)
        case = f"c{self.offset}"
        sex = self.rng.choice(("Feminine", "Feminine", "Masculine", "Unknown"))
        record = case_record(
            source,
            case,
            [("v1", sex, self.rng.choice((9, 15, 22, 30, 41, 50)))],
            year=self.rng.choice((2022, 2023)),
            forms=(self.rng.choice(("SexualExploitation", "ForcedLabour", "ForcedCriminality")),),
        )
        record["victims"][0]["identifiers"] = {
            "given_names": self._token(),
            "surnames": self._token(),
            "date_of_birth": dt.date(1950, 1, 1) + dt.timedelta(days=self.rng.randrange(20000)),
            "documents": [],
            "phone": None,
        }
        minimised, sealed = self.vault.seal_identifiers(source, case, record)
        event = RecordAccepted(eid(), source, case, minimised, sealed, 1, 2)
        self.store.append([event], Position("tip.inbound", 0, self.offset), "ingest")
        self.offset += 1
        self.cases.append(VictimRef(source, case, "v1"))

    def retract(self) -> None:
        victim = self.cases.pop(self.rng.randrange(len(self.cases)))
        self.store.append([retracted(victim.source_id, victim.case_id)], None, "ingest")

    def merge(self) -> bool:
        """An operator joins the persons of two records (False when none could be joined)."""
        follow(self.store, self.resolver)
        for _ in range(20):
            a, b = self.rng.sample(self.cases, 2)
            if rv.person_of(self.store, a) != rv.person_of(self.store, b):
                rv.decide_pair(self.store, a, b, same=True, operator="op")
                return True
        return False


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield s
    finally:
        s.close()


def received(store: EventStore, consumer: str) -> list[Release]:
    """Every release recorded for ``consumer``, in the order made (what it received)."""
    return [
        decode_release(base64.b64decode(ev.signed_b64))
        for _, ev in store.read()
        if isinstance(ev, ReleaseIssued) and ev.consumer == consumer
    ]


def pinned(release: Release) -> dict[tuple[tuple[str, ...], tuple[str, ...]], int]:
    """The attacker's LP: every suppressed aggregate whose feasible interval, from the
    release's published values, the additive constraints and non-negativity, is narrower than
    k — with its midpoint (rounded)."""
    dims = []
    for i, name in enumerate(release.dimensions):
        leaves = sorted({a.key[i] for a in release.cells()})
        hierarchy = tuple(
            (parent, tuple(children))
            for parent, children in release.hierarchies.get(name, {}).items()
            if all(c in leaves for c in children)
        )
        dims.append(Dimension(name, tuple(leaves), hierarchy))
    shape = build_table(dims, {})  # the structure only: no value of the release is used here
    m = sp.csr_matrix(incidence(shape))
    by_key: dict[tuple[str, ...], Any] = {}
    for a in release.aggregates:
        full = [TOTAL] * len(release.dimensions)
        for d, c in zip(a.dimensions, a.key, strict=True):
            full[release.dimensions.index(d)] = c
        by_key[tuple(full)] = a
    published = [(shape.index(k), a.value) for k, a in by_key.items() if a.value is not None]
    hidden = [(shape.index(k), a) for k, a in by_key.items() if a.value is None]
    a_eq = m[[i for i, _ in published]]
    b_eq = np.array([v for _, v in published], dtype=float)
    out = {}
    for i, agg in hidden:
        ends = []
        for sign in (1.0, -1.0):
            res = linprog(sign * m[i].toarray()[0], A_eq=a_eq, b_eq=b_eq, bounds=(0, None))
            ends.append(sign * res.fun if res.status == 0 else np.inf)
        if ends[1] - ends[0] < K:
            out[(agg.dimensions, agg.key)] = round((ends[0] + ends[1]) / 2)
    return out


def attack(releases: list[Release]) -> list[str]:
    """Every aggregate known exactly in two releases whose values differ by 1 .. k-1, and every
    suppressed aggregate pinned to an interval narrower than k."""
    findings: list[str] = []
    known: list[dict[tuple[tuple[str, ...], tuple[str, ...]], int]] = []
    for r in releases:
        exact = {(a.dimensions, a.key): a.value for a in r.aggregates if a.exact and a.value}
        if r.stream == LP_STREAM:
            narrow = pinned(r)
            findings += [f"{r.stream}#{r.sequence} pins {key}" for key in narrow]
            exact.update(narrow)
        known.append({k: int(v) for k, v in exact.items() if v is not None})
    for (i, a), (j, b) in itertools.combinations(enumerate(known), 2):
        for key in a.keys() & b.keys():
            if too_close(a[key], [b[key]], K):
                findings.append(f"{key} changed by {abs(a[key] - b[key])} between {i} and {j}")
    return findings


def test_no_release_sequence_lets_the_consumer_learn_a_change_below_k(store: EventStore) -> None:
    trust = Trust(store, seed=7)
    for _ in range(60):
        trust.add()
    assert trust.stage.release_once()
    steps = {"add": 0, "retract": 0, "merge": 0}
    for _ in range(50):
        what = trust.rng.choice(("add", "add", "add", "retract", "merge"))
        if what == "add":
            for _ in range(trust.rng.randint(1, 3)):
                trust.add()
        elif what == "retract":
            trust.retract()
        elif not trust.merge():
            continue
        steps[what] += 1
        trust.stage.release_once()
        assert not trust.stage.skipped, trust.stage.skipped
    releases = received(store, "ministry")
    assert len(releases) >= 50
    assert min(steps.values()) >= 5  # every kind of change happened, several times
    assert attack(releases) == []
    # the rule did suppress values that would have told a small change: without it, the
    # attacker would have found some (the same releases with every value shown)
    assert any(a.value is None and a.dimensions == () for r in releases for a in r.aggregates)


def test_the_attacker_finds_a_small_change_when_values_are_published_regardless() -> None:
    """The attacker is not blind: two releases publishing 40 then 41 are reported."""
    from schemas.release import Aggregate

    def release(seq: int, total: int) -> Release:
        return Release(
            "s", f"r{seq}", seq, 0, "t", "u", 2022, 2022, ("year",),
            (Aggregate(("year",), ("2022",), total, True), Aggregate((), (), total, True)),
            K, "m", 1, ("src-a",),
        )  # fmt: skip

    assert len(attack([release(1, 40), release(2, 41)])) == 2
    assert attack([release(1, 40), release(2, 50)]) == []


def test_repeat_victimisation_is_published_with_margins() -> None:
    assert REPEAT_VICTIMISATION.margins
