"""The ``prevalence_estimate`` release: a subscription's estimate from its plan's linked persons.

The release stage (:mod:`trust.release.stage`) asks :class:`PrevalenceEstimates` for the
:class:`~trust.release.publish.EstimateTable` of a :class:`~trust.stewardship.policy.ReleasePlan`
and then signs, records and publishes it like any release. What happens here:

1. **Only the plan's sources.** Capture histories come from
   :func:`trust.estimate.from_trust.histories_from_trust` with one list per source the plan
   includes: a person seen by a source the subscription may not receive is on the allowed lists
   only, or not in the table at all.
2. **Refusals** (the stage records them as skipped, with the code): fewer than two of the plan's
   lists hold a person (``too_few_lists``), more lists than the models take
   (``too_many_lists``: :data:`~trust.estimate.histories.MAX_LISTS`), or fewer than the plan's
   k persons are detected (``below_k``). Nothing is released then — not even the detected total.
3. **Material change.** An estimate costs up to about a second, so it is made only when the
   linked data changed *materially* since the subscription's last estimate release: no earlier
   release, the lists (the plan's sources) or k changed, the period (first and last year of
   exploitation) changed, or the detected total moved by at least k. A smaller movement releases
   nothing (``None``), and makes no estimate. The stream's minimum interval is applied after
   this by the signer, as for every stream.
4. **Caching.** The outcome is kept per subscription under the plan's sources, its k and the store
   position of the last event that can change who is counted (the events the stage's counts
   follow): when neither moved, the histories are not even read again. When they moved but the
   histories are the same (e.g. a record re-sent unchanged), the earlier estimate is reused.
5. **No estimate.** When the estimator finds none (the lists never overlap, one list holds
   everyone, …), the release carries the detected total, ``estimate``/``ci_low``/``ci_high``
   null, ``estimate_exists`` false and the reason: a consumer holding an earlier estimate must
   learn that the data no longer support one, rather than keep using it.

The histories never leave this module: only the four totals and the model's description do.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, select

from schemas.release import Release, ReleaseRejected, decode_release
from trust.estimate.errors import EstimateError, ReasonCode
from trust.estimate.from_trust import TrustHistories, histories_from_trust
from trust.estimate.histories import MAX_LISTS
from trust.release.categories import UNKNOWN
from trust.release.publish import EstimateTable, Refused
from trust.release.streams import OBSERVED
from trust.stewardship.policy import ReleasePlan, Subscription
from trust.store.eventstore import EventStore
from trust.store.tables import ProjRelease, proj_persons, stored_events

#: Why a subscription got no estimate release (the stage's skip codes).
TOO_FEW_LISTS = "too_few_lists"
TOO_MANY_LISTS = "too_many_lists"
BELOW_K = "below_k"


Outcome = EstimateTable | Refused | None  # None: no material change since the last release


@dataclass(frozen=True)
class _Kept:
    key: tuple[tuple[str, ...], int, int]  # the plan's sources, its k, the store position
    histories: str  # digest of the histories the outcome was made from ("" when none were read)
    outcome: Outcome


def contributing_sources(conn: Connection) -> list[str]:
    """The sources with at least one counted victim record (the plan's candidates)."""
    p = proj_persons.c
    counted = ~(p.retracted | p.disposed | p.consent_withdrawn)
    return sorted(conn.execute(select(p.source_id).where(counted).distinct()).scalars())


def counted_position(store: EventStore, event_types: frozenset[str]) -> int:
    """The seq of the last stored event of ``event_types`` (0 when none): what the histories
    depend on, so an estimate made at this position still holds while it does not move."""
    e = stored_events.c
    query = (
        select(e.seq).where(e.event_type.in_(sorted(event_types))).order_by(e.seq.desc()).limit(1)
    )
    with store.engine.connect() as conn:
        seq = conn.execute(query).scalar()
    return int(seq or 0)


def last_estimate_release(store: EventStore, consumer: str, stream: str) -> Release | None:
    """The subscription's last recorded release, decoded from the signed bytes the store holds
    (None when there is none, or it was recorded before releases carried their bytes)."""
    r = ProjRelease
    e = stored_events.c
    with store.engine.connect() as conn:
        release_id = conn.execute(
            select(r.release_id)
            .where(r.consumer == consumer, r.stream == stream)
            .order_by(r.sequence.desc())
            .limit(1)
        ).scalar()
        if release_id is None:
            return None
        payload = conn.execute(
            select(e.payload).where(e.event_type == "ReleaseIssued", e.event_id == release_id)
        ).scalar()
    if payload is None:
        return None
    raw = json.loads(payload).get("signed_b64", "")
    if not raw:
        return None
    try:
        return decode_release(base64.b64decode(raw))  # our own bytes: read, not verified
    except ReleaseRejected:
        return None


def material(previous: Release | None, table: _Basis, k: int) -> bool:
    """Whether the histories moved enough since ``previous`` to estimate again (module doc)."""
    if previous is None:
        return True
    before = next(
        (a.value for a in previous.aggregates if a.key == (OBSERVED,) and a.dimensions), None
    )
    return (
        before is None
        or previous.sources != table.sources
        or previous.k != k
        or (previous.period_start, previous.period_end) != table.period
        or abs(table.observed - float(before)) >= k
    )


@dataclass(frozen=True)
class _Basis:
    """What materiality and the cache look at: the lists, the detected total, the period."""

    sources: tuple[str, ...]
    observed: int
    period: tuple[int | None, int | None]
    digest: str


def _basis(got: TrustHistories, sources: tuple[str, ...]) -> _Basis:
    years = [int(s[0]) for s in got.tables if s and s[0] != UNKNOWN]
    period = (min(years), max(years)) if years else (None, None)
    canonical = {
        "lists": list(got.pooled.lists),
        "counts": list(got.pooled.counts),
        "period": list(period),
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    return _Basis(sources, got.persons, period, digest)


class PrevalenceEstimates:
    """The estimate tables of the stage's estimate subscriptions, made only when needed
    (module docstring). ``computed`` counts the estimates actually made (each up to a
    second), so a test can see that an unchanged store makes none."""

    def __init__(self, counted_events: frozenset[str]) -> None:
        #: the event types that can change who is counted (the stage's counts follow them)
        self.counted_events = counted_events
        self._kept: dict[Subscription, _Kept] = {}
        #: the last estimate release recorded per subscription (read from the store once)
        self._released: dict[Subscription, Release | None] = {}
        self.computed = 0

    def released(self, sub: Subscription, release: Release) -> None:
        """Note the release just recorded for ``sub`` (the basis of the next materiality)."""
        self._released[sub] = release

    @staticmethod
    def contributing(conn: Connection) -> list[str]:
        """The sources a plan chooses from: those with a counted victim record."""
        return contributing_sources(conn)

    def outcome(self, store: EventStore, plan: ReleasePlan) -> Outcome:
        """The estimate to release for ``plan``, a refusal, or None when nothing changed
        materially since the subscription's last release."""
        sub = plan.subscription
        key = (plan.sources, plan.k, counted_position(store, self.counted_events))
        kept = self._kept.get(sub)
        if kept is not None and kept.key == key:
            return kept.outcome
        if len(plan.sources) > MAX_LISTS:
            refused = Refused(TOO_MANY_LISTS, f"more than {MAX_LISTS} lists: the models cannot")
            self._kept[sub] = _Kept(key, "", refused)
            return refused
        try:
            got = histories_from_trust(store, lists=plan.sources, strata=("year",))
        except EstimateError as exc:
            if exc.code is not ReasonCode.TOO_FEW_LISTS:
                raise
            refused = Refused(TOO_FEW_LISTS, "fewer than two of the lists allowed have persons")
            self._kept[sub] = _Kept(key, "", refused)
            return refused
        basis = _basis(got, plan.sources)
        if basis.observed < plan.k:
            refused = Refused(BELOW_K, f"fewer than k = {plan.k} persons detected")
            self._kept[sub] = _Kept(key, basis.digest, refused)
            return refused
        if (
            kept is not None
            and kept.histories == basis.digest
            and kept.key[:2] == key[:2]
            and kept.outcome is not None
        ):
            self._kept[sub] = _Kept(key, basis.digest, kept.outcome)
            return kept.outcome
        if sub not in self._released:
            self._released[sub] = last_estimate_release(store, sub.consumer, sub.stream)
        if not material(self._released[sub], basis, plan.k):
            self._kept[sub] = _Kept(key, basis.digest, None)
            return None
        table = self._estimate(plan, got, basis)
        self._kept[sub] = _Kept(key, basis.digest, table)
        return table

    def _estimate(self, plan: ReleasePlan, got: TrustHistories, basis: _Basis) -> EstimateTable:
        from trust.estimate.prevalence import estimate_population  # numpy, statsmodels: here
        from trust.estimate.selection import Criterion, SelectionRule

        settings = plan.spec.estimate
        assert settings is not None  # the stage asks only for estimate streams
        result = estimate_population(
            got.pooled, SelectionRule(criterion=Criterion(settings.criterion)), level=settings.level
        )
        self.computed += 1
        parameters: dict[str, str] = {
            "estimate_exists": "true" if result.exists else "false",
            "lists": ", ".join(result.lists),
            "modelled_lists": ", ".join(result.modelled_lists),
            "lists_merged": "; ".join(f"{a} into {b}" for a, b in result.merged),
            "lists_dropped": ", ".join(result.dropped),
            "model": ", ".join(result.model) or "main effects only (lists independent)",
            "model_terms_at_minus_infinity": ", ".join(result.boundary_terms),
            "criterion": result.criterion,
            "search": result.search,
            "interval_method": result.interval_method,
            "interval_level": f"{result.level:g}",
        }
        if result.exists and result.ci_high is None:
            parameters["ci_high_unbounded"] = "true: the data put no upper limit on the total"
        if not result.exists:
            parameters["no_estimate_reason_code"] = str(result.reason_code or "")
            parameters["no_estimate_reason"] = result.reason or ""
        exists = result.exists and result.estimate is not None
        return EstimateTable(
            stream=plan.spec.name,
            observed=basis.observed,
            estimate=result.estimate if exists else None,
            ci_low=result.ci_low if exists else None,
            ci_high=result.ci_high if exists else None,
            k=plan.k,
            period_start=basis.period[0],
            period_end=basis.period[1],
            parameters=_clean(parameters),
        )


def _clean(parameters: Mapping[str, str]) -> dict[str, str]:
    """The parameters without empty entries (a release states what applies)."""
    return {name: value for name, value in parameters.items() if value}
