"""Retention: at the end of each agreement's term, destroy or archive de-identified.

An agreement (format 4) may set a retention term and what happens at its end
(``agreement.Retention``). A case's term counts from the last message about it the trust
accepted (its latest version, or its retraction): an agency that keeps updating a case keeps it
alive. Which terms apply to a source: those of its agreement in force now, else (a lapsed
agreement) of the highest version held — data kept under a lapsed agreement is still bound by
the last terms agreed. A source whose agreement sets no term has nothing done to it.

:func:`review` is the dry run: per source, how many cases and victim records are held and how
many are due, counts only (no case id, no personal data). :func:`apply` acts on what is due:

- ``destroy``: each due case is disposed of through the erasure path — a ``DisposalRequested``
  (whole case, basis ``RetentionExpired``) recorded by the trust, so linkage unlinks its records,
  the erasure follower shreds its victims' data keys (and a KEK rotation makes that final) and
  releases stop counting them, exactly as when the source asks for a disposal.
- ``archive_deidentified``: the due victims' data keys are shredded here, in the transaction that
  records the act, so their identifiers (and linkage's compared fields, sealed under the same
  keys) are unreadable everywhere; their records stay, without identifiers, and releases keep
  counting them. Linkage's keyed blocking digests for them stay until linkage drops them (they
  lead only to records it can no longer open). A later version of an archived case cannot be
  sealed any more (its keys are gone) and is refused at ingest.

Each application is recorded as ``RetentionApplied`` (the source, the agreement version, what
was done and to which cases), so the audit log holds it; an archived case is never due again.

**On schedule.** A trust that runs unattended applies retention itself: :class:`RetentionSchedule`
is run by ``tiptrust trust run`` before its followers at most once per interval (hourly by
default, ``--retention-every``), so a term's end is acted on within that interval, and a
destruction is final in the same round (linkage and erasure follow, then the KEK rotation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, select

from trust.schedule import Every
from trust.stewardship.agreement import (
    ARCHIVE_DEIDENTIFIED,
    DESTROY,
    Agreement,
    Agreements,
)
from trust.store.db import writer
from trust.store.events import (
    DisposalRequested,
    Event,
    PersonKeysShredded,
    RetentionApplied,
    new_event_id,
)
from trust.store.eventstore import EventStore
from trust.store.tables import accepted_event_ids as _ids
from trust.store.tables import proj_persons as _persons
from trust.store.tables import proj_records as _records
from trust.store.tables import stored_events as _events
from trust.store.vault import Vault

RETENTION = "trust-retention"
"""The store consumer name retention's events are appended under."""

RETENTION_EXPIRED = "RetentionExpired"
"""The disposal basis (``DisposalBasis`` of the wire schema) a retention disposal carries."""

CHUNK = 500
"""Cases per transaction when applying (a long run never holds the write lock for long)."""


class RetentionError(Exception):
    """Retention cannot be applied as asked (e.g. archiving without the vault)."""

    code = "retention"


@dataclass(frozen=True)
class SourceRetention:
    """What retention finds (or did) for one source, as counts: never a case id or a value."""

    source_id: str
    agreement_version: int | None  # whose terms apply (None: the trust holds no agreement)
    term: str | None  # e.g. "5 year(s), then destroy" (None: the agreement sets none)
    at_end: str | None
    cases_held: int  # cases with victim records not yet erased or archived
    victims_held: int
    cases_due: int
    victims_due: int

    @property
    def action(self) -> str:
        """What ``--apply`` does (or did) for this source, in words."""
        if self.agreement_version is None:
            return "nothing: no agreement held"
        if self.at_end is None:
            return "nothing: the agreement sets no retention term"
        if not self.cases_due:
            return "nothing due"
        return f"{self.at_end} {self.cases_due} case(s), {self.victims_due} victim record(s)"


def terms(agreements: Agreements, source_id: str, now_ms: int) -> Agreement | None:
    """The agreement whose retention terms bind ``source_id`` now: the one in force, else the
    highest version held (None: the trust holds none)."""
    return agreements.in_force_at_or_none(source_id, now_ms) or agreements.latest(source_id)


def archived_cases(store: EventStore) -> set[tuple[str, str]]:
    """Cases archived de-identified before (never due again)."""
    out: set[tuple[str, str]] = set()
    for _, ev in store.all_of({RetentionApplied.event_type}):
        if isinstance(ev, RetentionApplied) and ev.at_end == ARCHIVE_DEIDENTIFIED:
            out.update((ev.source_id, c) for c in ev.case_ids)
    return out


def _held(conn: Connection, source_id: str) -> dict[str, tuple[int, int]]:
    """Per held case of ``source_id``: its victim records not yet erased, and when the trust
    recorded the last message about the case (ms)."""
    p, r, a, e = _persons.c, _records.c, _ids.c, _events.c
    stmt = (
        select(p.case_id, func.count(), func.max(e.recorded_at_ms))
        .select_from(
            _persons.join(_records, and_(r.source_id == p.source_id, r.case_id == p.case_id))
            .join(_ids, and_(a.source_id == r.source_id, a.event_id == r.event_id))
            .join(_events, e.seq == a.seq)
        )
        .where(p.source_id == source_id, ~p.disposed, ~p.consent_withdrawn)
        .group_by(p.case_id)
    )
    return {str(c): (int(n), int(at)) for c, n, at in conn.execute(stmt)}


def _sources(conn: Connection, agreements: Agreements) -> list[str]:
    held = conn.execute(select(_persons.c.source_id).distinct()).scalars()
    return sorted(set(held) | set(agreements.sources))


def _find(
    store: EventStore, agreements: Agreements, now_ms: int
) -> list[tuple[SourceRetention, Agreement | None, dict[str, int]]]:
    archived = archived_cases(store)
    out = []
    with store.engine.connect() as conn:
        for source_id in _sources(conn, agreements):
            a = terms(agreements, source_id, now_ms)
            held = {
                c: v for c, v in _held(conn, source_id).items() if (source_id, c) not in archived
            }
            retention = None if a is None else a.retention
            due: dict[str, int] = {}
            if retention is not None:
                cutoff = retention.cutoff_ms(now_ms)
                due = {c: n for c, (n, at) in held.items() if at < cutoff}
            found = SourceRetention(
                source_id=source_id,
                agreement_version=None if a is None else a.version,
                term=None if retention is None else retention.describe(),
                at_end=None if retention is None else retention.at_end,
                cases_held=len(held),
                victims_held=sum(n for n, _ in held.values()),
                cases_due=len(due),
                victims_due=sum(due.values()),
            )
            out.append((found, a, due))
    return out


def review(store: EventStore, agreements: Agreements, now_ms: int) -> list[SourceRetention]:
    """The dry run: per source, what :func:`apply` would do at ``now_ms`` (counts only)."""
    return [found for found, _, _ in _find(store, agreements, now_ms)]


def apply(
    store: EventStore,
    agreements: Agreements,
    now_ms: int,
    vault: Vault | None = None,
    *,
    sources: Iterable[str] | None = None,
) -> list[SourceRetention]:
    """Apply every term that ended by ``now_ms`` (of ``sources`` only, if given); returns what
    was found due and done, per source. A destruction is final once the trust's followers ran
    (linkage, erasure) and the KEK was rotated; an archive is done here.

    Raises:
        RetentionError: a source's terms archive de-identified and no ``vault`` was given.
    """
    only = None if sources is None else set(sources)
    found = [f for f in _find(store, agreements, now_ms) if only is None or f[0].source_id in only]
    if vault is None and any(f.at_end == ARCHIVE_DEIDENTIFIED and f.cases_due for f, _, _ in found):
        raise RetentionError("archiving de-identified needs the trust's vault (its keys)")
    for summary, a, due in found:
        if a is None or not due:
            continue
        cases = sorted(due)
        for i in range(0, len(cases), CHUNK):
            chunk = cases[i : i + CHUNK]
            if summary.at_end == DESTROY:
                _destroy(store, a, chunk, sum(due[c] for c in chunk), now_ms)
            else:
                assert vault is not None
                _archive(store, vault, a, chunk, now_ms)
    return [f for f, _, _ in found]


def _applied(
    a: Agreement, at_end: str, cases: list[str], victims: int, now_ms: int
) -> RetentionApplied:
    return RetentionApplied(
        event_id=new_event_id(),
        source_id=a.source_id,
        agreement_version=a.version,
        at_end=at_end,
        case_ids=cases,
        victims=victims,
        applied_at_ms=now_ms,
    )


def _destroy(store: EventStore, a: Agreement, cases: list[str], victims: int, now_ms: int) -> None:
    disposals: list[Event] = [
        DisposalRequested(new_event_id(), a.source_id, c, None, RETENTION_EXPIRED, now_ms)
        for c in cases
    ]
    store.append([_applied(a, DESTROY, cases, victims, now_ms), *disposals], None, RETENTION)


def _archive(store: EventStore, vault: Vault, a: Agreement, cases: list[str], now_ms: int) -> None:
    p = _persons.c
    with writer(store.engine).begin() as conn:
        rows = conn.execute(
            select(p.case_id, p.victim_id).where(
                p.source_id == a.source_id,
                p.case_id.in_(cases),
                ~p.disposed,
                ~p.consent_withdrawn,
            )
        ).all()
        applied = _applied(a, ARCHIVE_DEIDENTIFIED, cases, len(rows), now_ms)
        key_ids = [vault.person_key_id(a.source_id, str(c), str(v)) for c, v in rows]
        shredded = vault.shred_in(conn, key_ids)
        events: list[Event] = [applied]
        if shredded:
            events.append(
                PersonKeysShredded(
                    event_id=new_event_id(),
                    key_ids=sorted(shredded),
                    causes=[applied.event_id],
                    shredded_at_ms=time.time_ns() // 1_000_000,
                )
            )
        EventStore.append_in(conn, events)


log = logging.getLogger(__name__)


class RetentionSchedule:
    """Apply retention at most once per ``every_s`` seconds, with the agreements in force at
    the time (``agreements`` is asked each run: versions submitted meanwhile apply).

    Called by the trust's runner before its followers: the disposals it records are followed in
    the same round (linkage unlinks, erasure shreds, the KEK rotation makes it final). Logs what
    it did as counts per source (never a case)."""

    def __init__(
        self,
        store: EventStore,
        agreements: Callable[[], Agreements],
        vault: Vault,
        *,
        every_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.agreements = agreements
        self.vault = vault
        self.every = Every(every_s, clock)

    def __call__(self) -> list[SourceRetention]:
        if not self.every.due():
            return []
        now = self.every.clock()
        done = apply(self.store, self.agreements(), int(now * 1000), self.vault)
        for f in done:
            if f.cases_due:
                log.info(
                    "retention: %s %d case(s) of %s (agreement v%s, term %s)",
                    f.action, f.cases_due, f.source_id, f.agreement_version, f.term,
                )  # fmt: skip
        return done
