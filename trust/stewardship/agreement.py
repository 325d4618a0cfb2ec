"""Data-sharing agreements: which source may send, when, which fields, to whom and for what.

An agreement is a YAML document per source and version. The format is versioned: ``format: 6``
is the current one, and the loader keeps reading every older format (upcasting it), so an
agreement signed years ago still loads. Later formats add the fields that later stages enforce.

Format 6 (what the policy point enforces now)::

    format: 6
    source_id: police
    version: 2                     # this source's agreement version; the highest in force wins,
                                   #   and a source submits versions in increasing order
    in_force_from: 2024-01-01      # inclusive, judged by the trust's clock when a message arrives
                                   #   (a version never applies before the trust received it)
    in_force_until: null           # exclusive; null = open-ended
    fields_shared: ['$']           # allow-list of field paths (prefixes); the rest is dropped
    releases_allowed:              # who may receive releases that count this source's persons,
      - consumer: ministry         #   and for which purposes (deny by default: none listed,
        purposes: [statistics]     #   no release includes this source). '*' (format 4): any
                                   #   purpose that is neither forbidden here nor sensitive
    purposes_forbidden: []         # purposes no release counting this source may serve, for any
                                   #   consumer: a grant may not name one (a contradiction)
    min_cell_size: 10              # the least k of any release that counts this source
    linkage:                       # optional; these are the defaults
      link_with: ['*']             # sources whose records this source's may be linked with
                                   #   ('*': any source whose own agreement allows it too;
                                   #   []: none — its records are only linked among themselves)
      shared_identifiers: []       # identifier schemes it shares (e.g. nrm_referral): records
                                   #   of two sources that both declare a scheme and carry the
                                   #   same value link deterministically, before any scoring
      encoding: plain              # how identifiers arrive: plain (the only one supported now)
    privacy_budget:                # optional; without it no differentially private release
      epsilon: 1.0                 #   counts this source. The total epsilon (and delta, default
      delta: 0.0                   #   0: Gaussian noise needs delta > 0) all differentially
                                   #   private releases counting this source may spend, per
                                   #   consumer, over their whole life: it never refreshes
    retention:                     # optional (format 4); without it records are kept until an
      years: 5                     #   agreement version says otherwise. The term (years and
      days: 0                      #   days add up, at least one day in all) counts from the
                                   #   last message about a case the trust accepted
      at_end: destroy              # destroy | archive_deidentified: what ``tiptrust trust
                                   #   retention --apply`` does to a case whose term ended
    perpetrator_sharing: false     # format 5; default false. Whether releases about perpetrators
                                   #   (the ``perpetrators_by_role`` stream) may count this
                                   #   source's perpetrator records: perpetrators are suspects,
                                   #   and counts of them can reveal investigations, so a source
                                   #   shares them only by saying so
    may_name_source: false         # format 5; default false. Whether a release counting this
                                   #   source may list it by name among its sources (it is always
                                   #   counted in the number of sources); a small source named
                                   #   beside a small cell can point to the agency that holds it
    legal_bases_accepted: null     # format 6; default null = any. The legal bases of
                                   #   processing (a record's reporting_entity.legal_basis:
                                   #   Consent, OfficialAuthority, PublicInterest,
                                   #   VitalInterests, Unknown) under which the trust may keep
                                   #   a record: another refuses the record, with a receipt
                                   #   (legal_basis_not_accepted) naming the field
    field_classification: {}       # format 6; field path -> secret | confidential | restricted
                                   #   | public (the levels of the manual's table 2) for this
                                   #   source's fields; a path not listed takes its default
                                   #   (:data:`DEFAULT_CLASSIFICATION`: identifiers secret,
                                   #   everything else restricted)
    steward_contact:               # format 6; optional. Who answers for this source's data
      name: Data protection office #   (a role or office; notices about its records go there)
      email: dpo@example.org
    envelope_retention_days: 7     # format 6; default 7. How long the inbound log keeps this
                                   #   source's sealed envelopes after the trust took them in
                                   #   (accepted or refused): then they are deleted from the log,
                                   #   so the trust's key opens no copy of an erased person's
                                   #   record there (0: as soon as they are taken in). The
                                   #   operator reads a refusal's envelope within this time

**The purpose firewall.** Some purposes turn data shared to protect victims against them:
:data:`SENSITIVE_PURPOSES` lists them, each with its reason. A release for such a purpose counts
a source only if its agreement names that purpose explicitly for that consumer (never through
``'*'``); ``purposes_forbidden`` refuses a purpose outright, whatever the grants say. The default
is no.

Format 5 is format 6 without ``legal_bases_accepted``, ``field_classification``,
``steward_contact`` and ``envelope_retention_days``: read as accepting any legal basis, with the
default classification, no contact, and the default envelope retention of 7 days (the trust
deletes what it took in from its log whatever the format). Two sources' records are linked
only when BOTH agreements in force allow it. A privacy budget is
spent by every release that counts the source (the ledger, ``trust.release.ledger``); a release
counting several sources is limited by the smallest remaining budget among them. Format 4 is
format 5 without ``perpetrator_sharing`` and ``may_name_source``: it is read with perpetrator
sharing off (a source never agreed to it) and naming allowed (releases named every source they
counted when formats up to 4 were signed, so those sources agreed to be named). Format 3 is
format 4 without ``purposes_forbidden``, ``retention`` and the ``'*'`` purpose; format 2 is
format 3 without ``privacy_budget`` (no differentially private release counts the source); format
1 is format 2 without ``linkage`` (linking as the defaults say: it was written when every shared
identifier was shared for linkage).

Format 0 (the first slice's files, no ``format`` key) had ``consumers_allowed: [names]`` and no
purposes; it is read as ``releases_allowed`` with purpose ``statistics`` for each consumer — the
only purpose releases had then.

Every problem of a file is reported at once, by key path (never by value).

**Agreements as signed events.** A source signs the exact bytes of its YAML document with its
Ed25519 signing key (:func:`sign_agreement`: the signature covers :data:`SIGNING_CONTEXT` and the
bytes, so it can never pass for a signature over anything else). The trust verifies it against
the source's registered key, validates the document, and records an ``AgreementSubmitted``
event holding the signed bytes, the signature, the key id, the version and its effective date
(:func:`submit_agreement`). The version applies from its ``in_force_from`` but never before the
trust received it (:meth:`Agreements.in_force_at`): a backdated version cannot change what was
already decided. Agreements registered as files before agreements were events (unsigned, in the
home's ``trust/sources/<source>/agreements/``) are read beside the events, not migrated: the
trust never holds a signature the source did not make. The same version in both must have the
same terms (the source may submit a file's version signed: the signed one is then used). A
source's versions only go up; submitting a version held with the same terms changes nothing.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cattrs
import yaml
from cryptography.exceptions import InvalidSignature

from schemas.codec import WireSchema
from schemas.errors import ContractError, Problem, ReasonCode
from schemas.fields import Pruner
from schemas.keys import SigningKey, VerifyKey
from transport.topics import validate_name
from trust.convert import make_converter
from trust.store.events import AgreementSubmitted, new_event_id
from trust.store.eventstore import EventStore

FORMAT = 6
DEFAULT_ENVELOPE_RETENTION_DAYS = 7
LEGACY_PURPOSE = "statistics"
ANY_SOURCE = "*"
ANY_PURPOSE = "*"
ENCODINGS = ("plain",)
DESTROY, ARCHIVE_DEIDENTIFIED = "destroy", "archive_deidentified"
RETENTION_ENDS = (DESTROY, ARCHIVE_DEIDENTIFIED)

SENSITIVE_PURPOSES: Mapping[str, str] = {
    "immigration_enforcement": (
        "finding, detaining or removing people by their migration status: victims who fear "
        "deportation stop coming forward, and data shared to protect them would locate them"
    ),
    "prosecution_of_victims": (
        "charging victims for what they were compelled to do while trafficked: the "
        "non-punishment principle forbids it, and a shared record would be the evidence"
    ),
    "intelligence": (
        "intelligence and surveillance work: open-ended, secret, and beyond the agreement's "
        "oversight once the data has left the trust"
    ),
    "national_security": (
        "security vetting and screening: decisions about people, not statistics, with no "
        "route for a victim to see or contest them"
    ),
    "criminal_investigation": (
        "investigating identified people: releases are aggregates for statistics and policy, "
        "and an investigator's purpose must be agreed by each source, case by case"
    ),
    "commercial": (
        "selling, profiling or marketing: nothing a victim consented to when an agency "
        "recorded their case"
    ),
}
"""The purpose firewall's list, in one place: purposes a release may serve only when a source's
agreement names them explicitly for that consumer (never through ``'*'``). The reason beside
each says why the default is no."""

SIGNING_CONTEXT = b"tiptrust agreement v1\x00"
"""Prefixed to an agreement's bytes before signing: a source's signature over an agreement can
never pass for its signature over an envelope or anything else it signs."""


class AgreementError(Exception):
    """An agreement document is malformed. ``problems`` lists each by key path."""

    code = "bad_agreement"

    def __init__(self, where: str, problems: list[str]) -> None:
        super().__init__(f"{where}: " + "; ".join(problems))
        self.where = where
        self.problems = problems


class AgreementSignatureError(Exception):
    """A submitted agreement's signature does not verify against the source's registered key
    (or names a key that is not registered for the source)."""

    code = "bad_agreement_signature"


class AgreementVersionError(Exception):
    """A submitted version repeats an earlier one with different terms, or comes after a higher
    version (a source's versions only go up)."""

    code = "agreement_version"


class NoAgreement(ContractError):
    """No agreement in force covers this source at this time."""

    code = ReasonCode.NO_AGREEMENT


@dataclass(frozen=True)
class ReleaseGrant:
    """One consumer allowed to receive releases counting the source, for these purposes."""

    consumer: str
    purposes: tuple[str, ...]


@dataclass(frozen=True)
class LinkageTerms:
    """What an agreement says about linking its source's records (see the module docstring)."""

    link_with: tuple[str, ...] = (ANY_SOURCE,)
    shared_identifiers: tuple[str, ...] = ()
    encoding: str = "plain"


LEGAL_BASES = ("Consent", "OfficialAuthority", "PublicInterest", "VitalInterests", "Unknown")
"""A record's ``reporting_entity.legal_basis`` codes (the case record's ``LegalBasis``)."""

CLASSIFICATION_LEVELS = ("secret", "confidential", "restricted", "public")
"""The data classification levels, most protected first (the manual's table 2)."""

DEFAULT_CLASSIFICATION: Mapping[str, str] = {
    "$.victims[].identifiers": "secret",
    "$": "restricted",
}
"""Classification of a field no agreement lists: by the longest path prefix listed here."""


class LegalBasisNotAccepted(ContractError):
    """The record is held under a legal basis the source's agreement does not accept: it is
    refused (the source corrects it and sends it again)."""

    code = ReasonCode.LEGAL_BASIS_NOT_ACCEPTED


@dataclass(frozen=True)
class StewardContact:
    """Who answers for a source's data: a role or office and how to reach it."""

    name: str
    email: str | None = None
    phone: str | None = None


class RecordTerms:
    """What an agreement lets the trust keep of one case record, and whether it may keep it
    at all: the legal bases it accepts, then its fields shared (``prune``)."""

    def __init__(self, pruner: Pruner, legal_bases: frozenset[str] | None) -> None:
        self.pruner = pruner
        self.legal_bases = legal_bases

    def prune(self, datum: dict[str, Any]) -> dict[str, Any]:
        """The record as the trust may keep it.

        Raises:
            LegalBasisNotAccepted: the record's legal basis is not accepted.
        """
        if self.legal_bases is not None:
            entity = datum.get("reporting_entity") or {}
            if entity.get("legal_basis", "Unknown") not in self.legal_bases:
                raise LegalBasisNotAccepted(
                    "the record's legal basis of processing is not one the source's agreement "
                    "accepts",
                    problems=(
                        Problem(
                            "$.reporting_entity.legal_basis",
                            ReasonCode.LEGAL_BASIS_NOT_ACCEPTED,
                            "one of " + ", ".join(sorted(self.legal_bases)),
                        ),
                    ),
                )
        kept: dict[str, Any] = self.pruner.prune(datum)
        return kept


@dataclass(frozen=True)
class PrivacyBudget:
    """The total privacy loss all differentially private releases counting a source may cause,
    per consumer (basic composition: epsilons and deltas add up). Spent, never refreshed."""

    epsilon: float
    delta: float = 0.0


@dataclass(frozen=True)
class Retention:
    """How long the trust keeps a source's cases, and what happens when the term ends: counted
    from the last message about the case the trust accepted (a new version of the case starts
    the term again)."""

    at_end: str
    years: int = 0
    days: int = 0

    def cutoff_ms(self, now_ms: int) -> int:
        """The time before which a case's last message must lie for its term to have ended by
        ``now_ms`` (calendar years: 29 February less a year is 28 February)."""
        now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
        year = now.year - self.years
        day = min(now.day, calendar.monthrange(year, now.month)[1])
        back = now.replace(year=year, day=day) - dt.timedelta(days=self.days)
        return int(back.timestamp() * 1000)

    def describe(self) -> str:
        parts = [f"{n} {unit}" for n, unit in ((self.years, "year(s)"), (self.days, "day(s)")) if n]
        return f"{' '.join(parts)}, then {self.at_end}"


@dataclass(frozen=True)
class Agreement:
    source_id: str
    version: int
    in_force_from: dt.date
    in_force_until: dt.date | None
    fields_shared: tuple[str, ...]
    releases_allowed: tuple[ReleaseGrant, ...] = ()
    min_cell_size: int = 10
    linkage: LinkageTerms = LinkageTerms()
    privacy_budget: PrivacyBudget | None = None
    purposes_forbidden: tuple[str, ...] = ()
    retention: Retention | None = None
    perpetrator_sharing: bool = False
    may_name_source: bool = False
    legal_bases_accepted: tuple[str, ...] | None = None
    field_classification: dict[str, str] = field(default_factory=dict)
    steward_contact: StewardContact | None = None
    envelope_retention_days: int = DEFAULT_ENVELOPE_RETENTION_DAYS

    def classification(self, path: str) -> str:
        """The classification level of a field path: this agreement's, else the default (by
        the longest listed prefix of the path)."""
        for table in (self.field_classification, DEFAULT_CLASSIFICATION):
            best = max((p for p in table if _covers(p, path)), key=len, default=None)
            if best is not None:
                return table[best]
        return "restricted"

    def in_force(self, at: dt.date) -> bool:
        return self.in_force_from <= at and (
            self.in_force_until is None or at < self.in_force_until
        )

    def links_with(self, other_source: str) -> bool:
        """Whether this agreement lets the source's records be linked with ``other_source``'s
        (its own records always may be)."""
        terms = self.linkage.link_with
        return other_source == self.source_id or ANY_SOURCE in terms or other_source in terms

    def allows(self, consumer: str, purpose: str) -> bool:
        """Whether releases counting this source may go to ``consumer`` for ``purpose``: never a
        forbidden purpose; a sensitive purpose (:data:`SENSITIVE_PURPOSES`) only when a grant
        to that consumer names it; any other purpose when a grant names it or ``'*'``."""
        if purpose in self.purposes_forbidden:
            return False
        for g in self.releases_allowed:
            if g.consumer != consumer:
                continue
            if purpose in g.purposes:
                return True
            if ANY_PURPOSE in g.purposes and purpose not in SENSITIVE_PURPOSES:
                return True
        return False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "agreement") -> Agreement:
        """Parse a document of any format (see the module docstring).

        Raises:
            AgreementError: with every problem found, by key path.
        """
        return parse_agreement(data, where)

    def to_mapping(self) -> dict[str, Any]:
        """The document in the current format."""
        out: dict[str, Any] = {"format": FORMAT}
        out.update(_converter.unstructure(self))
        return out

    def to_yaml(self) -> str:
        """The document in the current format, as YAML (keys in the format's order)."""
        return yaml.safe_dump(self.to_mapping(), sort_keys=False)


def _structure_name(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError("a name")
    return validate_name(value)


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a whole number")
    return value


def _structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a number")
    return float(value)


def _make_converter() -> cattrs.Converter:
    # the trust's one converter's rules, strict about unknown keys (people write these files)
    c = make_converter(forbid_extra_keys=True)
    c.register_structure_hook(int, _structure_int)
    c.register_structure_hook(float, _structure_float)
    c.register_structure_hook(bool, _structure_bool)
    c.register_structure_hook(
        ReleaseGrant,
        lambda d, _: _grant(d),
    )
    return c


def _grant(d: Any) -> ReleaseGrant:
    if not isinstance(d, Mapping):
        raise ValueError("a mapping with consumer and purposes")
    extra = sorted(set(d) - {"consumer", "purposes"})
    if extra:
        raise ValueError(f"unknown keys {', '.join(map(str, extra))}")
    purposes = d.get("purposes")
    if not isinstance(purposes, list) or not purposes:
        raise ValueError("purposes: a non-empty list of purpose names")
    return ReleaseGrant(
        _structure_name(d.get("consumer"), str),
        tuple(p if p == ANY_PURPOSE else _structure_name(p, str) for p in purposes),
    )


_converter = _make_converter()

_FORMAT_4_KEYS = ("purposes_forbidden", "retention")
_FORMAT_5_KEYS = ("perpetrator_sharing", "may_name_source")
_FORMAT_6_KEYS = (
    "legal_bases_accepted",
    "field_classification",
    "steward_contact",
    "envelope_retention_days",
)


def _upcast(data: Mapping[str, Any]) -> dict[str, Any]:
    """Any format's document as a current-format mapping."""
    doc = dict(data)
    fmt = doc.pop("format", 0)
    if fmt == FORMAT:
        return doc
    if fmt in (0, 1, 2, 3, 4, 5):
        newer = [f"$.{k}: needs format 6" for k in _FORMAT_6_KEYS if k in doc]
        if newer:
            raise AgreementError("agreement", newer)
    if fmt == 5:
        return doc
    if fmt in (0, 1, 2, 3, 4):
        newer = [f"$.{k}: needs format 5" for k in _FORMAT_5_KEYS if k in doc]
        if newer:
            raise AgreementError("agreement", newer)
        # signed when releases named every source they counted, and before perpetrator streams
        doc["may_name_source"] = True
    if fmt == 4:
        return doc
    if fmt in (0, 1, 2, 3):
        newer = [f"$.{k}: needs format 4" for k in _FORMAT_4_KEYS if k in doc]
        if newer:
            raise AgreementError("agreement", newer)
    if fmt == 3:
        return doc
    if fmt in (1, 2) and "privacy_budget" in doc:
        raise AgreementError("agreement", ["$.privacy_budget: needs format 3"])
    if fmt == 2:
        return doc
    if fmt == 1:
        if "linkage" in doc:
            raise AgreementError("agreement", ["$.linkage: needs format 2"])
        return doc
    if fmt == 0:
        doc.setdefault("fields_shared", ["$"])  # the first format's default
        consumers = doc.pop("consumers_allowed", []) or []
        if "releases_allowed" not in doc and isinstance(consumers, list):
            doc["releases_allowed"] = [
                {"consumer": c, "purposes": [LEGACY_PURPOSE]} for c in consumers
            ]
        return doc
    raise AgreementError("agreement", [f"$.format: a known format (0 to {FORMAT})"])


def parse_agreement(data: Mapping[str, Any], where: str = "agreement") -> Agreement:
    """The agreement in ``data`` (any format). Raises :class:`AgreementError` listing every
    problem by key path."""
    if not isinstance(data, Mapping):
        raise AgreementError(where, ["$: a mapping of agreement keys"])
    fmt = data.get("format", 0)
    try:
        doc = _upcast(data)
    except AgreementError as exc:
        raise AgreementError(where, exc.problems) from None
    doc.setdefault("in_force_until", None)
    try:
        agreement = _converter.structure(doc, Agreement)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        messages = _messages(exc)
        raise AgreementError(where, messages + _problems_beside(doc, messages, fmt)) from None
    problems = _problems(agreement, fmt)
    if problems:
        raise AgreementError(where, problems)
    return agreement


_STAND_INS: Mapping[str, Any] = {
    "source_id": "stand_in",
    "version": 1,
    "in_force_from": dt.date(2000, 1, 1),
    "in_force_until": None,
    "fields_shared": ["$"],
}
"""Valid values for required keys whose own value was malformed (see :func:`_problems_beside`)."""


def _problems_beside(doc: Mapping[str, Any], messages: list[str], fmt: object) -> list[str]:
    """The other problems of a document some of whose keys are malformed: the keys that are
    well formed are checked as a valid document's would be (a malformed key stands in with a
    valid value, and a check that involves one is left out), so every problem is reported at
    once."""
    names = {f.name for f in Agreement.__dataclass_fields__.values()}
    bad = {m.removeprefix("$.").split(":")[0].split(".")[0].split("[")[0] for m in messages}
    if "$" in {m.split(":")[0] for m in messages}:
        bad.add("$")  # e.g. unknown keys: dropped below, nothing else to leave out
    kept = {k: v for k, v in doc.items() if k in names and k not in bad}
    lenient = {**{k: v for k, v in _STAND_INS.items() if k not in kept}, **kept}
    try:
        agreement = _converter.structure(lenient, Agreement)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError):
        return []
    involved = {
        "in_force_until": ("in_force_from",),
        "releases_allowed": ("purposes_forbidden",),
    }
    out = []
    for problem in _problems(agreement, fmt):
        key = problem.removeprefix("$.").split(":")[0].split(".")[0].split("[")[0]
        if key in bad or any(k in bad for k in involved.get(key, ())):
            continue
        out.append(problem)
    return out


def _problems(agreement: Agreement, fmt: object) -> list[str]:
    """What is wrong with a structured agreement, by key path."""
    problems = []
    try:
        validate_name(agreement.source_id)
    except ValueError:
        problems.append("$.source_id: a source id (lowercase letter, then a-z 0-9 _ -)")
    if agreement.version < 1:
        problems.append("$.version: a whole number from 1")
    if agreement.min_cell_size < 1:
        problems.append("$.min_cell_size: a whole number from 1")
    if agreement.in_force_until is not None and agreement.in_force_until <= agreement.in_force_from:
        problems.append("$.in_force_until: a date after in_force_from")
    forbidden = set(agreement.purposes_forbidden)
    for i, grant in enumerate(agreement.releases_allowed):
        for j, purpose in enumerate(grant.purposes):
            where = f"$.releases_allowed[{i}].purposes[{j}]"
            if purpose == ANY_PURPOSE and fmt not in (4, 5, FORMAT):
                problems.append(f"{where}: '*' needs format 4")
            elif purpose in forbidden:
                problems.append(f"{where}: a purpose this agreement forbids (purposes_forbidden)")
    for i, purpose in enumerate(agreement.purposes_forbidden):
        try:
            validate_name(purpose)
        except ValueError:
            problems.append(f"$.purposes_forbidden[{i}]: a purpose name (like a source id)")
    for i, other in enumerate(agreement.linkage.link_with):
        if other != ANY_SOURCE:
            try:
                validate_name(other)
            except ValueError:
                problems.append(f"$.linkage.link_with[{i}]: a source id or '*'")
    for i, scheme in enumerate(agreement.linkage.shared_identifiers):
        try:
            validate_name(scheme)
        except ValueError:
            problems.append(f"$.linkage.shared_identifiers[{i}]: a scheme name (like a source id)")
    if agreement.linkage.encoding not in ENCODINGS:
        problems.append(f"$.linkage.encoding: one of {', '.join(ENCODINGS)}")
    budget = agreement.privacy_budget
    if budget is not None:
        if not (math.isfinite(budget.epsilon) and budget.epsilon > 0):
            problems.append("$.privacy_budget.epsilon: a number above 0")
        if not (math.isfinite(budget.delta) and 0 <= budget.delta < 1):
            problems.append("$.privacy_budget.delta: a number from 0, below 1")
    if agreement.legal_bases_accepted is not None:
        for i, basis in enumerate(agreement.legal_bases_accepted):
            if basis not in LEGAL_BASES:
                problems.append(f"$.legal_bases_accepted[{i}]: one of {', '.join(LEGAL_BASES)}")
    for path, level in agreement.field_classification.items():
        if not (path == "$" or path.startswith("$.")):
            problems.append("$.field_classification: keys are field paths ($ or $.…)")
        if level not in CLASSIFICATION_LEVELS:
            problems.append(
                f"$.field_classification: levels are {', '.join(CLASSIFICATION_LEVELS)}"
            )
    contact = agreement.steward_contact
    if contact is not None and not contact.name.strip():
        problems.append("$.steward_contact.name: the role or office that answers, not empty")
    if not 0 <= agreement.envelope_retention_days <= 3650:
        problems.append("$.envelope_retention_days: a whole number of days from 0 to 3650")
    retention = agreement.retention
    if retention is not None:
        if retention.at_end not in RETENTION_ENDS:
            problems.append(f"$.retention.at_end: one of {', '.join(RETENTION_ENDS)}")
        if retention.years < 0 or retention.days < 0:
            problems.append("$.retention: years and days from 0")
        elif retention.years + retention.days == 0:
            problems.append("$.retention: a term of at least one day (years, days)")
        elif retention.years > 200:
            problems.append("$.retention.years: at most 200")
    return problems


def _messages(exc: BaseException) -> list[str]:
    if isinstance(exc, cattrs.BaseValidationError):
        out = []
        for message in cattrs.transform_error(exc, path="$"):
            # cattrs quotes the offending value in some messages: keep only the path and the kind
            path, _, reason = message.partition(" @ ")
            out.append(f"{reason or '$'}: {_reason(path)}")
        return out
    return [f"$: {type(exc).__name__}"]


_EXPECTED = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "date": "a date (YYYY-MM-DD)",
    "bool": "true or false",
    "ReleaseGrant": "a mapping with consumer (a name) and purposes (a non-empty list of names)",
}


def _reason(text: str) -> str:
    if text.startswith("required field missing"):
        return "required, missing"
    if text.startswith("extra fields found"):
        return "unknown key(s) " + text.partition("(")[2].rstrip(")")
    if text.startswith("invalid value for type"):
        kind = text.removeprefix("invalid value for type, expected ")
        return _EXPECTED.get(kind, "a value of " + kind)
    return text.split(":")[0]


def parse_document(document: bytes, where: str = "agreement") -> Agreement:
    """The agreement in a YAML document's bytes (any format).

    Raises:
        AgreementError: not UTF-8 YAML, or any problem of :func:`parse_agreement`.
    """
    try:
        data = yaml.safe_load(document.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise AgreementError(where, ["not valid YAML (UTF-8)"]) from None
    return parse_agreement(data, where)


def load_agreement(path: Path) -> Agreement:
    try:
        document = path.read_bytes()
    except OSError as exc:
        raise AgreementError(str(path), [f"cannot be read ({exc.strerror})"]) from None
    return parse_document(document, str(path))


def save_agreement(path: Path, agreement: Agreement) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(agreement.to_yaml(), encoding="utf-8")


# --- signed versions ---------------------------------------------------------------------------


def sign_agreement(document: bytes, key: SigningKey) -> bytes:
    """The source's Ed25519 signature over its agreement's exact bytes (with the context)."""
    return key.sign(SIGNING_CONTEXT + document)


def verify_agreement(document: bytes, signature: bytes, key: VerifyKey) -> None:
    """Check a source's signature over an agreement's bytes.

    Raises:
        AgreementSignatureError: it does not verify (altered, or signed by another key).
    """
    try:
        key.public.verify(signature, SIGNING_CONTEXT + document)
    except InvalidSignature:
        raise AgreementSignatureError(
            "the agreement's signature does not verify: altered, or signed by another key"
        ) from None


@dataclass(frozen=True)
class AgreementVersion:
    """One version of a source's agreement as the trust holds it: the terms, and how they came
    (``signed``: an ``AgreementSubmitted`` event at store ``seq``; ``file``: registered as a file
    before agreements were events, unsigned)."""

    agreement: Agreement
    origin: str
    received_at_ms: int | None = None
    key_id: str | None = None
    seq: int | None = None
    document: bytes = b""

    @property
    def applies_from_ms(self) -> int | None:
        """When this version starts to apply: its effective date, but never before the trust
        received it (None: from its effective date — a file registered before events)."""
        start = _day_start_ms(self.agreement.in_force_from)
        return None if self.received_at_ms is None else max(start, self.received_at_ms)


def _day_start_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def version_of(seq: int, event: AgreementSubmitted) -> AgreementVersion:
    """The version an ``AgreementSubmitted`` event recorded (its document was validated when
    it was submitted; one that no longer parses is an error, never skipped)."""
    agreement = parse_document(event.document, f"agreement event {seq}")
    return AgreementVersion(
        agreement=agreement,
        origin="signed",
        received_at_ms=event.received_at_ms,
        key_id=event.key_id,
        seq=seq,
        document=event.document,
    )


SUBMITTER = "trust-agreements"
"""The store consumer name agreement submissions are appended under."""


def submitted_versions(store: EventStore) -> list[AgreementVersion]:
    """Every agreement version submitted to the store, in the order it was received."""
    return [
        version_of(seq, ev)
        for seq, ev in store.all_of({AgreementSubmitted.event_type})
        if isinstance(ev, AgreementSubmitted)
    ]


def submit_agreement(
    store: EventStore,
    document: bytes,
    signature: bytes,
    key: VerifyKey,
    *,
    source_id: str,
    earlier: Iterable[AgreementVersion],
    now_ms: int,
) -> AgreementVersion | None:
    """Record a source's signed agreement version as an ``AgreementSubmitted`` event.

    ``key`` is the source's registered key the signature names; ``earlier`` the versions the
    trust holds for the source (events and files). Returns the version recorded, or None when
    the same version with the same terms is held already (submitting twice changes nothing).

    Raises:
        AgreementError: the document is not a valid agreement of ``source_id`` (every problem).
        AgreementSignatureError: the key is not the source's, or the signature does not verify.
        AgreementVersionError: the version repeats one with other terms, or is below the
            highest held.
    """
    agreement = parse_document(document, "agreement")
    if agreement.source_id != source_id:
        raise AgreementError("agreement", ["$.source_id: names another source than the sender"])
    if key.owner != source_id:
        raise AgreementSignatureError("the signing key is not registered for this source")
    verify_agreement(document, signature, key)
    held = [v for v in earlier if v.agreement.source_id == source_id]
    same = [v for v in held if v.agreement.version == agreement.version]
    if any(v.agreement != agreement for v in same):
        raise AgreementVersionError(
            f"version {agreement.version} of {source_id} is held with different terms: "
            "give the new terms a new version"
        )
    if any(v.origin == "signed" for v in same):
        return None
    # (a version held only as an unsigned file, with the same terms, is now recorded signed)
    highest = max((v.agreement.version for v in held if v not in same), default=0)
    if agreement.version < highest:
        raise AgreementVersionError(
            f"{source_id} already has version {highest}: a new version must be above it"
        )
    event = AgreementSubmitted(
        event_id=new_event_id(),
        source_id=source_id,
        agreement_version=agreement.version,
        effective_from=agreement.in_force_from,
        document=document,
        key_id=key.key_id,
        signature=signature,
        received_at_ms=now_ms,
    )
    (seq,) = store.append([event], None, SUBMITTER).seqs
    return version_of(seq, event)


class Agreements:
    """Every registered agreement version, by source, with a compiled field pruner for each.

    A version given as an :class:`AgreementVersion` applies from its ``applies_from_ms`` (never
    before the trust received it); a bare :class:`Agreement` from its effective date.
    """

    def __init__(
        self, agreements: Iterable[Agreement | AgreementVersion], case_schema: WireSchema
    ) -> None:
        self._schema = case_schema
        self._by_source: dict[str, list[AgreementVersion]] = {}
        self._pruners: dict[tuple[str, int], RecordTerms] = {}
        for a in agreements:
            self.add(a)

    def add(self, given: Agreement | AgreementVersion) -> None:
        """Hold one more version (a version already held is replaced by the one given)."""
        v = given if isinstance(given, AgreementVersion) else AgreementVersion(given, "given")
        a = v.agreement
        versions = [
            x for x in self._by_source.get(a.source_id, []) if x.agreement.version != a.version
        ]
        versions.append(v)
        versions.sort(key=lambda x: -x.agreement.version)
        self._by_source[a.source_id] = versions
        self._pruners[(a.source_id, a.version)] = RecordTerms(
            Pruner(self._schema, a.fields_shared),
            None if a.legal_bases_accepted is None else frozenset(a.legal_bases_accepted),
        )

    def in_force_at(self, source_id: str, at_ms: int) -> Agreement:
        """The highest version of ``source_id``'s agreements in force at ``at_ms`` (by the
        trust's clock; a version applies only once the trust received it).

        Raises:
            NoAgreement: none is (deny by default).
        """
        day = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).date()
        for v in self._by_source.get(source_id, []):
            start = v.applies_from_ms
            if v.agreement.in_force(day) and (start is None or start <= at_ms):
                return v.agreement
        raise NoAgreement("no data-sharing agreement in force for this source at this time")

    def in_force(self, source_id: str, at: dt.date) -> Agreement:
        """The highest version of ``source_id``'s agreements in force on the day ``at`` (one
        received that day counts from then on).

        Raises:
            NoAgreement: none is (deny by default).
        """
        for v in self._by_source.get(source_id, []):
            start = v.applies_from_ms
            if v.agreement.in_force(at) and (
                start is None or start < _day_start_ms(at) + 86_400_000
            ):
                return v.agreement
        raise NoAgreement("no data-sharing agreement in force for this source at this time")

    def in_force_or_none(self, source_id: str, at: dt.date) -> Agreement | None:
        try:
            return self.in_force(source_id, at)
        except NoAgreement:
            return None

    def in_force_at_or_none(self, source_id: str, at_ms: int) -> Agreement | None:
        try:
            return self.in_force_at(source_id, at_ms)
        except NoAgreement:
            return None

    def versions(self, source_id: str) -> list[AgreementVersion]:
        """Every version held for ``source_id``, lowest first."""
        return sorted(self._by_source.get(source_id, []), key=lambda v: v.agreement.version)

    def latest(self, source_id: str) -> Agreement | None:
        """The highest version held for ``source_id`` (in force or not)."""
        versions = self._by_source.get(source_id)
        return versions[0].agreement if versions else None

    def pruner(self, agreement: Agreement) -> RecordTerms:
        """What ``agreement`` lets the trust keep of a record (legal bases, then fields)."""
        return self._pruners[(agreement.source_id, agreement.version)]

    @property
    def sources(self) -> list[str]:
        return sorted(self._by_source)


def _covers(prefix: str, path: str) -> bool:
    return prefix == "$" or path == prefix or path.startswith(prefix + ".")
