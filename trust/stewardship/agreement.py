"""Data-sharing agreements: which source may send, when, which fields, to whom and for what.

An agreement is a YAML document per source and version. The format is versioned: ``format: 2``
is the current one, and the loader keeps reading every older format (upcasting it), so an
agreement signed years ago still loads. Later formats add the fields that later stages enforce.

Format 3 (what the policy point enforces now)::

    format: 3
    source_id: police
    version: 2                     # this source's agreement version; the highest in force wins
    in_force_from: 2024-01-01      # inclusive, judged by the trust's clock when a message arrives
    in_force_until: null           # exclusive; null = open-ended
    fields_shared: ['$']           # allow-list of field paths (prefixes); the rest is dropped
    releases_allowed:              # who may receive releases that count this source's persons,
      - consumer: ministry         #   and for which purposes (deny by default: none listed,
        purposes: [statistics]     #   no release includes this source)
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

Two sources' records are linked only when BOTH agreements in force allow it. A privacy budget is
spent by every release that counts the source (the ledger, ``trust.release.ledger``); a release
counting several sources is limited by the smallest remaining budget among them. Format 2 is
format 3 without ``privacy_budget`` (no differentially private release counts the source); format
1 is format 2 without ``linkage`` (linking as the defaults say: it was written when every shared identifier was
shared for linkage).

Format 0 (the first slice's files, no ``format`` key) had ``consumers_allowed: [names]`` and no
purposes; it is read as ``releases_allowed`` with purpose ``statistics`` for each consumer — the
only purpose releases had then.

Every problem of a file is reported at once, by key path (never by value).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cattrs
import yaml

from schemas.codec import WireSchema
from schemas.errors import ContractError, ReasonCode
from schemas.fields import Pruner
from transport.topics import validate_name
from trust.convert import make_converter

FORMAT = 3
LEGACY_PURPOSE = "statistics"
ANY_SOURCE = "*"
ENCODINGS = ("plain",)


class AgreementError(Exception):
    """An agreement document is malformed. ``problems`` lists each by key path."""

    code = "bad_agreement"

    def __init__(self, where: str, problems: list[str]) -> None:
        super().__init__(f"{where}: " + "; ".join(problems))
        self.where = where
        self.problems = problems


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


@dataclass(frozen=True)
class PrivacyBudget:
    """The total privacy loss all differentially private releases counting a source may cause,
    per consumer (basic composition: epsilons and deltas add up). Spent, never refreshed."""

    epsilon: float
    delta: float = 0.0


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
        """Whether releases counting this source may go to ``consumer`` for ``purpose``."""
        return any(g.consumer == consumer and purpose in g.purposes for g in self.releases_allowed)

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


def _structure_name(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError("a name")
    return validate_name(value)


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a whole number")
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
        _structure_name(d.get("consumer"), str), tuple(_structure_name(p, str) for p in purposes)
    )


_converter = _make_converter()


def _upcast(data: Mapping[str, Any]) -> dict[str, Any]:
    """Any format's document as a current-format mapping."""
    doc = dict(data)
    fmt = doc.pop("format", 0)
    if fmt == FORMAT:
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
    try:
        doc = _upcast(data)
    except AgreementError as exc:
        raise AgreementError(where, exc.problems) from None
    doc.setdefault("in_force_until", None)
    try:
        agreement = _converter.structure(doc, Agreement)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise AgreementError(where, _messages(exc)) from None
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
    if problems:
        raise AgreementError(where, problems)
    return agreement


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


def load_agreement(path: Path) -> Agreement:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise AgreementError(str(path), ["not valid YAML"]) from None
    return parse_agreement(data, str(path))


def save_agreement(path: Path, agreement: Agreement) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(agreement.to_mapping(), sort_keys=False), encoding="utf-8")


class Agreements:
    """Every registered agreement version, by source, with a compiled field pruner for each."""

    def __init__(self, agreements: Iterable[Agreement], case_schema: WireSchema) -> None:
        self._by_source: dict[str, list[Agreement]] = {}
        self._pruners: dict[tuple[str, int], Pruner] = {}
        for a in agreements:
            self._by_source.setdefault(a.source_id, []).append(a)
            self._pruners[(a.source_id, a.version)] = Pruner(case_schema, a.fields_shared)
        for versions in self._by_source.values():
            versions.sort(key=lambda a: -a.version)

    def in_force(self, source_id: str, at: dt.date) -> Agreement:
        """The highest version of ``source_id``'s agreements in force on ``at``.

        Raises:
            NoAgreement: none is (deny by default).
        """
        for a in self._by_source.get(source_id, []):
            if a.in_force(at):
                return a
        raise NoAgreement("no data-sharing agreement in force for this source at this time")

    def in_force_or_none(self, source_id: str, at: dt.date) -> Agreement | None:
        try:
            return self.in_force(source_id, at)
        except NoAgreement:
            return None

    def pruner(self, agreement: Agreement) -> Pruner:
        return self._pruners[(agreement.source_id, agreement.version)]

    @property
    def sources(self) -> list[str]:
        return sorted(self._by_source)
