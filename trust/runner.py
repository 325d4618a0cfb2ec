"""The trust's stages run together: ingest, then the followers, then release what changed.

Each stage is a small object built by the composition root (``tiptrust/``); this module only
sequences them. Ingest writes inbound facts; the receipt publisher follows the store; the release
stage reads the persons projection (one person per victim of each case record: there is no
linkage yet), aggregates, applies disclosure control, signs a release when the published figures
changed and RECORDS it (``ReleaseIssued`` with the signed bytes); the release publisher, another
follower, then puts exactly those bytes on the release topic.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from trust.follow import LogPublisher, StoreFollower, follow
from trust.ingest.worker import IngestStats, IngestWorker
from trust.release.aggregate import PersonFacts, aggregate
from trust.release.disclosure.suppression import DisclosurePolicy
from trust.release.publish import EmitResult, ReleaseSigner
from trust.release.streams import StreamSpec
from trust.stewardship.policy import NothingToRelease, Policy, ReleasePlan, Subscription
from trust.store.events import ReleaseIssued
from trust.store.eventstore import EventStore
from trust.store.tables import ProjPerson, ProjRelease, ProjSubscription

RELEASE_CONSUMER = "trust-release"


#: What one count is, as :func:`counted_persons` counts it (the release metadata quotes this).
COUNTING_RULE = (
    "One count per victim of each case record, not linked: a person in several cases or seen by "
    "several agencies is counted once per case record. Retracted records, disposed persons and "
    "persons who withdrew consent are not counted."
)


def counted_persons(store: EventStore) -> list[PersonFacts]:
    """Persons the release may count (see :data:`COUNTING_RULE`): one per victim record that is
    not retracted, not disposed, consent not withdrawn."""
    p = ProjPerson
    query = select(
        p.source_id,
        p.case_id,
        p.victim_id,
        p.sex,
        p.age_at_identification,
        p.forms_of_exploitation,
        p.year_of_exploitation,
    ).where(p.retracted.is_(False), p.disposed.is_(False), p.consent_withdrawn.is_(False))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        PersonFacts(
            person_id=(r.source_id, r.case_id, r.victim_id),
            sex=r.sex,
            age=r.age_at_identification,
            forms=tuple(f for f in r.forms_of_exploitation.split(";") if f),
            year=r.year_of_exploitation,
        )
        for r in rows
    ]


def subscriptions(store: EventStore) -> list[Subscription]:
    """The subscriptions in force, in (consumer, stream) order."""
    t = ProjSubscription
    query = select(t.consumer, t.stream, t.purpose).order_by(t.consumer, t.stream)
    with store.engine.connect() as conn:
        return [Subscription(r.consumer, r.stream, r.purpose) for r in conn.execute(query)]


@dataclass(frozen=True)
class LastRelease:
    sequence: int
    digest: str
    issued_at_ms: int


def last_release(store: EventStore, consumer: str, stream: str) -> LastRelease | None:
    r = ProjRelease
    query = (
        select(r.sequence, r.cells_digest, r.issued_at_ms)
        .where(r.consumer == consumer, r.stream == stream)
        .order_by(r.sequence.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return LastRelease(row.sequence, row.cells_digest, row.issued_at_ms) if row else None


@dataclass(frozen=True)
class Skipped:
    """A subscription that got no release in a check, and why (no data values)."""

    subscription: Subscription
    reason: str


class ReleaseStage:
    """Makes each subscription's next release when its published figures change, and records it.

    For every subscription the policy point first fixes a :class:`ReleasePlan` (which sources'
    persons may be counted, which k) from the agreements alone; only then are persons counted.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        signer: ReleaseSigner,
        policy: Policy,
        streams: Mapping[str, StreamSpec],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.signer = signer
        self.policy = policy
        self.streams = dict(streams)
        self.clock = clock
        self.skipped: list[Skipped] = []

    def release_once(self) -> list[EmitResult]:
        """Sign and record the next release of every subscription whose figures changed. Sends
        nothing: the release publisher sends what was recorded."""
        self.skipped = []
        subs = subscriptions(self.store)
        if not subs:
            return []
        now_ms = int(self.clock() * 1000)
        persons = counted_persons(self.store)
        contributing = sorted({p.person_id[0] for p in persons})
        made: list[EmitResult] = []
        for sub in subs:
            spec = self.streams.get(sub.stream)
            if spec is None:
                self.skipped.append(Skipped(sub, "the trust declares no such stream"))
                continue
            try:
                plan = self.policy.plan(sub, spec, contributing, now_ms)
            except NothingToRelease as exc:
                self.skipped.append(Skipped(sub, str(exc)))
                continue
            result = self._release(plan, persons, now_ms)
            if result is not None:
                made.append(result)
        return made

    def _release(
        self, plan: ReleasePlan, persons: list[PersonFacts], now_ms: int
    ) -> EmitResult | None:
        included = set(plan.sources)
        table = DisclosurePolicy(plan.k).apply(
            aggregate((p for p in persons if p.person_id[0] in included), plan.spec)
        )
        sub = plan.subscription
        last = last_release(self.store, sub.consumer, sub.stream)
        result = self.signer.maybe_sign(
            table,
            plan,
            counting_rule=COUNTING_RULE,
            last_digest=last.digest if last else None,
            last_issued_ms=last.issued_at_ms if last else None,
            now_ms=now_ms,
            sequence=(last.sequence if last else 0) + 1,
        )
        if result is None:
            return None
        rel = result.release
        period = f"{rel.period_start or ''}-{rel.period_end or ''}"
        # one (consumer, stream, sequence) can be recorded once: the projection's key refuses
        # a second, so no two different releases can ever share a sequence number
        self.store.append(
            [
                ReleaseIssued(
                    release_id=rel.release_id,
                    stream=rel.stream,
                    sequence=rel.sequence,
                    issued_at_ms=rel.issued_at_ms,
                    period=period,
                    cells_digest=result.digest,
                    signature_b64=base64.b64encode(rel.signature).decode(),
                    metadata={
                        "k": rel.k,
                        "method": rel.method,
                        "source_count": rel.source_count,
                        "sources_left_out": plan.sources_left_out,
                        "agreement_versions": [list(v) for v in plan.agreement_versions],
                    },
                    signed_b64=base64.b64encode(result.raw_bytes).decode(),
                    topic=plan.topic,
                    consumer=sub.consumer,
                    purpose=sub.purpose,
                )
            ],
            None,
            RELEASE_CONSUMER,
        )
        return result


@dataclass
class RunSummary:
    ingest: IngestStats
    releases: list[EmitResult]


class TrustRunner:
    """Ingest until caught up (or stopped), releasing at most once per interval along the way."""

    def __init__(
        self,
        *,
        worker: IngestWorker,
        releases: Sequence[ReleaseStage],
        followers: Sequence[StoreFollower | LogPublisher] = (),
        release_every_s: float = 5.0,
    ) -> None:
        self.worker = worker
        self.releases = list(releases)
        self.followers = list(followers)
        self.release_every_s = release_every_s

    def follow(self) -> None:
        """Bring every follower up to the store's end (receipts, release publishing)."""
        for f in self.followers:
            follow(self.worker.store, f)

    def run(
        self,
        *,
        until_caught_up: bool = True,
        max_seconds: float | None = None,
        on_step: Callable[[IngestStats], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> RunSummary:
        total = IngestStats()
        emitted: list[EmitResult] = []
        start = time.monotonic()
        last_release = time.monotonic()
        self.follow()  # whatever a crash left unsent goes first
        while not should_stop():
            s = self.worker.step()
            total.add(s)
            if on_step is not None:
                on_step(s)
            now = time.monotonic()
            caught_up = s.messages == 0 and s.caught_up
            if caught_up or now - last_release >= self.release_every_s:
                for stage in self.releases:
                    emitted.extend(stage.release_once())
                # the cadence runs from the end of a check, so a slow check cannot starve ingest
                last_release = time.monotonic()
            self.follow()
            if until_caught_up and caught_up:
                total.caught_up = True
                break
            if max_seconds is not None and now - start > max_seconds:
                break
        return RunSummary(total, emitted)
