"""Descriptive metadata of a source's submission: what one source has sent the trust, as the
manual's minimum description (its box A.5.1) and as a DDI-Codebook 2.5 document.

A data steward, a national statistical office or an auditor asks "what does the trust hold of
this source, under which terms, and whom do I ask about it" without seeing a record. The answer
is built from the store's projections of the source's accepted records and from its agreement
in force, and holds **counts only**: never a case id, a victim id or any value of a record. The
list of indicators is the case record's fields the agreement shares, each with the
classification the agreement gives it and its code list; the responsible party is the
agreement's ``steward_contact`` (format 6).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, and_, func, select

from schemas.ddi import (
    Category,
    Codebook,
    Contact,
    DataFile,
    Variable,
    categories,
    codebook_xml,
)
from transport.topics import inbound
from trust.metadata.structure import CodeList, Structure, structure
from trust.refusal import Refusal
from trust.stewardship.agreement import Agreement
from trust.store.eventstore import EventStore
from trust.store.tables import accepted_event_ids, proj_persons, proj_records, stored_events

PRODUCER = "tiptrust data trust"
UNIT = "case: one trafficking-in-persons event as the source recorded it"
LARGE_CODE_LIST = 60
"""A code list longer than this (the 250 countries) is named in a note, not listed in full in
every variable that takes it."""


class MetadataReason(StrEnum):
    NO_SUCH_SOURCE = "no_such_source"


class MetadataError(Refusal):
    """No description can be made as asked (``code`` says why)."""


@dataclass(frozen=True)
class Holdings:
    """What the trust holds of one source, in counts."""

    cases: int  # accepted and not retracted
    retracted_cases: int
    victim_records: int  # of held cases, neither disposed of nor withdrawn from
    year_first: int | None  # the period covered: years of exploitation of held cases
    year_last: int | None
    first_submission_ms: int | None  # when the trust recorded the source's messages
    last_submission_ms: int | None


@dataclass(frozen=True)
class Indicator:
    """One field the agreement shares: its path, classification and code list."""

    path: str
    type: str
    classification: str
    code_list: str | None
    doc: str


@dataclass(frozen=True)
class Submission:
    """Box A.5.1 for one source's submission: its holdings and the terms it sent them under."""

    source_id: str
    holdings: Holdings
    agreement: Agreement | None

    @property
    def title(self) -> str:
        return f"Trafficking-in-persons case records submitted by {self.source_id}"

    @property
    def file_name(self) -> str:
        """Where the source's submission arrives: its inbound topic."""
        return inbound(self.source_id)

    @property
    def contact(self) -> Contact | None:
        c = self.agreement.steward_contact if self.agreement else None
        return Contact(c.name, c.email) if c is not None else None

    def indicators(self, shape: Structure | None = None) -> list[Indicator]:
        """The case record's leaf fields the agreement shares (none without an agreement)."""
        if self.agreement is None:
            return []
        shape = shape or structure()
        shared = self.agreement.fields_shared
        return [
            Indicator(f.path, f.type, self.agreement.classification(f.path), f.code_list, f.doc)
            for f in shape.fields
            if any(_covers(p, f.path) for p in shared)
        ]


def _covers(prefix: str, path: str) -> bool:
    return (
        prefix == "$"
        or path == prefix
        or path.startswith(prefix + ".")
        or path.startswith(prefix + "[]")
    )


def _day(ms: int | None) -> str | None:
    return _date(ms).isoformat() if ms is not None else None


def _date(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def _holdings(conn: Connection, source_id: str) -> Holdings:
    r, p, a, e = proj_records.c, proj_persons.c, accepted_event_ids.c, stored_events.c
    cases, years_from, years_to = conn.execute(
        select(func.count(), func.min(r.year), func.max(r.year)).where(
            r.source_id == source_id, ~r.retracted
        )
    ).one()
    retracted = conn.execute(
        select(func.count()).where(r.source_id == source_id, r.retracted)
    ).scalar_one()
    victims = conn.execute(
        select(func.count()).where(
            p.source_id == source_id, ~p.retracted, ~p.disposed, ~p.consent_withdrawn
        )
    ).scalar_one()
    # each case's latest message, as the trust recorded it (through the idempotency keys)
    first, last = conn.execute(
        select(func.min(e.recorded_at_ms), func.max(e.recorded_at_ms))
        .select_from(
            proj_records.join(
                accepted_event_ids, and_(a.source_id == r.source_id, a.event_id == r.event_id)
            ).join(stored_events, e.seq == a.seq)
        )
        .where(r.source_id == source_id)
    ).one()
    return Holdings(
        int(cases),
        int(retracted),
        int(victims),
        years_from,
        years_to,
        None if first is None else int(first),
        None if last is None else int(last),
    )


def describe_submission(
    store: EventStore, source_id: str, agreement: Agreement | None
) -> Submission:
    """What the trust holds of ``source_id`` and the ``agreement`` in force for it.

    Raises:
        MetadataError: ``no_such_source``: the trust holds neither a record nor an agreement
            of the source.
    """
    with store.engine.connect() as conn:
        holdings = _holdings(conn, source_id)
    if agreement is None and holdings.cases == 0 and holdings.retracted_cases == 0:
        raise MetadataError(
            MetadataReason.NO_SUCH_SOURCE,
            f"the trust holds no record and no agreement of {source_id}",
        )
    return Submission(source_id, holdings, agreement)


def field_label(path: str) -> str:
    """A reader's name for a field path: ``$.victims[].sex`` -> "victims: sex" (the schema's
    field docs say where a field sits in the manual's steps, not what it is)."""
    parts = [p.replace("[]", "").replace("_", " ") for p in path.removeprefix("$.").split(".")]
    return parts[-1] if len(parts) == 1 else f"{', '.join(parts[:-1])}: {parts[-1]}"


def _variable(i: Indicator, lists: dict[str, CodeList]) -> Variable:
    notes = [f"type: {i.type}"]
    cats: tuple[Category, ...] = ()
    if i.code_list is not None:
        codes = lists[i.code_list]
        if len(codes.codes) > LARGE_CODE_LIST:
            notes.append(
                f"code list {i.code_list} ({len(codes.codes)} codes): see `tiptrust "
                "metadata structure`"
            )
        else:
            cats = categories(codes.codes, dict(codes.labels))
            notes.append(f"code list {i.code_list}")
    if i.doc:
        notes.insert(0, i.doc)
    return Variable(
        name=i.path,
        label=field_label(i.path),
        categories=cats,
        security=i.classification,
        notes=tuple(notes),
    )


def submission_codebook(submission: Submission) -> Codebook:
    """``submission`` as a DDI-Codebook: box A.5.1's items where DDI puts them."""
    h, a = submission.holdings, submission.agreement
    shape = structure()
    lists = dict(shape.code_lists)
    notes = [
        f"Victim records held (neither disposed of nor withdrawn from): {h.victim_records}.",
        f"Cases retracted by the source: {h.retracted_cases}.",
    ]
    if h.first_submission_ms is not None:
        notes.append(f"First submission recorded: {_day(h.first_submission_ms)}.")
    if a is not None:
        grants = "; ".join(f"{g.consumer} ({', '.join(g.purposes)})" for g in a.releases_allowed)
        conditions = (
            f"Held under {submission.source_id}'s data-sharing agreement version {a.version}, in "
            f"force from {a.in_force_from.isoformat()}. Releases counting it may go to: "
            f"{grants or 'nobody'}; least cell size {a.min_cell_size}."
        )
    else:
        conditions = "No data-sharing agreement of this source is in force."
    return Codebook(
        title=submission.title,
        identifier=f"tiptrust-submission-{submission.source_id}",
        file=DataFile(
            name=submission.file_name,
            content=f"Case records {submission.source_id} sent and the trust accepted "
            "(minimised to the fields its agreement shares; identifiers sealed)",
            cases=h.cases,
        ),
        authors=(submission.source_id,),
        producer=PRODUCER,
        contact=submission.contact,
        deposited=None if h.last_submission_ms is None else _date(h.last_submission_ms),
        period_start=None if h.year_first is None else str(h.year_first),
        period_end=None if h.year_last is None else str(h.year_last),
        unit=UNIT,
        universe=f"Cases recorded by {submission.source_id}, shared with the trust and not "
        "retracted",
        conditions=conditions,
        notes=tuple(notes),
        variables=tuple(_variable(i, lists) for i in submission.indicators(shape)),
    )


def submission_ddi(submission: Submission) -> bytes:
    """``submission`` as DDI-Codebook 2.5 XML."""
    return codebook_xml(submission_codebook(submission))
