"""The release stage: each subscription's next release, planned, counted, signed and recorded.

For every subscription the policy point first fixes a :class:`ReleasePlan` (which sources'
persons may be counted, which k) from the agreements alone; only then are the stage's own cell
counts (:mod:`trust.release.counts`) read. A release is recorded (``ReleaseIssued`` with its signed
bytes) and never sent from here: :class:`trust.release.publish.ReleasePublisher` follows the store
and sends exactly what was recorded.
"""

from __future__ import annotations

import base64
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from trust.follow import StoreFollower, follow
from trust.release import counts as release_counts
from trust.release.aggregate import CountTable, table_from_counts
from trust.release.counts import counting_rule
from trust.release.disclosure.suppression import DisclosurePolicy, SuppressedTable
from trust.release.errors import UnprotectedTable
from trust.release.history import PublishedHistory
from trust.release.publish import UNCHANGED, EmitResult, ReleaseSigner, table_digest
from trust.release.streams import StreamSpec
from trust.stewardship.policy import NothingToRelease, Policy, ReleasePlan, Subscription
from trust.store.events import ReleaseIssued
from trust.store.eventstore import EventStore
from trust.store.tables import ProjRelease, ProjSubscription

RELEASE_CONSUMER = "trust-release"

log = logging.getLogger(__name__)


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


def next_sequence(store: EventStore, consumer: str, stream: str) -> int:
    """The sequence of a subscription's next release: after its own, and after the stream's
    releases from before subscriptions (consumer ``''``), which consumers already hold under the
    same stream's numbering."""
    r = ProjRelease
    query = select(func.coalesce(func.max(r.sequence), 0)).where(
        r.consumer.in_([consumer, ""]), r.stream == stream
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one()) + 1


@dataclass(frozen=True)
class Skipped:
    """A subscription that got no release in a check, and why (no data values)."""

    subscription: Subscription
    reason: str


class ReleaseStage:
    """Makes each subscription's next release when its published figures change, and records it.

    For every subscription the policy point first fixes a :class:`ReleasePlan` (which sources'
    persons may be counted, which k) from the agreements alone; only then are persons counted.

    ``upstream``: followers whose decisions the counts depend on (linkage), brought up to the
    store's end before the counts are; ``linkage_model``: the model version linkage decides
    with (None: the trust does not link), quoted in each release's counting rule.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        signer: ReleaseSigner,
        policy: Policy,
        streams: Mapping[str, StreamSpec],
        clock: Callable[[], float] = time.time,
        upstream: Sequence[StoreFollower] = (),
        linkage_model: str | None = None,
    ) -> None:
        self.store = store
        self.upstream = list(upstream)
        self.counting_rule = counting_rule(linkage_model)
        self.linked = linkage_model is not None
        self.signer = signer
        self.policy = policy
        self.streams = dict(streams)
        self.clock = clock
        self.skipped: list[Skipped] = []
        self.counts = release_counts.ReleaseCounts(streams)
        self.history = PublishedHistory()  # what each consumer was given (differencing rule)
        #: seconds the last check spent protecting each stream's table (secondary + audit)
        self.protect_seconds: dict[str, float] = {}
        self._checked_upto = -1
        self._checked_day = -1
        self._pending = False

    def release_once(self) -> list[EmitResult]:
        """Sign and record the next release of every subscription whose figures changed. Sends
        nothing: the release publisher sends what was recorded.

        Brings the stage's cell counts up to date first (a follower of the store), then reads
        only cell counts: the cost follows the events since the last check and the number of
        cells, never the number of stored persons. Nothing is read when the store has not moved
        since a check that left nothing pending on the same (UTC) day — agreements come into and
        go out of force by day, so a new day is always checked.
        """
        self.skipped = []
        for before in self.upstream:  # their decisions (linkage's) are counted too
            follow(self.store, before)
        upto = self.store.last_seq()
        now_ms = int(self.clock() * 1000)
        day = now_ms // 86_400_000
        if upto == self._checked_upto and day == self._checked_day and not self._pending:
            return []
        follow(self.store, self.counts)
        subs = subscriptions(self.store)
        made: list[EmitResult] = []
        self._pending = False
        for sub in subs:
            spec = self.streams.get(sub.stream)
            if spec is None:
                self.skipped.append(Skipped(sub, "the trust declares no such stream"))
                continue
            with self.store.engine.connect() as conn:
                contributing = release_counts.contributing_sources(conn, spec.name)
            try:
                plan = self.policy.plan(sub, spec, contributing, now_ms)
            except NothingToRelease as exc:
                self.skipped.append(Skipped(sub, str(exc)))
                log.info(
                    "release.not_allowed consumer=%s stream=%s purpose=%s",
                    sub.consumer,
                    sub.stream,
                    sub.purpose,
                )
                continue
            result = self._release(plan, now_ms)
            if result is not None:
                made.append(result)
        self._checked_upto = upto
        self._checked_day = day
        return made

    def _rule(self, plan: ReleasePlan, now_ms: int) -> str:
        """The counting rule, naming the sources whose records are not linked with each other
        because their agreements (in force now) do not allow it."""
        if not self.linked:
            return self.counting_rule
        apart = [
            f"{a} and {b}"
            for a, b in itertools.combinations(sorted(plan.sources), 2)
            if not self.policy.may_link(a, b, now_ms)
        ]
        if not apart:
            return self.counting_rule
        return (
            f"{self.counting_rule} Not linked with each other, as their agreements require (a "
            f"person both hold is counted once by each): {'; '.join(apart)}."
        )

    def _protect(self, plan: ReleasePlan, counts: CountTable) -> SuppressedTable | None:
        """The table to publish under the plan's k and the differencing rule against what the
        consumer was given; None (recorded as skipped, with the reason) when the table with
        margins cannot be protected or fails the LP audit."""
        # the disclosure-control steps (numpy, scipy's LP solver) load at the first release
        # check, not when the CLI starts
        from trust.release.disclosure.differencing import DifferencingStep
        from trust.release.disclosure.margins import protect_margins
        from trust.release.disclosure.secondary import SuppressionFailed

        sub = plan.subscription
        self.history.update(self.store)
        earlier = self.history.of(sub.consumer)
        if not plan.spec.margins:
            # cells and total only: primary suppression, then the differencing rule
            return DisclosurePolicy(plan.k, (DifferencingStep(earlier, plan.k),)).apply(counts)
        try:
            protected = protect_margins(counts, plan.k, earlier=earlier)
        except (UnprotectedTable, SuppressionFailed) as exc:
            reason = f"not released: the table failed disclosure control ({exc.code})"
            self.skipped.append(Skipped(sub, reason))
            log.warning(
                "release.refused consumer=%s stream=%s reason=%s",
                sub.consumer,
                sub.stream,
                exc.code,
            )
            return None
        self.protect_seconds[sub.stream] = protected.seconds
        log.info(
            "release.protected consumer=%s stream=%s aggregates=%d primary=%d differencing=%d "
            "secondary=%d seconds=%.3f",
            sub.consumer,
            sub.stream,
            len(protected.table.aggregates),
            protected.primary,
            protected.forced,
            protected.secondary,
            protected.seconds,
        )
        return protected.table

    def _release(self, plan: ReleasePlan, now_ms: int) -> EmitResult | None:
        with self.store.engine.connect() as conn:
            counts = release_counts.cell_counts(conn, plan.spec, plan.sources)
        sub = plan.subscription
        table = self._protect(plan, table_from_counts(plan.spec, counts))
        if table is None:
            return None
        last = last_release(self.store, sub.consumer, sub.stream)
        result = self.signer.maybe_sign(
            table,
            plan,
            counting_rule=self._rule(plan, now_ms),
            last_digest=last.digest if last else None,
            last_issued_ms=last.issued_at_ms if last else None,
            now_ms=now_ms,
            sequence=next_sequence(self.store, sub.consumer, sub.stream),
        )
        if result is None:
            if (
                self.signer.skip_reason(
                    plan.spec,
                    table_digest(table),
                    last_digest=last.digest if last else None,
                    last_issued_ms=last.issued_at_ms if last else None,
                    now_ms=now_ms,
                )
                != UNCHANGED
            ):
                self._pending = True  # changed but too soon: check again when the interval ends
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
        log.info(
            "release.recorded consumer=%s stream=%s sequence=%d sources=%d sources_left_out=%d k=%d",
            sub.consumer,
            sub.stream,
            rel.sequence,
            len(plan.sources),
            plan.sources_left_out,
            plan.k,
        )
        return result
