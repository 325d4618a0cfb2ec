"""The ``synthetic_microdata`` release: k-anonymous synthetic records of a plan's linked persons.

The release stage (:mod:`trust.release.stage`) asks :class:`SyntheticMicrodata` for the
:class:`~trust.release.publish.SyntheticTable` of a
:class:`~trust.stewardship.policy.ReleasePlan`, then signs, records and publishes it like any
release. What happens here:

1. **Research only, allowed sources only.** A subscription whose purpose the stream does not
   serve (``Synthetic.purposes``: research) is refused (``purpose_not_served``) whatever the
   agreements say; otherwise the persons are the counted units of the plan's sources
   (:func:`trust.estimate.from_trust.counted_units`), each person's facts combined over their
   records of those sources alone, and each person is one sensitive row: their category in each
   of the stream's dimensions, as the count streams classify them (``Unknown`` is a value).
2. **Below k** persons nothing is released (``below_k``).
3. **Synthesis at the plan's k**, seeded by the digest of the sensitive rows, so the same persons
   give the same records (and the signer then skips them as unchanged).
4. **The independent checker** (:func:`trust.synthesize.check`, which shares no counting code
   with the synthesiser) verifies that no combination of any length in the records is held by
   fewer than k persons; if one were, nothing is released (``leak``) — the release is never
   signed on the synthesiser's word alone.
5. **Utility** per combination length up to the stream's reporting length (mean relative error,
   share of the combinations held by k or more persons that are preserved) and the record
   expansion are stated in the release's metadata; the number of persons is not (only the
   records, whose single counts are the persons' rounded down to multiples of k).
6. **The companion aggregate** (:mod:`trust.synthesize.companion`): the persons' table over the
   stream's four attributes — exactly the table of the count stream ``victims_by_sex_age_form``
   (:data:`COMPANION_TABLE`) — with every margin, protected by the release path
   (:func:`trust.release.disclosure.margins.protect_margins`: suppression below k, secondary
   suppression, the LP audit); of what it publishes, the aggregates broken down by 1 … the
   reporting length attributes, rounded down to a multiple of k, in the same signed release
   (metadata :data:`COMPANION_AGGREGATE`, JSON; its digest is part of the release's, so a change
   of a rounded count makes a new release). Suppressed ones are left out, and so are the few
   that, read beside the records' single counts and the count stream's cells, would show a
   small combination non-empty (:mod:`trust.synthesize.beside`). It is verified on the
   checker's own counting path (:func:`trust.synthesize.check.check_aggregate`) before signing:
   a count of a combination held by fewer than k persons refuses the release (``leak``), as
   does a count that is not the true one rounded down (``aggregate_wrong``); a table the
   release path cannot protect refuses it with that path's code. Why no reader can show a
   combination of 1 … k - 1 persons non-empty, within a release or across releases:
   ``METHOD.md``, "The companion aggregate".

The outcome is kept per subscription under the plan's sources, its k and the store position of
the last event that can change who is counted, so an unchanged store synthesises nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trust.estimate.from_trust import counted_units
from trust.estimate.stream import BELOW_K, counted_position
from trust.release.aggregate import CountTable, cell_of, table_from_counts
from trust.release.categories import UNKNOWN
from trust.release.counts import combine
from trust.release.errors import ReleaseError
from trust.release.publish import Refused, SyntheticTable
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM
from trust.stewardship.policy import ReleasePlan, Subscription
from trust.store.eventstore import EventStore

PURPOSE_NOT_SERVED = "purpose_not_served"
LEAK = "leak"
AGGREGATE_WRONG = "aggregate_wrong"

#: The metadata entry that carries the companion aggregate (:func:`encode_aggregate`'s JSON).
COMPANION_AGGREGATE = "synthesis_companion_aggregate"
#: What one entry of the companion aggregate is, as the release states it.
COMPANION_RULE = (
    "Combinations of 1 to {length} attributes held by at least {k} persons, each count rounded "
    "down to a multiple of {k} (the true count is that number to that number + {k1}): those the "
    "table of persons by every attribute publishes after suppression of the counts below {k} "
    "and secondary suppression, less any that would help narrow a count below {k} from the "
    "records. A combination not listed is held by fewer than {k} persons, or "
    "by more but hidden so that no smaller count can be worked out from the others. Counts of "
    "persons, not of synthetic records."
)
#: The count stream whose table (the same persons by the same attributes) the companion
#: aggregate is cut from, once protected.
COMPANION_TABLE = VICTIMS_BY_SEX_AGE_FORM

Outcome = SyntheticTable | Refused


@dataclass(frozen=True)
class _Kept:
    key: tuple[tuple[str, ...], int, int, str]  # sources, k, store position, purpose
    rows: str  # digest of the sensitive rows ("" when none were read)
    outcome: Outcome


def sensitive_rows(store: EventStore, plan: ReleasePlan) -> list[tuple[str, ...]]:
    """One row per counted person of the plan's sources: their category in each dimension."""
    cell = cell_of(plan.spec)
    with store.engine.connect() as conn:
        units = counted_units(conn, plan.sources)
    return sorted(cell(combine((unit,), records)) for unit, records in units.items())


class SyntheticMicrodata:
    """The synthetic-records tables of the stage's synthetic subscriptions (module docstring);
    ``made`` counts the syntheses actually run."""

    def __init__(self, counted_events: frozenset[str]) -> None:
        self.counted_events = counted_events
        self._kept: dict[Subscription, _Kept] = {}
        self.made = 0

    def outcome(self, store: EventStore, plan: ReleasePlan) -> Outcome:
        """The synthetic records to release for ``plan``, or the refusal."""
        settings = plan.spec.synthetic
        assert settings is not None  # the stage asks only for synthetic streams
        sub = plan.subscription
        key = (plan.sources, plan.k, counted_position(store, self.counted_events), sub.purpose)
        kept = self._kept.get(sub)
        if kept is not None and kept.key == key:
            return kept.outcome
        if sub.purpose not in settings.purposes:
            refused = Refused(
                PURPOSE_NOT_SERVED,
                f"synthetic records serve {', '.join(settings.purposes)} only",
            )
            self._kept[sub] = _Kept(key, "", refused)
            return refused
        rows = sensitive_rows(store, plan)
        if len(rows) < plan.k:
            refused = Refused(BELOW_K, f"fewer than k = {plan.k} persons")
            self._kept[sub] = _Kept(key, "", refused)
            return refused
        digest = hashlib.sha256(json.dumps([plan.k, rows]).encode()).hexdigest()
        if kept is not None and kept.rows == digest and kept.key[:2] == key[:2]:
            self._kept[sub] = _Kept(key, digest, kept.outcome)
            return kept.outcome
        outcome = self._synthesise(plan, rows, digest)
        self._kept[sub] = _Kept(key, digest, outcome)
        return outcome

    def _synthesise(self, plan: ReleasePlan, rows: list[tuple[str, ...]], digest: str) -> Outcome:
        from trust.synthesize import Table, check, length_utility, synthesize  # numpy: here
        from trust.synthesize.aggregate import encode_aggregate
        from trust.synthesize.check import check_aggregate
        from trust.synthesize.companion import protected_companion
        from trust.synthesize.errors import SynthesisError

        settings = plan.spec.synthetic
        assert settings is not None
        columns = plan.spec.dimensions
        sensitive = Table.from_rows(columns, rows)
        synthetic = synthesize(sensitive, plan.k, settings.mode, seed=int(digest[:8], 16))
        out = list(synthetic.rows())
        self.made += 1
        verdict = check(columns, rows, columns, out, plan.k)
        if not verdict.ok:
            return Refused(LEAK, "the checker found a combination held by fewer than k persons")
        if not out:
            return Refused(BELOW_K, f"no combination is held by k = {plan.k} persons")
        try:
            companion = protected_companion(
                companion_table(columns, rows), columns, plan.k, settings.length
            )
        except (ReleaseError, SynthesisError) as e:  # the audit refused the table, …
            return Refused(e.code, "the companion aggregate's table could not be protected")
        aggregate = companion.counts
        listed = ((a.columns, a.values, a.count) for a in aggregate)
        audit = check_aggregate(columns, rows, listed, plan.k, settings.length)
        if audit.leaks:
            return Refused(
                LEAK, "a companion count is of a combination held by fewer than k persons"
            )
        if not audit.ok:
            return Refused(AGGREGATE_WRONG, "the companion aggregate departs from its rule")
        utility = length_utility(sensitive, synthetic, plan.k, settings.length)
        parameters = {
            "synthesis_mode": settings.mode,
            "synthesis_reporting_length": str(settings.length),
            "synthesis_leaks": str(verdict.leaks),
            "synthesis_expansion": f"{len(out) / len(rows):.3f}",
            **{
                f"synthesis_utility_length_{n}": (
                    f"mean relative error {u.mre:.3f}, preserved {u.preserved:.3f}"
                )
                for n, u in sorted(utility.items())
            },
            "synthesis_companion_rule": COMPANION_RULE.format(
                length=settings.length, k=plan.k, k1=plan.k - 1
            ),
            "synthesis_companion_combinations": str(len(aggregate)),
            COMPANION_AGGREGATE: encode_aggregate(aggregate),
        }
        years = [int(r[columns.index("year")]) for r in out if _known_year(r, columns)]
        return SyntheticTable(
            stream=plan.spec.name,
            columns=columns,
            rows=tuple(out),
            k=plan.k,
            period_start=min(years) if years else None,
            period_end=max(years) if years else None,
            parameters=parameters,
        )


def companion_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> CountTable:
    """The persons' count table of :data:`COMPANION_TABLE` (its dimensions' order, every
    category, zeros included) from the sensitive rows (one per person, in ``columns``' order)."""
    at = [list(columns).index(d) for d in COMPANION_TABLE.dimensions]
    cells = Counter(tuple(row[j] for j in at) for row in rows)
    return table_from_counts(COMPANION_TABLE, cells)


def _known_year(row: tuple[str, ...], columns: tuple[str, ...]) -> bool:
    if "year" not in columns:
        return False
    value = row[columns.index("year")]
    return bool(value) and value != UNKNOWN
