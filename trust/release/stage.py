"""The release stage: each subscription's next release, planned, counted, signed and recorded.

For every subscription the policy point first fixes a :class:`ReleasePlan` (which sources'
persons may be counted, which k) from the agreements alone; only then are the stage's own cell
counts (:mod:`trust.release.counts`) read. A release is recorded (``ReleaseIssued`` with its signed
bytes) and never sent from here: :class:`trust.release.publish.ReleasePublisher` follows the store
and sends exactly what was recorded.

Each stream's disclosure method (``StreamSpec.method``, :mod:`trust.release.disclosure.methods`)
is resolved when the stage is built: suppression (with margins: secondary suppression and the
LP audit), then rounding or cell-key perturbation of the published values; or, for a
differentially private method, OpenDP noise on every value instead, charged to the privacy-budget
ledger (:mod:`trust.release.ledger`) in the same transaction as the ``ReleaseIssued`` event.

A stream that publishes an estimate (``StreamSpec.estimate``: ``prevalence_estimate``) takes the
same path from the plan on — signer, ``ReleaseIssued`` recorded first, the publisher — but its
content is made by :class:`trust.estimate.stream.PrevalenceEstimates` from the capture histories
of the plan's sources (only when the linked data changed materially) instead of cell counts
and disclosure control. A synthetic-records stream (``StreamSpec.synthetic``:
``synthetic_microdata``) likewise, by :class:`trust.synthesize.release.SyntheticMicrodata`. The
stage's counts never follow either kind.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from sqlalchemy import func, select

from trust.follow import StoreFollower, follow
from trust.release import counts as release_counts
from trust.release.aggregate import CountTable, table_from_counts
from trust.release.categories import MOST_FREQUENT, YEARS
from trust.release.cellkeys import RecordKeys, cell_keys
from trust.release.counts import counting_rule
from trust.release.disclosure.dp import PrivacyCost
from trust.release.disclosure.methods import (
    ContinualPrivacy,
    DifferentialPrivacy,
    DisclosureMethod,
    PostSuppression,
    method,
)
from trust.release.disclosure.suppression import (
    DisclosurePolicy,
    SuppressedCell,
    SuppressedTable,
    apply_step,
)
from trust.release.errors import ReleaseError, UnprotectedTable
from trust.release.history import (
    CONTINUAL,
    COUNTS_DIGEST,
    GUARDED,
    AggregateKey,
    PublishedHistory,
    counts_digest,
    counts_key,
    guarded_bitmap,
)
from trust.release.ledger import BudgetRefused, Ledger
from trust.release.population import Population
from trust.release.publish import (
    UNCHANGED,
    EmitResult,
    EstimateTable,
    Refused,
    ReleaseSigner,
    SyntheticTable,
    release_digest,
)
from trust.release.streams import CATALOGUE, STREAMS, SUBJECTS, VICTIMS, StreamSpec
from trust.stewardship.agreement import PrivacyBudget
from trust.stewardship.policy import NothingToRelease, Policy, ReleasePlan, Subscription
from trust.stewardship.release_review import in_force
from trust.store.db import writer
from trust.store.events import Event, ReleaseIssued
from trust.store.eventstore import EventStore
from trust.store.tables import ProjRelease

_OBSERVED_KEY = (("measure",), ("observed",))  # an estimate release's detected total

if TYPE_CHECKING:  # the estimator and synthesiser load numpy (statsmodels): only when used
    from trust.estimate.stream import PrevalenceEstimates
    from trust.synthesize.release import SyntheticMicrodata

log = logging.getLogger(__name__)


def subscriptions(
    store: EventStore, streams: Mapping[str, StreamSpec] = CATALOGUE
) -> list[Subscription]:
    """The subscriptions in force — approved by a second person for the definition of the stream
    the trust runs (``trust.stewardship.release_review``) — in (consumer, stream) order."""
    return in_force(store, streams)


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
    """A subscription that got no release in a check, and why (no data values); ``code``: the
    refusal's stable reason code, when it was refused."""

    subscription: Subscription
    reason: str
    code: str = ""


class _ReleasesAbout:
    """The store as one subject's differencing history reads it: the releases of streams about
    another subject are passed over (read without their signed bytes, as the history skips
    releases recorded before releases were recorded first), every page kept whole.

    The differencing rule treats aggregates with the same dimensions and categories in two
    streams to one consumer as one aggregate: true of the streams about victims (they count the
    same persons), not across subjects — the total of perpetrator records is not the total of
    victims, and neither may hide the other's figures as an earlier value of itself."""

    def __init__(self, store: EventStore, subject: str, subjects: Mapping[str, str]) -> None:
        self.store = store
        self.subject = subject
        self.subjects = subjects  # stream -> subject (a stream not declared: about victims)

    def last_seq(self) -> int:
        return self.store.last_seq()

    def read_types(
        self,
        types: Collection[str],
        after_seq: int,
        upto_seq: int,
        limit: int = 1000,
        *,
        records: bool = True,
    ) -> list[tuple[int, Event]]:
        page = self.store.read_types(types, after_seq, upto_seq, limit, records=records)
        return [(seq, self._seen(ev)) for seq, ev in page]

    def _seen(self, ev: Event) -> Event:
        if not isinstance(ev, ReleaseIssued):
            return ev
        if self.subjects.get(ev.stream, VICTIMS) == self.subject:
            return ev
        return dataclasses.replace(ev, signed_b64="")


class StageMisconfigured(ReleaseError):
    """A stream's disclosure method cannot run as the stage was built (e.g. cell keys without a
    record-key secret, a differentially private stream without a minimum interval)."""

    code = "stage_misconfigured"


def resolve_methods(
    streams: Mapping[str, StreamSpec], *, record_keys: bool
) -> dict[str, DisclosureMethod]:
    """Every stream's disclosure method, checked to be able to run.

    Raises:
        UnknownMethod: a stream names a method the registry does not declare.
        StageMisconfigured: a method needs what the stage was not given.
    """
    out: dict[str, DisclosureMethod] = {}
    for name, spec in streams.items():
        m = method(spec.method)
        if m.uses_record_keys and not record_keys:
            raise StageMisconfigured(
                f"stream {name}: method {m.name} needs the trust's record-key secret"
            )
        if isinstance(m, DifferentialPrivacy) and "year" in spec.dimensions and not spec.first_year:
            raise StageMisconfigured(
                f"stream {name}: a differentially private stream declares the years it shows "
                "(first_year): which years have a row must not come from the data"
            )
        if isinstance(m, DifferentialPrivacy) and any(
            c.kind == MOST_FREQUENT for c in spec.classifications()
        ):
            raise StageMisconfigured(
                f"stream {name}: a differentially private stream cannot choose its most frequent "
                "categories from the data; declare its categories"
            )
        if isinstance(m, ContinualPrivacy) != (spec.cumulative is not None):
            raise StageMisconfigured(
                f"stream {name}: a cumulative series, and only one, is released by a continual "
                "method (dp_continual)"
            )
        if spec.cumulative is not None and spec.cumulative.counts_from not in STREAMS:
            raise StageMisconfigured(
                f"stream {name}: it counts the persons of {spec.cumulative.counts_from!r}, "
                "which is no count stream"
            )
        if isinstance(m, DifferentialPrivacy) and spec.min_interval_s <= 0:
            # every release spends budget and fresh noise always differs: without an interval
            # the stream would release (and spend) at every check
            raise StageMisconfigured(
                f"stream {name}: a differentially private stream needs min_interval_s > 0"
            )
        out[name] = m
    return out


class ReleaseStage:
    """Makes each subscription's next release when its published figures change, and records it.

    For every subscription the policy point first fixes a :class:`ReleasePlan` (which sources'
    persons may be counted, which k) from the agreements alone; only then are persons counted.

    ``upstream``: followers whose decisions the counts depend on (linkage), brought up to the
    store's end before the counts are; ``linkage_model``: the model version linkage decides
    with (None: the trust does not link), quoted in each release's counting rule;
    ``record_key_secret``: the secret of the persons' record keys (cell-key perturbation and
    random rounding need it: :func:`trust.release.cellkeys.record_key_secret`).

    Raises (at construction): :class:`~trust.release.disclosure.methods.UnknownMethod`,
    :class:`StageMisconfigured`.
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
        record_key_secret: bytes | None = None,
        population: Population | None = None,
    ) -> None:
        self.methods = resolve_methods(streams, record_keys=record_key_secret is not None)
        self.record_keys = RecordKeys(record_key_secret) if record_key_secret else None
        # keys the digests of exact count tables the replay rule compares (none: no replay)
        self._counts_key = counts_key(record_key_secret) if record_key_secret else None
        #: the operator's population denominators (rate streams; None: not provided)
        self.population = population
        self.store = store
        self.upstream = list(upstream)
        self.counting_rule = counting_rule(linkage_model)
        self.linked = linkage_model is not None
        self.signer = signer
        self.policy = policy
        self.streams = dict(streams)
        self.clock = clock
        self.skipped: list[Skipped] = []
        # the counts follow the count streams only: estimates and synthetic records have no cells
        counted = {name: spec for name, spec in streams.items() if spec.counted}
        for spec in streams.values():  # a cumulative series counts a count stream's persons
            if spec.cumulative is not None and spec.cumulative.counts_from in STREAMS:
                counted.setdefault(
                    spec.cumulative.counts_from, STREAMS[spec.cumulative.counts_from]
                )
        self.counts = release_counts.ReleaseCounts(counted)
        self._estimates: PrevalenceEstimates | None = None
        self._synthetic: SyntheticMicrodata | None = None
        # what each consumer was given (differencing rule), per subject: the streams about
        # victims share one history, those about perpetrators another (:class:`_ReleasesAbout`)
        self.histories = {subject: PublishedHistory() for subject in SUBJECTS}
        self.history = self.histories[VICTIMS]
        self._subjects = {name: spec.subject for name, spec in self.streams.items()}
        #: seconds the last check spent protecting each stream's table (secondary + audit)
        self.protect_seconds: dict[str, float] = {}
        self._checked_upto = -1
        self._checked_day = -1
        self._pending = False
        # per (consumer, stream): the stage's notes on the table it protected last, recorded
        # in the release's event metadata, never in the signed release (``history.py``)
        self._notes: dict[tuple[str, str], dict[str, str]] = {}

    def release_once(
        self, on_recorded: Callable[[EmitResult], object] | None = None
    ) -> list[EmitResult]:
        """Sign and record the next release of every subscription whose figures changed. Sends
        nothing: the release publisher sends what was recorded — ``on_recorded``, called with
        each release as soon as it is recorded, lets the caller send it before the next one is
        made. Subscriptions are checked cheapest stream first (:attr:`StreamSpec.release_cost`),
        then in (consumer, stream) order.

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
        subs = sorted(
            subscriptions(self.store, self.streams),
            key=lambda sub: (
                self.streams[sub.stream].release_cost if sub.stream in self.streams else 0
            ),
        )
        made: list[EmitResult] = []
        self._pending = False
        for sub in subs:
            spec = self.streams.get(sub.stream)
            if spec is None:
                self.skipped.append(
                    Skipped(sub, "the trust declares no such stream", "unknown_stream")
                )
                continue
            if spec.rate is not None and self.population is None:
                self.skipped.append(
                    Skipped(
                        sub,
                        "no population denominators: tiptrust trust population FILE --source TEXT",
                        "no_population",
                    )
                )
                continue
            with self.store.engine.connect() as conn:
                if spec.cumulative is not None:
                    contributing = release_counts.contributing_sources(
                        conn, spec.cumulative.counts_from
                    )
                elif not spec.counted:  # every source with a counted person
                    contributing = self.estimates.contributing(conn)
                else:
                    contributing = release_counts.contributing_sources(conn, spec.name)
            try:
                plan = self.policy.plan(sub, spec, contributing, now_ms)
            except NothingToRelease as exc:
                self.skipped.append(Skipped(sub, str(exc), exc.code))
                log.info(
                    "release.not_allowed consumer=%s stream=%s purpose=%s",
                    sub.consumer,
                    sub.stream,
                    sub.purpose,
                )
                continue
            if spec.estimate is not None:
                result = self._estimate_release(plan, now_ms)
            elif spec.synthetic is not None:
                result = self._synthetic_release(plan, now_ms)
            elif spec.cumulative is not None:
                result = self._cumulative_release(plan, now_ms)
            else:
                result = self._release(plan, now_ms)
            if result is not None:
                made.append(result)
                if on_recorded is not None:
                    on_recorded(result)
        self._checked_upto = upto
        self._checked_day = day
        return made

    @property
    def estimates(self) -> PrevalenceEstimates:
        """The estimate streams' maker (the estimator loads at the first estimate check)."""
        if self._estimates is None:
            from trust.estimate.stream import PrevalenceEstimates

            self._estimates = PrevalenceEstimates(self.counts.event_types)
        return self._estimates

    @property
    def synthetic(self) -> SyntheticMicrodata:
        """The synthetic streams' maker (the synthesiser loads at the first check)."""
        if self._synthetic is None:
            from trust.synthesize.release import SyntheticMicrodata

            self._synthetic = SyntheticMicrodata(self.counts.event_types)
        return self._synthetic

    def _synthetic_release(self, plan: ReleasePlan, now_ms: int) -> EmitResult | None:
        """The next release of a synthetic-records stream: refused (skipped, with the code) for
        a purpose it does not serve or below k; re-made only when the persons changed."""
        outcome = self.synthetic.outcome(self.store, plan)
        if isinstance(outcome, Refused):
            self._refused(plan.subscription, outcome)
            return None
        return self._sign_and_record(plan, self.methods[plan.spec.name], outcome, now_ms)

    def _refused(self, sub: Subscription, outcome: Refused) -> None:
        self.skipped.append(Skipped(sub, outcome.reason, outcome.code))
        log.info(
            "release.refused consumer=%s stream=%s reason=%s",
            sub.consumer,
            sub.stream,
            outcome.code,
        )

    def _cumulative_release(self, plan: ReleasePlan, now_ms: int) -> EmitResult | None:
        """The next release of a cumulative monthly series (``continual.py``): made when a
        calendar month has closed since the last one, with every closed month; each contributing
        source is charged the series' ε the first time it is counted in it. None when no month
        has closed, or (skipped, with the reason) when the ledger refuses or the series ended."""
        from trust.release.disclosure.continual import (  # OpenDP loads at the first release
            ContinualCounter,
            Series,
            TreeShape,
        )

        spec, sub = plan.spec, plan.subscription
        m = self.methods[spec.name]
        assert isinstance(m, ContinualPrivacy) and spec.cumulative is not None  # construction
        with self.store.engine.connect() as conn:
            counts = release_counts.cell_counts(
                conn, STREAMS[spec.cumulative.counts_from], plan.sources
            )
            charged = Ledger.charged_sources(conn, sub.consumer, spec.name)
        persons = sum(counts.values())
        history = self.histories[spec.subject]
        history.update(self.store)
        note = history.series(sub.consumer, spec.name)
        if note is None:
            series = Series.begin(now_ms, persons)
        else:
            series = Series.from_note(note)
            if series.close_months(now_ms, persons) == 0:
                return None  # the latest month is not over: nothing new to publish
        counter = ContinualCounter(
            TreeShape.for_horizon(m.horizon_months, m.branching),
            m.cost,
            changes_per_person=m.changes_per_person,
        )
        newly = [(s, b) for s, b in plan.privacy_budgets if s not in charged]
        try:
            values = series.publish(counter)
            state = None
            with self.store.engine.connect() as conn:
                if newly:
                    state = Ledger.check(conn, sub.consumer, newly, m.cost)
        except ReleaseError as exc:  # the series ended, or a budget refuses a new source
            self._refuse(sub, exc)
            return None
        published = [v if v >= plan.k else None for v in values]
        months = series.months()
        table = SuppressedTable(
            stream=spec.name,
            dimensions=spec.dimensions,
            categories=(months,),
            cells=tuple(
                SuppressedCell((month,), v, v is None)
                for month, v in zip(months, published, strict=True)
            ),
            total=published[-1],
            total_suppressed=published[-1] is None,
            period_start=None,
            period_end=None,
            k=plan.k,
            steps=(
                "differential privacy, continual release: OpenDP's b-ary tree "
                f"(branching {counter.shape.branching}, {counter.shape.leaves} months) with "
                f"Laplace noise of scale {counter.noise_scale:.4g} on every node, each node drawn "
                f"once (epsilon {m.cost.epsilon:g} for the whole series, a person changing at "
                f"most {m.changes_per_person} months); noisy values below k suppressed "
                "(values not exact)",
            ),
            exact=False,
            parameters={
                "method_name": m.name,
                "epsilon": f"{m.cost.epsilon:g}",
                "delta": "0",
                "noise_scale": f"{counter.noise_scale:.6g}",
                "horizon_months": str(counter.shape.leaves),
                "branching": str(counter.shape.branching),
                "series_start": months[0],
                **(state.parameters() if state is not None else {}),
            },
        )
        charge = (newly, m.cost) if newly else None
        return self._sign_and_record(
            plan, m, table, now_ms, {CONTINUAL: series.note()}, charge=charge
        )

    def _estimate_release(self, plan: ReleasePlan, now_ms: int) -> EmitResult | None:
        """The next release of an estimate stream: refused (skipped, with the code) below k or
        with fewer than two lists; nothing when the linked data did not change materially."""
        sub = plan.subscription
        outcome = self.estimates.outcome(self.store, plan)
        if outcome is None:
            return None
        if isinstance(outcome, Refused):
            self._refused(sub, outcome)
            return None
        # the detected total is an exact count of the same persons as the count streams' total:
        # to one consumer it follows their differencing rule (moved by 0 or at least k since
        # every earlier exact publication of either), else a small group could be read off
        earlier = self._earlier(plan.spec, sub.consumer)
        published = earlier.get(((), ()), set()) | earlier.get(_OBSERVED_KEY, set())
        if any(0 < abs(outcome.observed - v) < plan.k for v in published):
            reason = "the detected total moved by less than k since a total the consumer holds"
            self._refused(sub, Refused("differencing", reason))
            return None
        result = self._sign_and_record(plan, self.methods[plan.spec.name], outcome, now_ms)
        if result is not None:
            self.estimates.released(sub, result.release)
        return result

    def _rule(self, plan: ReleasePlan, now_ms: int) -> str:
        """The counting rule, naming the sources whose records are not linked with each other
        because their agreements (in force now) do not allow it (a stream about perpetrators:
        one per perpetrator record, never linked)."""
        if plan.spec.subject != VICTIMS:
            return counting_rule(None, plan.spec.subject)
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

    def _earlier(self, spec: StreamSpec, consumer: str) -> Mapping[AggregateKey, set[float]]:
        """Every exact value ``consumer`` was given by the streams about ``spec``'s subject."""
        history = self.histories[spec.subject]
        # the view reads the store as the history expects it (last_seq, read_types)
        history.update(cast(EventStore, _ReleasesAbout(self.store, spec.subject, self._subjects)))
        return history.of(consumer)

    def _sticky(self, plan: ReleasePlan) -> Mapping[str, frozenset[str]] | None:
        """The categories of the stream's most-frequent and (undeclared) year dimensions
        published to the consumer before: they stay in its tables (``disclosure/differencing.md``,
        sticky categories), and a new year appears only with k persons; None for a stream
        without such a dimension."""
        spec = plan.spec
        dims = [
            c.dimension
            for c in spec.classifications()
            if c.kind == MOST_FREQUENT or (c.kind == YEARS and spec.first_year is None)
        ]
        if not dims:
            return None
        self._earlier(spec, plan.subscription.consumer)  # brings the history up to date
        before = self.histories[spec.subject].categories(
            plan.subscription.consumer, plan.subscription.stream
        )
        return {d: before[d] for d in dims if d in before}

    def _protect(self, plan: ReleasePlan, counts: CountTable) -> SuppressedTable | None:
        """The table to publish under the plan's k and the differencing rule against what the
        consumer was given; None (recorded as skipped, with the reason) when the table with
        margins cannot be protected or fails the LP audit."""
        # the disclosure-control steps (numpy, scipy's LP solver) load at the first release
        # check, not when the CLI starts
        from trust.release.disclosure.differencing import DifferencingStep, rebased_rest
        from trust.release.disclosure.margins import protect_margins, replay_margins
        from trust.release.disclosure.secondary import SuppressionFailed

        sub = plan.subscription
        earlier: Mapping[AggregateKey, Collection[float]] = self._earlier(plan.spec, sub.consumer)
        if not plan.spec.margins:
            # cells and total only: primary suppression, then the differencing rule
            return DisclosurePolicy(plan.k, (DifferencingStep(earlier, plan.k),)).apply(counts)
        history = self.histories[plan.spec.subject]
        fixed = {  # the dimensions with a Rest (undeclared years too) and their fixed categories
            c.dimension: frozenset(cat.code for cat in c.categories)
            for c in plan.spec.classifications()
            if c.kind == MOST_FREQUENT or (c.kind == YEARS and plan.spec.first_year is None)
        }
        if fixed:  # what Rest held when each earlier value was published
            earlier = rebased_rest(earlier, history.rest_values(sub.consumer), counts, fixed)
        # what the previous release of this stream to this consumer hid stays hidden while small
        previous = history.suppressed(sub.consumer, sub.stream)
        guarded = history.guarded(sub.consumer, sub.stream)
        digest = None
        protected = None
        if self._counts_key is not None:
            digest = counts_digest(self._counts_key, counts, plan.k)
            again = history.made_from(self.store, sub.consumer, sub.stream, digest)
            if again is not None:  # the same exact counts as an earlier release: its pattern
                protected = replay_margins(counts, plan.k, again, earlier=earlier, guarded=guarded)
        try:
            if protected is None:
                protected = protect_margins(
                    counts,
                    plan.k,
                    earlier=earlier,
                    previous=previous,
                    carry_below=2 * plan.k,
                    guarded=guarded,
                )
        except (UnprotectedTable, SuppressionFailed) as exc:
            reason = f"not released: the table failed disclosure control ({exc.code})"
            self.skipped.append(Skipped(sub, reason, exc.code))
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
            "secondary=%d replayed=%s seconds=%.3f",
            sub.consumer,
            sub.stream,
            len(protected.table.aggregates),
            protected.primary,
            protected.forced,
            protected.secondary,
            protected.replayed,
            protected.seconds,
        )
        keys = [(a.dimensions, a.key) for a in protected.table.aggregates]
        notes: dict[str, str] = {GUARDED: guarded_bitmap(keys, protected.guarded)}
        if digest is not None:
            notes[COUNTS_DIGEST] = digest
        self._notes[(sub.consumer, sub.stream)] = notes
        return protected.table

    def _perturb(
        self, plan: ReleasePlan, m: PostSuppression, table: SuppressedTable
    ) -> SuppressedTable:
        """The protected table after the stream's method (rounding, cell-key perturbation)."""
        keys = None
        if m.uses_record_keys:
            assert self.record_keys is not None  # checked at construction
            with self.store.engine.connect() as conn:
                keys = cell_keys(conn, plan.spec, plan.sources, self.record_keys, table.hierarchies)
        step = m.step(table.k, keys)
        return table if step is None else apply_step(table, step)

    def _private(
        self,
        plan: ReleasePlan,
        m: DifferentialPrivacy,
        counts: CountTable,
        last_issued: int | None,
        now_ms: int,
    ) -> SuppressedTable | None:
        """The differentially private table of ``plan``, stating the budgets after it; None
        (skipped, with the reason) when the ledger refuses it or the stream's interval has not
        passed."""
        from trust.release.disclosure.dp import dp_table  # OpenDP loads at the first DP release

        sub = plan.subscription
        if last_issued is not None and now_ms - last_issued < plan.spec.min_interval_s * 1000:
            self._pending = True  # fresh noise always differs: only the interval paces releases
            return None
        try:
            with self.store.engine.connect() as conn:
                state = Ledger.check(conn, sub.consumer, plan.privacy_budgets, m.cost)
        except BudgetRefused as exc:
            self._refuse(sub, exc)
            return None
        table = dp_table(counts, plan.k, m.mechanism, m.cost, margins=plan.spec.margins)
        parameters = {**table.parameters, "method_name": m.name, **state.parameters()}
        return dataclasses.replace(table, parameters=parameters)

    def _refuse(self, sub: Subscription, exc: ReleaseError) -> None:
        self.skipped.append(Skipped(sub, str(exc), exc.code))
        log.warning(
            "release.refused consumer=%s stream=%s reason=%s", sub.consumer, sub.stream, exc.code
        )

    def _release(self, plan: ReleasePlan, now_ms: int) -> EmitResult | None:
        with self.store.engine.connect() as conn:
            counts = release_counts.cell_counts(conn, plan.spec, plan.sources)
        sub = plan.subscription
        m = self.methods[plan.spec.name]
        last = last_release(self.store, sub.consumer, sub.stream)
        years = None
        if plan.spec.first_year is not None:  # the declared years, whoever is counted
            this_year = time.gmtime(now_ms / 1000).tm_year
            years = range(plan.spec.first_year, max(this_year, plan.spec.first_year) + 1)
        count_table = table_from_counts(plan.spec, counts, self._sticky(plan), years=years)
        table: SuppressedTable | None
        if isinstance(m, DifferentialPrivacy):
            table = self._private(plan, m, count_table, last.issued_at_ms if last else None, now_ms)
        elif isinstance(m, ContinualPrivacy):  # pragma: no cover - resolve_methods refuses it
            raise StageMisconfigured(f"stream {plan.spec.name}: a continual method needs a series")
        else:
            table = self._protect(plan, count_table)
            table = None if table is None else self._perturb(plan, m, table)
        if table is None:
            return None
        notes = self._notes.pop((sub.consumer, sub.stream), {})
        return self._sign_and_record(plan, m, table, now_ms, notes)

    def _sign_and_record(
        self,
        plan: ReleasePlan,
        m: DisclosureMethod,
        table: SuppressedTable | EstimateTable | SyntheticTable,
        now_ms: int,
        notes: Mapping[str, str] | None = None,
        *,
        charge: tuple[Sequence[tuple[str, PrivacyBudget | None]], PrivacyCost] | None = None,
    ) -> EmitResult | None:
        """Sign ``table``'s release when it changed and the interval passed, and record it (with
        a differentially private release's ledger charge) in one transaction. ``notes``: the
        stage's own notes on the table, kept in the event's metadata only. ``charge``: the
        budgets charged and the cost, where it is not the plan's and the method's (a continual
        series charges each source once)."""
        if charge is None and isinstance(m, DifferentialPrivacy):
            charge = (plan.privacy_budgets, m.cost)
        sub = plan.subscription
        last = last_release(self.store, sub.consumer, sub.stream)
        result = self.signer.maybe_sign(
            table,
            plan,
            counting_rule=self._rule(plan, now_ms),
            last_digest=last.digest if last else None,
            last_issued_ms=last.issued_at_ms if last else None,
            now_ms=now_ms,
            sequence=next_sequence(self.store, sub.consumer, sub.stream),
            population=self.population,
        )
        if result is None:
            if (
                self.signer.skip_reason(
                    plan.spec,
                    release_digest(plan.spec, table, self.population),
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
        event = ReleaseIssued(
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
                "method_parameters": dict(table.parameters),
                "source_count": rel.source_count,
                "sources_left_out": plan.sources_left_out,
                "agreement_versions": [list(v) for v in plan.agreement_versions],
                **(notes or {}),
            },
            signed_b64=base64.b64encode(result.raw_bytes).decode(),
            topic=plan.topic,
            consumer=sub.consumer,
            purpose=sub.purpose,
        )
        # one (consumer, stream, sequence) can be recorded once: the projection's key refuses
        # a second, so no two different releases can ever share a sequence number. A
        # differentially private release is charged to the ledger in the same transaction,
        # after the store's append lock, with the budgets checked again there.
        try:
            with writer(self.store.engine).begin() as conn:
                EventStore.append_in(conn, [event])
                if charge is not None:
                    Ledger.charge(
                        conn,
                        consumer=sub.consumer,
                        budgets=charge[0],
                        cost=charge[1],
                        release_id=rel.release_id,
                        stream=rel.stream,
                        sequence=rel.sequence,
                        at_ms=now_ms,
                    )
        except BudgetRefused as exc:  # another stage spent the budget since the check
            self._refuse(sub, exc)
            return None
        log.info(
            "release.recorded consumer=%s stream=%s sequence=%d sources=%d sources_left_out=%d "
            "k=%d method=%s",
            sub.consumer,
            sub.stream,
            rel.sequence,
            len(plan.sources),
            plan.sources_left_out,
            plan.k,
            m.name,
        )
        return result
