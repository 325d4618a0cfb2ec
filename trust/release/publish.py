"""Build, sign and publish a subscription's release on ``tip.release.<consumer>.<stream>``.

:func:`build_release` turns a disclosure-controlled table into a :class:`schemas.release.Release`
with its descriptive metadata (annex 5); :class:`ReleaseSigner` signs it when the published cells
changed and the stream's minimum interval has passed. Nothing is sent from there: the release
stage records a ``ReleaseIssued`` event carrying the signed bytes first, and
:class:`ReleasePublisher`, a follower of the store, puts exactly those bytes on the topic. A crash
between the two re-sends the same bytes; no crash can make two different releases with one
sequence number.

A stream that publishes an estimate (``StreamSpec.estimate``) goes through the same signer,
record and publisher: its content is an :class:`EstimateTable` (the detected total, the estimate
and its interval, and what the model assumed) instead of a disclosure-controlled count table,
and :func:`build_release` makes its release the same way. A stream of synthetic records
(``StreamSpec.synthetic``) likewise, with a :class:`SyntheticTable`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.keys import SigningKey
from schemas.release import CAVEAT, Aggregate, Hierarchies, Labels, Release, signed_release
from transport import EventLog
from trust.release.aggregate import FORM_RULE, ROLE_RULE, labels_for
from trust.release.disclosure import SuppressedTable
from trust.release.errors import UnprotectedTable
from trust.release.population import Population
from trust.release.rates import rate_release, rated_digest
from trust.release.streams import (
    AGE_GROUPS,
    CI_HIGH,
    CI_LOW,
    ESTIMATED,
    MEASURE,
    OBSERVED,
    PERPETRATORS,
    StreamSpec,
)
from trust.stewardship.policy import ReleasePlan
from trust.store.events import Event, ReleaseIssued

ORIGINATING_ORGANISATION = "tiptrust trust"

YEAR_RULE = (
    "Year of exploitation; persons without a recorded year are in year 'Unknown', outside the "
    "period."
)

PERPETRATOR_YEAR_RULE = (
    "Year of exploitation of the perpetrator's case; records whose case names no year are in "
    "year 'Unknown', outside the period."
)


@dataclass(frozen=True)
class Refused:
    """A subscription that gets no release this time, and why: a stable reason code and a
    sentence, never a value (the stage records it as skipped)."""

    code: str
    reason: str


ESTIMATE_CAVEAT = (
    "An estimate from a statistical model, not a count: it rests on the assumptions stated in "
    "this release's metadata (closed population, list dependence modelled by two-list "
    "interactions, heterogeneity of capture, linkage errors) and is only as good as they are. "
    "The interval is part of the figure; use the estimate only with it."
)

#: The assumptions of annex 7, stated in every estimate release (metadata ``assumption_*``).
ESTIMATE_ASSUMPTIONS: Mapping[str, str] = {
    "assumption_closed_population": (
        "Closed population: every person counted was in the population for the whole period, "
        "and nobody entered or left it in a way that depends on the lists. A period of several "
        "years strains this."
    ),
    "assumption_list_dependence": (
        "List dependence: the lists may depend on each other (one agency refers persons to "
        "another) only in the ways the model's two-list interaction terms express; other "
        "dependence biases the estimate unseen and makes the interval too narrow."
    ),
    "assumption_heterogeneity": (
        "Heterogeneity of capture: persons differ in how likely each agency is to detect them "
        "(sex, age, form of exploitation); heterogeneity shared by several lists acts as "
        "positive dependence between them and biases the estimate down."
    ),
    "assumption_linkage": (
        "Linkage errors feed the estimate: a missed link splits one person into two capture "
        "histories and inflates it; a false link merges two and deflates it."
    ),
}


@dataclass(frozen=True)
class EstimateTable:
    """What an estimate release publishes: the detected total, the estimate and its interval
    (``None`` when no estimate exists, or for an upper limit the data do not bound), and the
    model's description as the release states it (``parameters``: lists, model terms,
    criterion, interval method, whether an estimate exists and, if not, why).

    No per-list count or overlap is here: those can be small cells, and only these totals are
    released. ``observed`` is at least ``k`` (the stage refuses otherwise).
    """

    stream: str
    observed: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    k: int
    period_start: int | None
    period_end: int | None
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.estimate is not None

    @property
    def method(self) -> str:
        return (
            f"multiple-systems estimation; released only when at least k = {self.k} persons "
            "are detected on at least two lists; no per-list count or overlap is published"
        )

    def values(self) -> dict[str, float | int | None]:
        """The published number of each measure."""
        return {
            OBSERVED: self.observed,
            ESTIMATED: self.estimate,
            CI_LOW: self.ci_low,
            CI_HIGH: self.ci_high,
        }


def estimate_digest(table: EstimateTable) -> str:
    """SHA-256 (hex) of what an estimate release publishes (values rounded as published)."""
    canonical = {
        "stream": table.stream,
        "values": {m: _published(v) for m, v in table.values().items()},
        "k": table.k,
        "period": [table.period_start, table.period_end],
        "parameters": dict(table.parameters),
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def _published(v: float | int | None) -> float | int | None:
    """A model output as released: to one decimal (more digits would claim a precision the
    model does not have)."""
    return round(float(v), 1) if isinstance(v, float) else v


def _check_estimate(spec: StreamSpec, table: EstimateTable) -> None:
    if spec.estimate is None or table.stream != spec.name:
        raise UnprotectedTable(f"estimate was not made for stream {spec.name}")
    if table.k < spec.k or table.observed < table.k:
        raise UnprotectedTable("an estimate is released only over at least k detected persons")
    if table.exists:
        low, est, high = table.ci_low, table.estimate, table.ci_high
        assert est is not None
        if low is None or not table.observed <= low <= est or (high is not None and high < est):
            raise UnprotectedTable(
                "an estimate is released with its interval: observed <= low <= estimate <= high"
            )
    elif table.ci_low is not None or table.ci_high is not None:
        raise UnprotectedTable("no estimate, no interval")


def build_estimate_release(
    spec: StreamSpec,
    table: EstimateTable,
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
    sources_named: Sequence[str] | None = None,
    sources_left_out_perpetrators: int = 0,
) -> Release:
    """The unsigned release of an estimate: one aggregate per measure (the detected total exact,
    the model's outputs not), the model's description and the assumptions in the metadata.

    Raises:
        UnprotectedTable: the estimate was not made for ``spec``, or is over fewer than k
            persons, or its interval is not beside it.
    """
    _check_estimate(spec, table)
    t = table
    head = _head(
        spec,
        t,
        indicators=f"{spec.unit} by {', '.join(spec.dimensions)}",
        counting_rule=counting_rule,
        sequence=sequence,
        sources=sources,
        issued_at_ms=issued_at_ms,
        consumer=consumer,
        purpose=purpose,
        sources_left_out=sources_left_out,
        sources_named=sources_named,
        sources_left_out_perpetrators=sources_left_out_perpetrators,
    )
    metadata = {
        **head.metadata,
        "content_digest": digest or estimate_digest(t),
        "method_name": "multiple_systems_estimation",
        **ESTIMATE_ASSUMPTIONS,
        **dict(t.parameters),
        "values_exact": "false",
    }
    aggregates = tuple(
        Aggregate((MEASURE.dimension,), (m,), _published(v), m == OBSERVED and v is not None)
        for m, v in t.values().items()
    )
    return _release(
        spec,
        t,
        head,
        release_id=release_id,
        sequence=sequence,
        issued_at_ms=issued_at_ms,
        dimensions=spec.dimensions,
        aggregates=aggregates,
        metadata=metadata,
        caveat=ESTIMATE_CAVEAT,
        labels=spec.labels(),
    )


SYNTHETIC_CAVEAT = (
    "Synthetic records, not records of real persons: every combination of attributes in them, "
    "of any length, is shared by at least k detected victims, and each attribute's count is the "
    "true count rounded down to a multiple of k; combinations of several attributes are "
    "preserved only approximately (the utility in the metadata says how well). Counts of "
    "detected victims, not of prevalence."
)


@dataclass(frozen=True)
class SyntheticTable:
    """What a synthetic-records release publishes: the synthetic rows over ``columns`` (``""``
    where an attribute is suppressed), already checked to hold no combination fewer than ``k``
    persons share, and the synthesis's parameters and utility as the release states them."""

    stream: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    k: int
    period_start: int | None
    period_end: int | None
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return (
            f"k-anonymous synthesis at resolution k = {self.k}: every combination of attributes "
            "in the records, of any length, is held by at least k persons (checked "
            "independently before signing)"
        )

    def patterns(self) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
        """Each distinct record as (its attributes' columns, their values, how many records),
        the longest first."""
        counts: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}
        for row in self.rows:
            present = [(c, v) for c, v in zip(self.columns, row, strict=True) if v]
            key = (tuple(c for c, _ in present), tuple(v for _, v in present))
            counts[key] = counts.get(key, 0) + 1
        ordered = sorted(counts.items(), key=lambda kv: (-len(kv[0][0]), kv[0]))
        return [(dims, values, n) for (dims, values), n in ordered]


def synthetic_digest(table: SyntheticTable) -> str:
    """SHA-256 (hex) of what a synthetic-records release publishes."""
    canonical = {
        "stream": table.stream,
        "patterns": [[list(d), list(v), n] for d, v, n in table.patterns()],
        "k": table.k,
        "period": [table.period_start, table.period_end],
        "parameters": dict(table.parameters),
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def _check_synthetic(spec: StreamSpec, table: SyntheticTable) -> None:
    if spec.synthetic is None or table.stream != spec.name or table.columns != spec.dimensions:
        raise UnprotectedTable(f"synthetic records were not made for stream {spec.name}")
    if table.k < spec.k or not table.rows:
        raise UnprotectedTable("synthetic records are released at the stream's k, never empty")


def build_synthetic_release(
    spec: StreamSpec,
    table: SyntheticTable,
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
    sources_named: Sequence[str] | None = None,
    sources_left_out_perpetrators: int = 0,
) -> Release:
    """The unsigned release of synthetic records: one aggregate per distinct record (the columns
    it has a value in, those values, how many synthetic records are so), never exact — they
    count synthetic records, not persons.

    Raises:
        UnprotectedTable: the records were not made for ``spec`` or below its k.
    """
    _check_synthetic(spec, table)
    t = table
    head = _head(
        spec,
        t,
        indicators=f"{spec.unit} with {', '.join(spec.dimensions)}",
        counting_rule=counting_rule,
        sequence=sequence,
        sources=sources,
        issued_at_ms=issued_at_ms,
        consumer=consumer,
        purpose=purpose,
        sources_left_out=sources_left_out,
        sources_named=sources_named,
        sources_left_out_perpetrators=sources_left_out_perpetrators,
    )
    metadata = {
        **head.metadata,
        "content_digest": digest or synthetic_digest(t),
        "method_name": "k_anonymous_synthesis",
        "synthetic_records": str(len(t.rows)),
        **dict(t.parameters),
        "values_exact": "false",
    }
    return _release(
        spec,
        t,
        head,
        release_id=release_id,
        sequence=sequence,
        issued_at_ms=issued_at_ms,
        dimensions=spec.dimensions,
        aggregates=tuple(Aggregate(d, v, n, False) for d, v, n in t.patterns()),
        metadata=metadata,
        caveat=SYNTHETIC_CAVEAT,
        labels=spec.labels(),
        hierarchies={},
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


def _named(
    sources: Sequence[str], sources_named: Sequence[str] | None
) -> tuple[tuple[str, ...], int]:
    """The sources a release lists (those whose agreement allows naming them; None: all) and how
    many it counts without naming."""
    counted = set(sources)
    named = counted if sources_named is None else counted & set(sources_named)
    return tuple(sorted(named)), len(counted) - len(named)


def _source_metadata(
    counted: int, unnamed: int, left_out: int, left_out_perpetrators: int
) -> dict[str, str]:
    """What a release's metadata says of its sources beyond the list of those it names."""
    out = {"number_of_sources": str(counted), "sources_left_out": str(left_out)}
    if unnamed:
        out["sources_not_named"] = (
            f"{unnamed} of the {counted} sources counted are not named: their agreements do "
            "not allow it"
        )
    if left_out_perpetrators:
        out["sources_left_out_perpetrators"] = (
            f"{left_out_perpetrators} of the sources left out allow this release but do not "
            "share perpetrator data"
        )
    return out


def _iso_utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


class _Made(Protocol):
    """What every kind of release table says of itself (a count, estimate or synthetic table)."""

    @property
    def period_start(self) -> int | None: ...
    @property
    def period_end(self) -> int | None: ...
    @property
    def k(self) -> int: ...
    @property
    def method(self) -> str: ...


@dataclass(frozen=True)
class _Head:
    """What every release says first: who, when, which sources; shared by the three builders."""

    counted: int
    named: tuple[str, ...]
    metadata: dict[str, str]


def _head(
    spec: StreamSpec,
    t: _Made,
    *,
    indicators: str,
    counting_rule: str,
    sequence: int,
    sources: Sequence[str],
    issued_at_ms: int,
    consumer: str,
    purpose: str,
    sources_left_out: int,
    sources_named: Sequence[str] | None,
    sources_left_out_perpetrators: int,
) -> _Head:
    """The metadata every release begins with (in this order), the sources counted and named.

    Raises:
        ValueError: ``sequence`` < 1.
    """
    if sequence < 1:
        raise ValueError("release sequence numbers start at 1")
    counted = len(set(sources))
    named, unnamed = _named(sources, sources_named)
    period = "unknown" if t.period_start is None else f"{t.period_start}-{t.period_end}"
    metadata = {
        "originating_organisation": ORIGINATING_ORGANISATION,
        "date_submitted": _iso_utc(issued_at_ms),
        "file_name": f"{spec.name}/{sequence:06d}",
        "consumer": consumer,
        "purpose": purpose,
        "indicators": indicators,
        "period": period,
        **_source_metadata(counted, unnamed, sources_left_out, sources_left_out_perpetrators),
        "k": str(t.k),
        "method": t.method,
        "counting_rule": counting_rule,
    }
    return _Head(counted, named, metadata)


def _release(
    spec: StreamSpec,
    t: _Made,
    head: _Head,
    *,
    release_id: str,
    sequence: int,
    issued_at_ms: int,
    dimensions: tuple[str, ...],
    aggregates: tuple[Aggregate, ...],
    metadata: dict[str, str],
    caveat: str,
    labels: Labels,
    hierarchies: Hierarchies | None = None,
) -> Release:
    """The unsigned release: the table's aggregates with what the builder worked out."""
    return Release(
        stream=spec.name,
        release_id=release_id,
        sequence=sequence,
        issued_at_ms=issued_at_ms,
        title=spec.title,
        unit=spec.unit,
        period_start=t.period_start,
        period_end=t.period_end,
        dimensions=dimensions,
        aggregates=aggregates,
        k=t.k,
        method=t.method,
        source_count=head.counted,
        sources=head.named,
        hierarchies={} if hierarchies is None else dict(hierarchies),
        labels=labels,
        caveat=caveat,
        metadata=metadata,
    )


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
    sources_named: Sequence[str] | None = None,
    sources_left_out_perpetrators: int = 0,
) -> Release:
    """The unsigned release of ``suppressed_table`` with its descriptive metadata (annex 5).

    ``sources`` are the sources counted; ``sources_named`` those of them the release lists
    (their agreements allow naming them; None: every source counted), the others are counted in
    ``source_count`` and said to be unnamed in the metadata;
    ``counting_rule`` says what one count is, in the words of the code that counted;
    ``sources_left_out`` how many contributing sources' agreements did not allow this consumer
    and purpose (their persons are not in the table); ``digest``: the table's
    :func:`table_digest`, if the caller has it already.

    Raises:
        UnprotectedTable: the table was not built for ``spec`` or is weaker than its k.
        ValueError: ``sequence`` < 1.
    """
    _check_table(spec, suppressed_table)
    t = suppressed_table
    head = _head(
        spec,
        t,
        indicators=f"{spec.unit} by {', '.join(spec.dimensions)}",
        counting_rule=counting_rule,
        sequence=sequence,
        sources=sources,
        issued_at_ms=issued_at_ms,
        consumer=consumer,
        purpose=purpose,
        sources_left_out=sources_left_out,
        sources_named=sources_named,
        sources_left_out_perpetrators=sources_left_out_perpetrators,
    )
    metadata = {
        **head.metadata,
        **_subject_rules(spec),
        "content_digest": digest or table_digest(t),
        # the method by its registry name, its parameters (never a secret: a perturbation
        # table's id, not the record keys), and whether the values are exact counts
        "method_name": spec.method,
        **{name: value for name, value in t.parameters.items() if name != "method_name"},
        "values_exact": "true" if t.exact else "false",
    }
    return _release(
        spec,
        t,
        head,
        release_id=release_id,
        sequence=sequence,
        issued_at_ms=issued_at_ms,
        dimensions=t.dimensions,
        aggregates=_aggregates(t),
        metadata=metadata,
        caveat=spec.caveat or CAVEAT,
        labels=labels_for(
            t.dimensions,
            (
                (*cats, *t.hierarchies.get(d, {}))
                for d, cats in zip(t.dimensions, t.categories, strict=True)
            ),
        ),
        hierarchies={d: dict(parents) for d, parents in t.hierarchies.items()},
    )


def _subject_rules(spec: StreamSpec) -> dict[str, str]:
    """The rules a count release states for its cells: by form and age group for victims, by
    role for perpetrator records (whose year is their case's)."""
    if spec.subject == PERPETRATORS:
        return {"role_rule": ROLE_RULE, "year_rule": PERPETRATOR_YEAR_RULE}
    return {
        "form_rule": FORM_RULE,
        "age_groups": ", ".join(AGE_GROUPS),
        "year_rule": YEAR_RULE + " " + _years_shown(spec),
    }


def _years_shown(spec: StreamSpec) -> str:
    """Which years a stream's tables show (the release stage's rule)."""
    if spec.first_year is not None:
        return (
            f"The years from {spec.first_year} to the current one are shown whoever is counted; "
            "persons of other years are not in this table."
        )
    return (
        "A year (or 'Unknown') is shown on its own once at least k persons are counted in it, "
        "and then in every later release to the same consumer, whoever is left in it; 'Rest' "
        "holds the persons of the years not shown on their own."
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
        table: SuppressedTable | EstimateTable | SyntheticTable,
        plan: ReleasePlan,
        *,
        counting_rule: str,
        last_digest: str | None,
        last_issued_ms: int | None,
        now_ms: int,
        sequence: int,
        population: Population | None = None,
    ) -> EmitResult | None:
        """The signed release of ``table`` (counts, or an estimate) under ``plan`` unless nothing
        changed or it is too soon (None).

        Raises:
            UnprotectedTable: ``table`` is not protected as the plan requires.
        """
        if isinstance(table, EstimateTable):
            _check_estimate(plan.spec, table)
        elif isinstance(table, SyntheticTable):
            _check_synthetic(plan.spec, table)
        else:
            _check_table(plan.spec, table)
        if table.k < plan.k:
            raise UnprotectedTable("table was suppressed at a k below the plan's k")
        digest = release_digest(plan.spec, table, population)
        reason = self.skip_reason(
            plan.spec, digest, last_digest=last_digest, last_issued_ms=last_issued_ms, now_ms=now_ms
        )
        if reason is not None:
            return None
        common: dict[str, Any] = {
            "counting_rule": counting_rule,
            "sequence": sequence,
            "sources": plan.sources,
            "issued_at_ms": now_ms,
            "release_id": str(uuid.uuid4()),
            "consumer": plan.subscription.consumer,
            "purpose": plan.subscription.purpose,
            "sources_left_out": plan.sources_left_out,
            "digest": digest,
            "sources_named": plan.sources_named,
            "sources_left_out_perpetrators": plan.sources_left_out_perpetrators,
        }
        if isinstance(table, EstimateTable):
            unsigned = build_estimate_release(plan.spec, table, **common)
        elif isinstance(table, SyntheticTable):
            unsigned = build_synthetic_release(plan.spec, table, **common)
        else:
            unsigned = build_release(plan.spec, table, **common)
        if plan.spec.rate is not None:
            assert population is not None  # release_digest refused it
            # rates from the protected counts: a suppressed count gives a suppressed rate
            unsigned = rate_release(unsigned, plan.spec, population)
        signed, raw = signed_release(unsigned, self._key)
        return EmitResult(signed, raw, digest)


def release_digest(
    spec: StreamSpec,
    table: SuppressedTable | EstimateTable | SyntheticTable,
    population: Population | None,
) -> str:
    """The digest a release is skipped on: the table's (or the estimate's), and for a rate
    stream its population's too (corrected denominators make a new release)."""
    if isinstance(table, EstimateTable):
        return estimate_digest(table)
    if isinstance(table, SyntheticTable):
        return synthetic_digest(table)
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
