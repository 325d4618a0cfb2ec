"""The trust's domain events: past-tense facts, appended to the event store and never changed.

Every event is a frozen dataclass; the one converter (``trust.convert``) turns it into plain data
and back, and :mod:`trust.store.stored` lays it in the store. Each event type has a ``version``:
a stored event of an older version is brought up to date by the upcasters of
:mod:`trust.store.stored` before it is structured, so old stores keep reading. ``EVENT_TYPES``
maps the stored ``event_type`` name back to its class. No event carries a victim's identifiers in
clear: :class:`RecordAccepted` holds them only as per-person sealed blobs (``trust.store.vault``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, TypeAlias

from schemas.errors import ReasonCode

JsonDict: TypeAlias = dict[str, Any]


def new_event_id() -> str:
    """A fresh id for an event the trust itself makes (36-char UUID string)."""
    return str(uuid.uuid4())


def json_safe(value: Any) -> Any:
    """A deep copy of ``value`` with every ``date`` as an ISO string (tuples become lists)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class SealedBlob:
    """One person's identifying fields, AES-256-GCM-sealed under that person's data key.

    ``schema`` says what the plaintext is: None, the fields as JSON; otherwise their Avro binary
    under the ``Identifiers`` record of the case record schema with this fingerprint (the form
    :meth:`trust.store.vault.Vault.seal_identifiers` writes, about half the bytes; the
    fingerprint is bound into the associated data, so one form is never opened as the other)."""

    person_key_id: str
    nonce: str  # base64
    ciphertext: str  # base64
    schema: bytes | None = None

    def __repr__(self) -> str:
        return f"SealedBlob(person_key_id={self.person_key_id!r}, len={len(self.ciphertext)})"


@dataclass(frozen=True, slots=True)
class RecordAccepted:
    """A source's case record (an upsert) passed every check and is now held by the trust.

    ``record`` is the minimised fastavro dict form with every victim's ``identifiers`` set to
    ``None``; the identifiers are in ``sealed_identifiers`` keyed by ``victim_id``.
    """

    event_type: ClassVar[str] = "RecordAccepted"
    # 2: the record is stored as Avro bytes beside the JSON; 3: the whole event is one binary
    # body (trust.store.stored), its sealed identifiers as raw bytes
    version: ClassVar[int] = 3
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    record: JsonDict
    sealed_identifiers: dict[str, SealedBlob]
    produced_at_ms: int
    accepted_at_ms: int
    kind: str = "RecordUpsert"
    #: the version of the source's agreement the record was admitted under (None: stored before
    #: the trust recorded it)
    agreement_version: int | None = None

    def __post_init__(self) -> None:
        # The store must never receive identifiers in clear: refuse at construction.
        for i, victim in enumerate(self.record.get("victims") or ()):
            if victim.get("identifiers") is not None:
                raise ValueError(f"$.victims[{i}].identifiers must be sealed, not in the record")

    @property
    def victims(self) -> list[JsonDict]:
        victims: list[JsonDict] = self.record.get("victims") or []
        return victims

    def __repr__(self) -> str:
        # Even minimised, a record is restricted microdata: keep it out of logs and tracebacks.
        return (
            f"RecordAccepted(event_id={self.event_id!r}, source_id={self.source_id!r}, "
            f"case_id={self.case_id!r}, victims={len(self.victims)})"
        )


@dataclass(frozen=True, slots=True)
class RecordRetracted:
    """A source withdrew one of its case records; it no longer counts anywhere."""

    event_type: ClassVar[str] = "RecordRetracted"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    reason: str
    accepted_at_ms: int


@dataclass(frozen=True, slots=True)
class ConsentWithdrawn:
    """A victim withdrew consent for the given purposes (``ConsentScope`` symbols)."""

    event_type: ClassVar[str] = "ConsentWithdrawn"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    victim_id: str
    scopes: list[str]
    accepted_at_ms: int


@dataclass(frozen=True, slots=True)
class DisposalRequested:
    """Disposal of one victim's data (or, with ``victim_id=None``, the whole case) was asked."""

    event_type: ClassVar[str] = "DisposalRequested"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = True

    event_id: str
    source_id: str
    case_id: str
    victim_id: str | None
    basis: str
    accepted_at_ms: int


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """An inbound message was refused. Position and reason code only: never any content.

    ``source_id`` is the source its topic names, or None when the topic names no valid source
    (then there is nobody to send a receipt to: the operator sees it in the quarantine).
    """

    event_type: ClassVar[str] = "MessageRejected"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str | None
    source_id: str | None
    reason: str
    field_path: str | None
    detail: str
    topic: str
    partition: int
    offset: int
    received_at_ms: int

    def __post_init__(self) -> None:
        ReasonCode(self.reason)  # a free-text reason could carry a value: only codes are stored


@dataclass(frozen=True, slots=True)
class ReleaseIssued:
    """The trust signed one release of a stream; ``signed_b64`` holds the exact signed bytes.

    Recorded before anything leaves the trust: the release publisher (a follower) puts exactly
    these bytes on the release topic, so a crash re-sends the same release and never a different
    one under the same sequence number. (Events recorded before this rule have no bytes: they were
    published first.)
    """

    event_type: ClassVar[str] = "ReleaseIssued"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    release_id: str
    stream: str
    sequence: int
    issued_at_ms: int
    period: str
    cells_digest: str
    signature_b64: str
    metadata: JsonDict = field(default_factory=dict)
    signed_b64: str = ""
    topic: str = ""
    consumer: str = ""  # the subscription's consumer ("" before releases were per subscription)
    purpose: str = ""

    @property
    def event_id(self) -> str:
        return self.release_id

    @property
    def source_id(self) -> str | None:
        return None  # made by the trust, not received from a source


@dataclass(frozen=True, slots=True)
class SubscriptionAdded:
    """``requested_by`` asked for ``consumer`` to receive ``stream`` for ``purpose`` (replacing
    any earlier subscription of the same consumer to the same stream). It is released to only
    once a trustee other than ``requested_by`` approved it (:class:`SubscriptionApproved`); an
    event from before release review (``requested_by`` empty) was in force when it was added, and
    stays so."""

    event_type: ClassVar[str] = "SubscriptionAdded"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    consumer: str
    stream: str
    purpose: str
    added_at_ms: int
    requested_by: str = ""  # "": added before release review (in force without approval)

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class SubscriptionApproved:
    """A trustee (``approved_by``, not the requester) approved ``consumer``'s subscription to
    ``stream`` for ``purpose`` as the stream is defined by ``definition`` (the digest of its
    definition): releases go out from then on, until the definition changes."""

    event_type: ClassVar[str] = "SubscriptionApproved"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    request_id: str  # the event id of the SubscriptionAdded it approves
    consumer: str
    stream: str
    purpose: str
    definition: str
    approved_by: str
    approved_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class SourceKeyRevoked:
    """A custodian (``revoked_by``) revoked ``source_id``'s signing key ``key_id``: nothing
    signed with it is accepted from then on (the running trust applies it at its next round)."""

    event_type: ClassVar[str] = "SourceKeyRevoked"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    source_id: str
    key_id: str
    revoked_by: str
    revoked_at_ms: int


@dataclass(frozen=True, slots=True)
class InboundDeleted:
    """The trust deleted the envelopes below ``before_offset`` of an inbound topic partition
    from its log: taken in, and past their source's envelope retention (format 6)."""

    event_type: ClassVar[str] = "InboundDeleted"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    topic: str
    partition: int
    before_offset: int
    deleted_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class TrustKeyRetired:
    """The trust destroyed its encryption (HPKE) key ``key_id``: replaced, and no envelope
    sealed to it is left on the inbound log to open."""

    event_type: ClassVar[str] = "TrustKeyRetired"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    key_id: str
    retired_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class AccessRefused:
    """A principal (``principal``: its name, or ``""`` when the token proved nobody) was refused
    ``action`` for ``reason`` (an access reason code). It names no record and no person."""

    event_type: ClassVar[str] = "AccessRefused"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    principal: str
    action: str
    reason: str
    refused_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class SubscriptionRemoved:
    """The operator ended ``consumer``'s subscription to ``stream``."""

    event_type: ClassVar[str] = "SubscriptionRemoved"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    consumer: str
    stream: str
    removed_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class VictimRef:
    """One victim record of one source's case: the unit linkage places in a person."""

    source_id: str
    case_id: str
    victim_id: str

    def key(self) -> tuple[str, str, str]:
        return (self.source_id, self.case_id, self.victim_id)


@dataclass(frozen=True, slots=True)
class PairEvidence:
    """Why linkage put a record with another one (or kept it apart): the other record, the
    pair's match probability and weight (bits), and each comparison's level (its index in the
    model's levels; ``0`` = no value on one side). Levels and weights only: never a value."""

    other: VictimRef
    probability: float
    match_weight: float
    levels: dict[str, int]


class LinkDecision:
    """How a record came to its person (the ``decision`` of :class:`RecordLinked`)."""

    NEW_PERSON = "new_person"  # nothing scored above the lower threshold
    JOINED = "joined"  # one person scored above the upper threshold
    SHARED_IDENTIFIER = "shared_identifier"  # a shared identifier both agreements declare
    PENDING_REVIEW = "pending_review"  # a person of its own until an operator decides
    PROVISIONAL = "provisional"  # joined the best of several persons until an operator decides
    OPERATOR = "operator"  # an operator's review decision placed it


@dataclass(frozen=True, slots=True)
class RecordLinked:
    """Linkage placed a victim record in a person (new or existing) under model ``model_version``.

    A person id, once issued, is never reused or changed: merges and splits are their own events.
    """

    event_type: ClassVar[str] = "RecordLinked"
    version: ClassVar[int] = 2  # 2: the evidence is stored packed (trust.store.stored)
    accepted: ClassVar[bool] = False

    event_id: str
    victim: VictimRef
    person_id: str
    decision: str
    model_version: str
    evidence: list[PairEvidence]
    linked_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None  # decided by the trust, not received from a source


@dataclass(frozen=True, slots=True)
class RecordUnlinked:
    """A victim record left its person: retracted, consent withdrawn, disposed, or superseded by a
    new version of its case (``reason``). The person's other records are re-resolved after it."""

    event_type: ClassVar[str] = "RecordUnlinked"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    victim: VictimRef
    person_id: str
    reason: str
    unlinked_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class PersonsMerged:
    """The ``absorbed`` persons are the same person as ``person_id``, which survives: their
    records move to it and each absorbed id is kept, marked ``merged_into`` the survivor."""

    event_type: ClassVar[str] = "PersonsMerged"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    person_id: str
    absorbed: list[str]
    reason: str
    evidence: list[PairEvidence]
    merged_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class PersonSplit:
    """Records of ``person_id`` no longer belong with the rest: ``moved`` go to the new person
    ``new_person_id`` (``person_id`` keeps the others and its history)."""

    event_type: ClassVar[str] = "PersonSplit"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    person_id: str
    new_person_id: str
    moved: list[VictimRef]
    reason: str
    split_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class LinkReviewOpened:
    """A record's placement needs an operator: it scored between the thresholds against a person,
    or above the upper one against several (a bridging record never merges persons by itself).
    Until the review is resolved the record is a person of its own."""

    event_type: ClassVar[str] = "LinkReviewOpened"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    review_id: str
    victim: VictimRef
    person_id: str  # the record's own (pending) person
    candidates: dict[str, list[PairEvidence]]  # candidate person id -> the pairs that scored
    model_version: str
    opened_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class LinkOverridden:
    """An operator decided whether ``victim`` is the same person as each of ``others`` (their
    records when they decided), overriding the model for these pairs from then on. ``review_id``
    names the review it resolves, if any. Linkage follows it with the merge or split it implies."""

    event_type: ClassVar[str] = "LinkOverridden"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    victim: VictimRef
    others: list[VictimRef]
    same: bool
    review_id: str | None
    operator: str
    decided_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class IdentifiersViewed:
    """An operator saw the identifying values of these records (a review shows them side by
    side): the audit trail of every such view."""

    event_type: ClassVar[str] = "IdentifiersViewed"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    operator: str
    victims: list[VictimRef]
    purpose: str
    viewed_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class LinkModelAdopted:
    """An operator adopted a linkage model estimated by EM on the trust's own linked records:
    decisions from now on name its version (earlier decisions keep theirs)."""

    event_type: ClassVar[str] = "LinkModelAdopted"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    model: JsonDict  # MatchModel.to_dict(): prior, per comparison levels, m and u, version
    trained_on_records: int
    operator: str
    adopted_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class PersonKeysShredded:
    """The erasure follower destroyed these persons' data keys (crypto-shredding), in the
    transaction that applied ``causes`` (the withdrawals, disposals or arrivals of a case
    already disposed of). ``key_ids`` are the vault's keyed key ids: they name no one, and tie
    the shred to the audit log's other entries about the same victim records."""

    event_type: ClassVar[str] = "PersonKeysShredded"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    key_ids: list[str]
    causes: list[str]  # event ids
    shredded_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class KekRotated:
    """The vault's key-encryption key was replaced: every remaining person key re-wrapped under
    a new one, the old one destroyed — from then on no older copy of a shredded key (a backup, a
    dead database row) can be unwrapped. ``reason``: ``erasure`` (a shred made it due) or
    ``operator`` (``tiptrust keys rotate-kek``)."""

    event_type: ClassVar[str] = "KekRotated"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    rewrapped: int
    reason: str
    rotated_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


# --- principals: who may act on the trust (trust.stewardship.principals) ------------------------


@dataclass(frozen=True, slots=True)
class PrincipalAdded:
    """A principal may act on the trust in ``role`` (a data steward for ``source`` only), proving
    it with an API token. The event holds the token's id, a random salt and the HMAC-SHA256 of
    the token's secret under that salt — never the token — so the store, its backups and the
    audit log cannot be used to act as anyone. ``added_by`` names the custodian who added it
    (``bootstrap`` for the first custodian, made by ``tiptrust keys trust-init``)."""

    event_type: ClassVar[str] = "PrincipalAdded"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    name: str
    role: str
    source: str | None
    token_id: str
    token_salt: str  # hex
    token_hash: str  # hex HMAC-SHA256(salt, secret)
    added_by: str
    added_at_ms: int

    def __repr__(self) -> str:
        return f"PrincipalAdded(name={self.name!r}, role={self.role!r}, source={self.source!r})"

    @property
    def source_id(self) -> str | None:
        return None  # decided by the trust, not received from a source


@dataclass(frozen=True, slots=True)
class PrincipalRevoked:
    """A custodian revoked ``name``: its token is refused from then on."""

    event_type: ClassVar[str] = "PrincipalRevoked"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    name: str
    revoked_by: str
    revoked_at_ms: int

    @property
    def source_id(self) -> str | None:
        return None


PRINCIPAL_EVENTS: tuple[type[PrincipalAdded | PrincipalRevoked], ...] = (
    PrincipalAdded,
    PrincipalRevoked,
)
"""The events that keep ``proj_principals`` (``trust.stewardship.principals`` writes them)."""

# --- end of principals ----------------------------------------------------------------------

# --- agreements: signed, versioned (trust.stewardship.agreement) -------------------------------


@dataclass(frozen=True, slots=True)
class AgreementSubmitted:
    """A source submitted a version of its data-sharing agreement, signed with its key, and the
    trust verified and validated it on receipt (``received_at_ms``, the trust's clock). The event
    keeps the exact signed bytes and the signature, so anyone holding the source's public key can
    check later what the source agreed to; the version applies from ``effective_from`` but never
    before it was received. Agreements name sources, consumers and purposes: no personal data."""

    event_type: ClassVar[str] = "AgreementSubmitted"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False  # recorded by the trust's operator, not an inbound message

    event_id: str
    source_id: str
    agreement_version: int
    effective_from: date
    document: bytes  # the YAML exactly as signed
    key_id: str
    signature: bytes  # Ed25519 over the agreement signing context and ``document``
    received_at_ms: int

    def __repr__(self) -> str:
        return (
            f"AgreementSubmitted(source_id={self.source_id!r}, "
            f"agreement_version={self.agreement_version}, key_id={self.key_id!r})"
        )


@dataclass(frozen=True, slots=True)
class RetentionApplied:
    """The operator applied the end of a retention term (``tiptrust trust retention --apply``)
    to these cases of ``source_id``, as agreement version ``agreement_version`` says: ``destroy``
    (each case is disposed of, recorded beside this as ``DisposalRequested`` with basis
    ``RetentionExpired``) or ``archive_deidentified`` (the victims' data keys are shredded — the
    identifiers are unreadable everywhere — while the anonymous records still count)."""

    event_type: ClassVar[str] = "RetentionApplied"
    version: ClassVar[int] = 1
    accepted: ClassVar[bool] = False

    event_id: str
    source_id: str
    agreement_version: int
    at_end: str
    case_ids: list[str]
    victims: int
    applied_at_ms: int

    def __repr__(self) -> str:
        return (
            f"RetentionApplied(source_id={self.source_id!r}, at_end={self.at_end!r}, "
            f"cases={len(self.case_ids)})"
        )


# --- end of agreements ----------------------------------------------------------------------


Event: TypeAlias = (
    RecordAccepted
    | RecordRetracted
    | ConsentWithdrawn
    | DisposalRequested
    | MessageRejected
    | ReleaseIssued
    | SubscriptionAdded
    | SubscriptionApproved
    | SubscriptionRemoved
    | AccessRefused
    | SourceKeyRevoked
    | InboundDeleted
    | TrustKeyRetired
    | RecordLinked
    | RecordUnlinked
    | PersonsMerged
    | PersonSplit
    | LinkReviewOpened
    | LinkOverridden
    | IdentifiersViewed
    | LinkModelAdopted
    | PersonKeysShredded
    | KekRotated
    | PrincipalAdded
    | PrincipalRevoked
    | AgreementSubmitted
    | RetentionApplied
)
"""Any event the store holds."""

EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        RecordAccepted,
        RecordRetracted,
        ConsentWithdrawn,
        DisposalRequested,
        MessageRejected,
        ReleaseIssued,
        SubscriptionAdded,
        SubscriptionApproved,
        SubscriptionRemoved,
        AccessRefused,
        SourceKeyRevoked,
        InboundDeleted,
        TrustKeyRetired,
        RecordLinked,
        RecordUnlinked,
        PersonsMerged,
        PersonSplit,
        LinkReviewOpened,
        LinkOverridden,
        IdentifiersViewed,
        LinkModelAdopted,
        PersonKeysShredded,
        KekRotated,
        *PRINCIPAL_EVENTS,
        AgreementSubmitted,
        RetentionApplied,
    )
}

LINKAGE_EVENTS: tuple[type[Event], ...] = (
    RecordLinked,
    RecordUnlinked,
    PersonsMerged,
    PersonSplit,
    LinkReviewOpened,
)
"""The events linkage decides (it is their only writer)."""
