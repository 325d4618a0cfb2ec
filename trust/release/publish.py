"""Build, sign and publish a subscription's release on ``tip.release.<consumer>.<stream>``.

:func:`build_release` turns a disclosure-controlled table into a :class:`schemas.release.Release`
with its descriptive metadata (annex 5); :class:`ReleaseSigner` signs it when the published cells
changed and the stream's minimum interval has passed. Nothing is sent from there: the release
stage records a ``ReleaseIssued`` event carrying the signed bytes first, and
:class:`ReleasePublisher`, a follower of the store, puts exactly those bytes on the topic. A crash
between the two re-sends the same bytes; no crash can make two different releases with one
sequence number.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.keys import SigningKey
from schemas.release import CAVEAT, Aggregate, Release, signed_release
from transport import EventLog
from trust.release.aggregate import FORM_RULE, labels_for
from trust.release.disclosure import SuppressedTable
from trust.release.errors import UnprotectedTable
from trust.release.population import Population
from trust.release.rates import rate_release, rated_digest
from trust.release.streams import AGE_GROUPS, StreamSpec
from trust.stewardship.policy import ReleasePlan
from trust.store.events import Event, ReleaseIssued

ORIGINATING_ORGANISATION = "tiptrust trust"

YEAR_RULE = (
    "Year of exploitation; persons without a recorded year are in year 'Unknown', outside the "
    "period."
)


def table_digest(table: SuppressedTable) -> str:
    """SHA-256 (hex) of a canonical encoding of what a table publishes: cells, total, k, method.

    Two tables with the same digest publish the same figures, so re-releasing one is pointless.
    """
    canonical: dict[str, Any] = {
        "stream": table.stream,
        "dimensions": list(table.dimensions),
        "cells": [[list(c.key), c.count, c.suppressed] for c in table.cells],
        "total": table.total,
        "total_suppressed": table.total_suppressed,
        "period": [table.period_start, table.period_end],
        "k": table.k,
        "method": table.method,
    }
    if table.aggregates:  # tables with margins: every aggregate (older digests stay as they were)
        canonical["aggregates"] = [
            [list(a.dimensions), list(a.key), a.value] for a in table.aggregates
        ]
    if not table.exact or table.parameters:  # rounded or perturbed: what and how (likewise)
        canonical["exact"] = table.exact
        canonical["parameters"] = dict(table.parameters)
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def _check_table(spec: StreamSpec, table: SuppressedTable) -> None:
    if table.stream != spec.name or table.dimensions != spec.dimensions:
        raise UnprotectedTable(f"table was not built for stream {spec.name}")
    if table.k < spec.k:
        raise UnprotectedTable(f"table was suppressed at a k below stream {spec.name}'s k")
    if any(c.suppressed != (c.count is None) for c in table.cells):
        raise UnprotectedTable("a cell is marked suppressed but has a count, or the reverse")
    if any(c.count is not None and c.count < table.k for c in table.cells):
        raise UnprotectedTable("a published cell is below k")
    if any(a.value is not None and a.value < table.k for a in table.aggregates):
        raise UnprotectedTable("a published margin is below k")
    if table.aggregates and not any(a.dimensions == () for a in table.aggregates):
        raise UnprotectedTable("a table with margins has no total")


def _iso_utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


def build_release(
    spec: StreamSpec,
    suppressed_table: SuppressedTable,
    *,
    counting_rule: str,
    sequence: int,
    sources: Sequence[str],
    issued_at_ms: int,
    release_id: str,
    consumer: str = "",
    purpose: str = "",
    sources_left_out: int = 0,
    digest: str | None = None,
) -> Release:
    """The unsigned release of ``suppressed_table`` with its descriptive metadata (annex 5).

    ``sources`` are the contributing sources as their agreements allow them to be named;
    ``counting_rule`` says what one count is, in the words of the code that counted;
    ``sources_left_out`` how many contributing sources' agreements did not allow this consumer
    and purpose (their persons are not in the table); ``digest``: the table's
    :func:`table_digest`, if the caller has it already.

    Raises:
        UnprotectedTable: the table was not built for ``spec`` or is weaker than its k.
        ValueError: ``sequence`` < 1.
    """
    _check_table(spec, suppressed_table)
    if sequence < 1:
        raise ValueError("release sequence numbers start at 1")
    t = suppressed_table
    named = tuple(sorted(set(sources)))
    period = "unknown" if t.period_start is None else f"{t.period_start}-{t.period_end}"
    metadata = {
        "originating_organisation": ORIGINATING_ORGANISATION,
        "date_submitted": _iso_utc(issued_at_ms),
        "file_name": f"{spec.name}/{sequence:06d}",
        "consumer": consumer,
        "purpose": purpose,
        "sources_left_out": str(sources_left_out),
        "indicators": f"{spec.unit} by {', '.join(spec.dimensions)}",
        "period": period,
        "number_of_sources": str(len(named)),
        "k": str(t.k),
        "method": t.method,
        "counting_rule": counting_rule,
        "form_rule": FORM_RULE,
        "age_groups": ", ".join(AGE_GROUPS),
        "year_rule": YEAR_RULE,
        "content_digest": digest or table_digest(t),
        # the method by its registry name, its parameters (never a secret: a perturbation
        # table's id, not the record keys), and whether the values are exact counts
        "method_name": spec.method,
        **{name: value for name, value in t.parameters.items() if name != "method_name"},
        "values_exact": "true" if t.exact else "false",
    }
    return Release(
        stream=spec.name,
        release_id=release_id,
        sequence=sequence,
        issued_at_ms=issued_at_ms,
        title=spec.title,
        unit=spec.unit,
        period_start=t.period_start,
        period_end=t.period_end,
        dimensions=t.dimensions,
        aggregates=_aggregates(t),
        k=t.k,
        method=t.method,
        source_count=len(named),
        sources=named,
        hierarchies={d: dict(parents) for d, parents in t.hierarchies.items()},
        labels=labels_for(
            t.dimensions,
            (
                (*cats, *t.hierarchies.get(d, {}))
                for d, cats in zip(t.dimensions, t.categories, strict=True)
            ),
        ),
        caveat=CAVEAT,
        metadata=metadata,
    )


def _aggregates(t: SuppressedTable) -> tuple[Aggregate, ...]:
    """What the release publishes: every aggregate of a table with margins, else the cells and
    the total."""
    exact = t.exact  # a rounded or perturbed value is never exact
    if t.aggregates:
        return tuple(
            Aggregate(a.dimensions, a.key, a.value, exact and a.value is not None)
            for a in t.aggregates
        )
    return (
        *(Aggregate(t.dimensions, c.key, c.count, exact and not c.suppressed) for c in t.cells),
        Aggregate((), (), t.total, exact and not t.total_suppressed and t.total is not None),
    )


@dataclass(frozen=True)
class EmitResult:
    """A signed release: the release, its exact signed bytes, the digest of its figures."""

    release: Release
    raw_bytes: bytes
    digest: str


UNCHANGED = "published figures unchanged since the last release"


class ReleaseSigner:
    """Signs a subscription's next release when its figures changed (it sends nothing)."""

    def __init__(self, signing_key: SigningKey) -> None:
        self._key = signing_key

    @staticmethod
    def skip_reason(
        spec: StreamSpec,
        digest: str,
        *,
        last_digest: str | None,
        last_issued_ms: int | None,
        now_ms: int,
    ) -> str | None:
        """Why a release with ``digest`` would not be made now, or None if it would."""
        if last_digest is not None and digest == last_digest:
            return UNCHANGED
        if last_issued_ms is not None and now_ms - last_issued_ms < spec.min_interval_s * 1000:
            return "the stream's minimum interval since the last release has not passed"
        return None

    def maybe_sign(
        self,
        table: SuppressedTable,
        plan: ReleasePlan,
        *,
        counting_rule: str,
        last_digest: str | None,
        last_issued_ms: int | None,
        now_ms: int,
        sequence: int,
        population: Population | None = None,
    ) -> EmitResult | None:
        """The signed release of ``table`` under ``plan`` unless nothing changed or it is too
        soon (None).

        Raises:
            UnprotectedTable: ``table`` is not protected as the plan requires.
        """
        _check_table(plan.spec, table)
        if table.k < plan.k:
            raise UnprotectedTable("table was suppressed at a k below the plan's k")
        digest = release_digest(plan.spec, table, population)
        reason = self.skip_reason(
            plan.spec, digest, last_digest=last_digest, last_issued_ms=last_issued_ms, now_ms=now_ms
        )
        if reason is not None:
            return None
        unsigned = build_release(
            plan.spec,
            table,
            counting_rule=counting_rule,
            sequence=sequence,
            sources=plan.sources,
            issued_at_ms=now_ms,
            release_id=str(uuid.uuid4()),
            consumer=plan.subscription.consumer,
            purpose=plan.subscription.purpose,
            sources_left_out=plan.sources_left_out,
            digest=digest,
        )
        if plan.spec.rate is not None:
            assert population is not None  # release_digest refused it
            # rates from the protected counts: a suppressed count gives a suppressed rate
            unsigned = rate_release(unsigned, plan.spec, population)
        signed, raw = signed_release(unsigned, self._key)
        return EmitResult(signed, raw, digest)


def release_digest(spec: StreamSpec, table: SuppressedTable, population: Population | None) -> str:
    """The digest a release is skipped on: the table's, and for a rate stream its population's
    too (corrected denominators make a new release)."""
    digest = table_digest(table)
    if spec.rate is None:
        return digest
    if population is None:
        raise UnprotectedTable(f"stream {spec.name} is a rate: it needs population denominators")
    return rated_digest(digest, population)


RELEASE_PUBLISHER = "trust-release-publisher"


class ReleasePublisher:
    """A follower of the store: puts every recorded release's exact signed bytes on its topic."""

    name = RELEASE_PUBLISHER
    event_types = frozenset({ReleaseIssued.event_type})

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._ready: set[str] = set()

    def send(self, events: Sequence[tuple[int, Event]]) -> None:
        sent = 0
        for _, ev in events:
            if not isinstance(ev, ReleaseIssued) or not ev.signed_b64 or not ev.topic:
                continue  # recorded before releases were recorded first: already published
            topic = ev.topic
            if topic not in self._ready:
                self.log.create_topic(topic, 1)
                self._ready.add(topic)
            self.log.append(topic, base64.b64decode(ev.signed_b64), key=ev.stream.encode("ascii"))
            sent += 1
        if sent:
            self.log.flush()
