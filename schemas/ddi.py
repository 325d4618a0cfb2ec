"""Descriptive metadata as a DDI-Codebook 2.5 document: one writer for the trust and consumers.

The manual's annex on metadata asks every data set to travel with a minimum description (its
box A.5.1): a title, a file name, the organisation that collected the data, the date they were
submitted, the list of indicators, the number of cases and whom to contact. DDI-Codebook 2.5 is
the standard it names for that description, and statistical offices' catalogues read it. Both
sides describe data — the trust a source's submission, a consumer a release it holds — and the
import contracts keep them apart, so the writer lives here, beside the other formats both ends
share. It knows DDI and nothing of either side: a :class:`Codebook` is plain values, and
:func:`codebook_xml` places each where the specification puts it:

* ``codeBook/docDscr/citation/titlStmt/titl``: the title of this document;
* ``codeBook/stdyDscr/citation``: ``titlStmt/titl`` (title) and ``IDNo``; ``rspStmt/AuthEnty``
  (the organisations that collected the data); ``prodStmt/producer``; ``distStmt/contact``
  (the responsible party, its e-mail as the ``email`` attribute), ``distStmt/depDate``
  (submitted to the repository) and ``distStmt/distDate`` (issued);
* ``stdyDscr/stdyInfo/sumDscr``: ``timePrd`` (``event="start"``/``"end"``), ``anlyUnit``,
  ``universe``; ``stdyDscr/dataAccs/useStmt/conditions``; ``stdyDscr/notes``;
* ``codeBook/fileDscr/fileTxt``: ``fileName``, ``fileCont``, ``dimensns/caseQnty`` (the number
  of cases) and ``dimensns/varQnty``;
* ``codeBook/dataDscr/var`` (the indicators), each with ``labl``, ``security`` (its
  classification), ``catgry`` (``catValu`` and ``labl`` per category) and ``notes``.

Children are written in the order the 2.5 schema's sequences give them. Only the standard
library writes the XML (``xml.etree``): text is escaped by it, never assembled by hand.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

NAMESPACE = "ddi:codebook:2_5"
"""The DDI-Codebook 2.5 namespace (the default namespace of every element written)."""

SCHEMA_LOCATION = (
    "ddi:codebook:2_5 "
    "http://www.ddialliance.org/Specification/DDI-Codebook/2.5/XMLSchema/codebook.xsd"
)
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True)
class Category:
    """One category of a variable: its code as the data hold it, and its label."""

    value: str
    label: str | None = None


@dataclass(frozen=True)
class Variable:
    """One indicator (a DDI ``var``). ``name`` is the column or field it describes;
    ``security`` its classification level; ``categories`` its code list, if it has one."""

    name: str
    label: str
    categories: tuple[Category, ...] = ()
    security: str | None = None
    notes: tuple[str, ...] = ()
    continuous: bool = False


@dataclass(frozen=True)
class Contact:
    """The responsible party: a role or office, and how to reach it."""

    name: str
    email: str | None = None


@dataclass(frozen=True)
class DataFile:
    """The data file described: its name, what it holds, how many cases (rows) it has."""

    name: str
    content: str
    cases: int


@dataclass(frozen=True)
class Codebook:
    """Everything :func:`codebook_xml` writes; ``None`` or empty leaves an element out."""

    title: str
    identifier: str
    file: DataFile
    authors: tuple[str, ...] = ()
    producer: str | None = None
    contact: Contact | None = None
    deposited: dt.date | None = None
    distributed: dt.date | None = None
    period_start: str | None = None
    period_end: str | None = None
    unit: str | None = None
    universe: str | None = None
    conditions: str | None = None
    notes: tuple[str, ...] = ()
    variables: tuple[Variable, ...] = field(default=())


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, _q(tag), attrs)
    if text is not None:
        child.text = text
    return child


def _citation(parent: ET.Element, book: Codebook) -> None:
    citation = _add(parent, "citation")
    titles = _add(citation, "titlStmt")
    _add(titles, "titl", book.title)
    _add(titles, "IDNo", book.identifier)
    if book.authors:
        rsp = _add(citation, "rspStmt")
        for author in book.authors:
            _add(rsp, "AuthEnty", author)
    if book.producer:
        _add(_add(citation, "prodStmt"), "producer", book.producer)
    if book.contact or book.deposited or book.distributed:
        dist = _add(citation, "distStmt")
        if book.contact is not None:
            attrs = {"email": book.contact.email} if book.contact.email else {}
            _add(dist, "contact", book.contact.name, **attrs)
        if book.deposited is not None:
            _add(dist, "depDate", book.deposited.isoformat(), date=book.deposited.isoformat())
        if book.distributed is not None:
            day = book.distributed.isoformat()
            _add(dist, "distDate", day, date=day)


def _study(root: ET.Element, book: Codebook) -> None:
    study = _add(root, "stdyDscr")
    _citation(study, book)
    info = _add(study, "stdyInfo")
    summary = _add(info, "sumDscr")
    for event, year in (("start", book.period_start), ("end", book.period_end)):
        if year is not None:
            _add(summary, "timePrd", year, event=event, date=year)
    if book.unit:
        _add(summary, "anlyUnit", book.unit)
    if book.universe:
        _add(summary, "universe", book.universe)
    if book.conditions:
        _add(_add(_add(study, "dataAccs"), "useStmt"), "conditions", book.conditions)
    for note in book.notes:
        _add(study, "notes", note)


def _file(root: ET.Element, book: Codebook) -> None:
    text = _add(_add(root, "fileDscr", ID="F1"), "fileTxt")
    _add(text, "fileName", book.file.name)
    _add(text, "fileCont", book.file.content)
    dims = _add(text, "dimensns")
    _add(dims, "caseQnty", str(book.file.cases))
    _add(dims, "varQnty", str(len(book.variables)))


def _variables(root: ET.Element, book: Codebook) -> None:
    if not book.variables:
        return
    data = _add(root, "dataDscr")
    for n, v in enumerate(book.variables, start=1):
        attrs = {"ID": f"V{n}", "name": v.name, "files": "F1"}
        attrs["intrvl"] = "contin" if v.continuous else "discrete"
        var = _add(data, "var", **attrs)
        _add(var, "labl", v.label, level="variable")
        if v.security:
            _add(var, "security", v.security)
        for c in v.categories:
            catgry = _add(var, "catgry")
            _add(catgry, "catValu", c.value)
            if c.label is not None:
                _add(catgry, "labl", c.label, level="category")
        for note in v.notes:
            _add(var, "notes", note)


def codebook_xml(book: Codebook) -> bytes:
    """``book`` as a DDI-Codebook 2.5 document (UTF-8, with its XML declaration)."""
    ET.register_namespace("", NAMESPACE)
    ET.register_namespace("xsi", _XSI)
    # no ``ID`` attribute: an xs:ID may not start with a digit, and a release id may
    root = ET.Element(
        _q("codeBook"), {"version": "2.5", f"{{{_XSI}}}schemaLocation": SCHEMA_LOCATION}
    )
    doc = _add(root, "docDscr")
    _add(_add(_add(doc, "citation"), "titlStmt"), "titl", f"DDI-Codebook of: {book.title}")
    _study(root, book)
    _file(root, book)
    _variables(root, book)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def categories(codes: Sequence[str], labels: dict[str, str] | None = None) -> tuple[Category, ...]:
    """The categories of ``codes`` in their order, labelled where ``labels`` has a label."""
    known = labels or {}
    return tuple(Category(c, known.get(c)) for c in codes)
