"""A trust whose records keep changing, releasing to one consumer after every change (the
differencing attacker's material: ``attacker.py``).

A store with linkage (deterministic person ids) and the release stage over it; persons are
added one to three at a time, case records retracted, persons merged by an operator's verdict,
and after each change the stage makes its releases. Every record is synthetic: random strings
stand in for names.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import random
import string
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from schemas.codec import default_registry
from schemas.keys import SigningKey
from schemas.release import Release, decode_release
from tests.trust.store.builders import case_record, eid, retracted
from trust.follow import follow
from trust.linkage import KeyedHasher, LinkageSettings, Linker
from trust.linkage import review as rv
from trust.linkage.model import default_model
from trust.linkage.resolver import Resolver
from trust.release.cellkeys import record_key_secret
from trust.release.publish import ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import StreamSpec
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import RecordAccepted, ReleaseIssued, SubscriptionAdded, VictimRef
from trust.store.eventstore import EventStore, Position
from trust.store.vault import Vault

KEY = SigningKey.generate("trust")
SOURCES = ("src-a", "src-b")
CONSUMER = "ministry"
STEP_KINDS = ("add", "retract", "merge")


class Trust:
    """A store with linkage and the release stage over ``streams``, each subscribed by
    :data:`CONSUMER`."""

    def __init__(self, store: EventStore, streams: Mapping[str, StreamSpec], seed: int) -> None:
        self.store = store
        self.rng = random.Random(seed)
        # the vault's secret from the seed too: record keys (cell keys) and so every release
        # are the same in every run of the same seed
        self.vault = Vault(store.engine, self.rng.randbytes(32))
        counter = itertools.count(1)
        linker = Linker(LinkageSettings(), default_model(), KeyedHasher(self.vault.linkage_key()))
        self.resolver = Resolver(self.vault, linker, person_ids=lambda: f"P-{next(counter)}")
        grants = (ReleaseGrant(CONSUMER, ("statistics",)),)
        agreements = [Agreement(s, 1, dt.date(2000, 1, 1), None, ("$",), grants) for s in SOURCES]
        policy = Policy(Agreements(agreements, default_registry().current("case_record")))
        self.stage = ReleaseStage(
            store=store,
            signer=ReleaseSigner(KEY),
            policy=policy,
            streams=streams,
            upstream=[self.resolver],
            linkage_model=linker.model.version,
            record_key_secret=record_key_secret(self.vault),
        )
        self.offset = 0
        self.cases: list[VictimRef] = []
        for name in streams:
            store.append(
                [SubscriptionAdded(eid(), CONSUMER, name, "statistics", 0)], None, "operator"
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

    def check(self) -> list[Release]:
        """One release check: the releases it made, as recorded (what the consumer receives)."""
        made = self.stage.release_once()
        assert not self.stage.skipped, self.stage.skipped
        return [decode_release(m.raw_bytes) for m in made]


@dataclass(frozen=True)
class Run:
    """A run's releases, one list per release check (time point), and its changes by kind."""

    checks: list[list[Release]]
    steps: Counter[str]

    @property
    def releases(self) -> int:
        return sum(len(c) for c in self.checks)


def run(trust: Trust, *, persons: int = 60, changes: int = 50) -> Run:
    """``persons`` added and released, then ``changes`` changes (an addition of one to three
    persons three times in five, else a retraction or a merge), each followed by a release
    check."""
    for _ in range(persons):
        trust.add()
    checks = [trust.check()]
    steps: Counter[str] = Counter()
    while sum(steps.values()) < changes:
        what = trust.rng.choice(("add", "add", "add", "retract", "merge"))
        if what == "add":
            for _ in range(trust.rng.randint(1, 3)):
                trust.add()
        elif what == "retract":
            trust.retract()
        elif not trust.merge():
            continue
        steps[what] += 1
        checks.append(trust.check())
    return Run(checks, steps)


def received(store: EventStore, consumer: str = CONSUMER) -> list[Release]:
    """Every release recorded for ``consumer``, in the order made."""
    return [
        decode_release(base64.b64decode(ev.signed_b64))
        for _, ev in store.read()
        if isinstance(ev, ReleaseIssued) and ev.consumer == consumer
    ]
