"""The store's tables, one ``MetaData``: the event store, its projections and the key vault.

``stored_events`` is append-only and the record of truth; ``accepted_event_ids`` makes inbound
events idempotent; ``positions`` is the source position written in the same transaction as the
events it produced. ``proj_*`` are projections, rebuilt from ``stored_events`` at will.
``person_keys`` is NOT part of the event store: it is mutable on purpose, so that erasing a
person is deleting a key (crypto-shredding). The Alembic migrations mirror these classes exactly.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite autoincrements only an ``INTEGER PRIMARY KEY``; PostgreSQL gets a BIGINT identity.
SeqType = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata


class StoredEvent(Base):
    __tablename__ = "stored_events"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))
    source_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)  # the event as JSON, through the one converter
    # an accepted case record: minimised and without identifiers, as Avro bytes + the writer
    # schema's fingerprint; from version 3 the body is the whole event in binary, its sealed
    # identifiers included, and the JSON only {"v":3} (see trust.store.stored)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_schema: Mapped[bytes | None] = mapped_column(LargeBinary)
    recorded_at_ms: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str | None] = mapped_column(String(255))
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)


class AcceptedEventId(Base):
    """The idempotency key: a source's event id is accepted at most once. Scoped by the source
    that signed it, so no source can claim (and so suppress) another source's event ids."""

    __tablename__ = "accepted_event_ids"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)


class ConsumerPosition(Base):
    """Per consumer, the next offset to read of each source partition."""

    __tablename__ = "positions"

    consumer: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class FollowerPosition(Base):
    """Per follower (a stage that reads the event store), the last stored seq it has handled."""

    __tablename__ = "follower_positions"

    follower: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    # what the follower's tables were built by (e.g. a digest of the stream definitions): when
    # the code's version differs, the follower starts again from 0 with its tables emptied
    version: Mapped[str] = mapped_column(String(64), server_default="")


class ProjRecord(Base):
    """One row per (source, case): its latest state."""

    __tablename__ = "proj_records"

    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))  # the latest event about this case
    retracted: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)  # how many versions were accepted
    year: Mapped[int | None] = mapped_column(Integer)
    country: Mapped[str | None] = mapped_column(String(16))


class ProjPerson(Base):
    """One row per victim record (one person per victim until linkage lands), keyed by the
    (source, case, victim) ids as columns: no joined string can make two victims collide."""

    __tablename__ = "proj_persons"

    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    victim_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    sex: Mapped[str] = mapped_column(String(32))
    age_at_identification: Mapped[int | None] = mapped_column(Integer)
    # when the exact age is not recorded: the age range (a band such as 18-20; None: open on
    # that side) and the majority status (Adult, Minor or Unknown), as the record gives them
    age_range_lower: Mapped[int | None] = mapped_column(Integer)
    age_range_upper: Mapped[int | None] = mapped_column(Integer)
    majority_status: Mapped[str] = mapped_column(String(16), server_default="Unknown")
    # the release age group of the record alone (schemas.rules.age_group_of)
    age_group: Mapped[str] = mapped_column(String(32))
    forms_of_exploitation: Mapped[str] = mapped_column(Text)  # ";"-joined, sorted
    year_of_exploitation: Mapped[int | None] = mapped_column(Integer)
    # ISO 3166 alpha-2 codes, ";"-joined and sorted, "Unknown" left out ("": none known): the
    # victim's citizenships, and the case's countries of exploitation (its country and list)
    citizenships: Mapped[str] = mapped_column(Text, server_default="")
    countries_of_exploitation: Mapped[str] = mapped_column(Text, server_default="")
    consent_withdrawn: Mapped[bool] = mapped_column(Boolean)
    disposed: Mapped[bool] = mapped_column(Boolean)
    # A retracted case keeps its persons flagged (not deleted) so that a withdrawal of consent
    # or a disposal survives a later re-acceptance of the same case.
    retracted: Mapped[bool] = mapped_column(Boolean)


class ProjPerpetrator(Base):
    """One row per perpetrator record of an accepted case, keyed by (source, case, perpetrator)
    ids: what the streams about perpetrators count (roles, the case's year), never linked across
    sources. Flagged like ``proj_persons``: ``retracted`` with its case, ``disposed`` when the
    whole case is disposed of (a victim's own withdrawal or disposal concerns that victim)."""

    __tablename__ = "proj_perpetrators"

    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    perpetrator_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    roles: Mapped[str] = mapped_column(Text)  # RoleInProcess codes, ";"-joined, sorted
    year_of_exploitation: Mapped[int | None] = mapped_column(Integer)
    disposed: Mapped[bool] = mapped_column(Boolean)
    retracted: Mapped[bool] = mapped_column(Boolean)


class ProjErasure(Base):
    """Every consent withdrawal and disposal, by the victim it names (``""``: every victim of the
    case), kept so it applies to the victim whenever their record arrives — before or after —
    and to every later version of the case."""

    __tablename__ = "proj_erasures"

    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    victim_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # consent_withdrawn|disposed


class ProjRelease(Base):
    """One row per recorded release; one (consumer, stream, sequence) can be recorded once."""

    __tablename__ = "proj_releases"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" before subscriptions
    stream: Mapped[str] = mapped_column(String(255), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    release_id: Mapped[str] = mapped_column(String(64))
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    cells_digest: Mapped[str] = mapped_column(String(128))


class ProjSubscription(Base):
    """The subscriptions, approved or awaiting approval: one per (consumer, stream)."""

    __tablename__ = "proj_subscriptions"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64))
    added_at_ms: Mapped[int] = mapped_column(BigInteger)
    # release review (trust.stewardship.release_review): who asked, which trustee approved it
    # (NULL: awaiting approval) and the digest of the stream definition approved (NULL: any)
    requested_by: Mapped[str] = mapped_column(String(64), server_default="")
    request_id: Mapped[str | None] = mapped_column(String(36))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    definition: Mapped[str | None] = mapped_column(String(64))


class ProjRejection(Base):
    __tablename__ = "proj_rejections"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    source_id: Mapped[str | None] = mapped_column(String(128))  # None: the topic named none
    reason: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))
    field_path: Mapped[str | None] = mapped_column(Text)


class ReleasePersonCell(Base):
    """Owned by the release stage: the cell each counted person is in, per stream, and the
    sources whose records make that person (``;``-joined, sorted)."""

    __tablename__ = "release_person_cells"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    # a linked person's id, or for a record linkage has not placed, the record's own unit id
    unit_id: Mapped[str] = mapped_column(String(700), primary_key=True)
    cell: Mapped[str] = mapped_column(Text)  # the cell key as a JSON array
    sources: Mapped[str] = mapped_column(Text)
    # for a record's own unit: its case, so a new version of the case that drops the victim
    # finds the unit to take out of the counts
    source_id: Mapped[str | None] = mapped_column(String(128))
    case_id: Mapped[str | None] = mapped_column(String(255))


Index("ix_release_person_cells_case", ReleasePersonCell.source_id, ReleasePersonCell.case_id)


class ReleaseCellCount(Base):
    """Owned by the release stage: counted persons per stream, set of sources and cell (> 0)."""

    __tablename__ = "release_cell_counts"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    sources: Mapped[str] = mapped_column(String(1024), primary_key=True)  # ";"-joined, sorted
    cell: Mapped[str] = mapped_column(String(512), primary_key=True)  # JSON array
    persons: Mapped[int] = mapped_column(Integer)


class ProjPersonLink(Base):
    """Which person each linked victim record is in (from linkage's events)."""

    __tablename__ = "proj_person_links"

    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    victim_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    linked_seq: Mapped[int] = mapped_column(BigInteger)


class ProjLinkedPerson(Base):
    """Every person id linkage ever issued: how many records it holds now, and the survivor it
    was merged into (ids are never reused: an absorbed person stays, with no records)."""

    __tablename__ = "proj_linked_persons"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    records: Mapped[int] = mapped_column(Integer)
    merged_into: Mapped[str | None] = mapped_column(String(64))
    created_seq: Mapped[int] = mapped_column(BigInteger)


class ProjLinkReview(Base):
    """Linkage's review queue: a record an operator must place (see ``LinkReviewOpened``)."""

    __tablename__ = "proj_link_reviews"

    review_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(128))
    case_id: Mapped[str] = mapped_column(String(255))
    victim_id: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[str] = mapped_column(String(64))
    candidates: Mapped[str] = mapped_column(Text)  # JSON: candidate person id -> best probability
    status: Mapped[str] = mapped_column(String(16))  # open | accepted | rejected | withdrawn
    opened_seq: Mapped[int] = mapped_column(BigInteger)


class ProjLinkOverride(Base):
    """An operator's verdict on a pair of victim records (both directions are rows), from
    ``LinkOverridden``: linkage never joins a pair judged different, and keeps a pair judged the
    same together when it re-resolves a person."""

    __tablename__ = "proj_link_overrides"

    record: Mapped[str] = mapped_column(
        String(700), primary_key=True
    )  # JSON [source, case, victim]
    other: Mapped[str] = mapped_column(String(700), primary_key=True)
    same: Mapped[bool] = mapped_column(Boolean)
    decided_seq: Mapped[int] = mapped_column(BigInteger)


class LinkBlock(Base):
    """Owned by linkage: the keyed blocking digests each linked record is filed under (never an
    identifier or its phonetic code in clear). A record's erasure deletes its rows."""

    __tablename__ = "link_blocks"

    block_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    victim_id: Mapped[str] = mapped_column(String(255), primary_key=True)


Index("ix_link_blocks_record", LinkBlock.source_id, LinkBlock.case_id, LinkBlock.victim_id)


class LinkTerm(Base):
    """Owned by linkage: how many linked records have each name value (keyed digest, never the
    name), per name column — an exact agreement on a rare name weighs more than on a common one.
    The row with digest ``""`` holds the column's total, ``"*"`` the sum of squared counts."""

    __tablename__ = "link_terms"

    column: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class LinkFeature(Base):
    """Owned by linkage: the fields a linked record is compared on, sealed under the person's data
    key (so the person's erasure makes them unreadable too)."""

    __tablename__ = "link_features"

    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    victim_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    person_key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(32))
    ciphertext: Mapped[str] = mapped_column(Text)


class PersonKey(Base):
    """A person's data key, wrapped under the KEK. Shredding clears ``wrapped_key``."""

    __tablename__ = "person_keys"

    person_key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # indexed: "was anything shredded since the last KEK rotation?" is asked after every step
    shredded_at_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)


class VaultSecret(Base):
    """A secret of the vault other than a person's key (the key that makes person key ids), wrapped
    under the KEK so that it survives a KEK rotation unchanged."""

    __tablename__ = "vault_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    # when the KEK was last rotated (the secrets were last re-wrapped), ms since the epoch
    rotated_at_ms: Mapped[int] = mapped_column(BigInteger)


class PrivacyLedgerEntry(Base):
    """The privacy budget (epsilon, delta) one differentially private release spent, charged to
    each source whose persons it counts, for the consumer it was issued to. Written in the same
    transaction as the release's ``ReleaseIssued``; never emptied or rebuilt (a budget spent
    stays spent: budgets never refresh silently). A (consumer, source)'s spend is the sum of its
    rows."""

    __tablename__ = "privacy_ledger"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger)
    epsilon: Mapped[float] = mapped_column(Double)
    delta: Mapped[float] = mapped_column(Double)
    recorded_at_ms: Mapped[int] = mapped_column(BigInteger)


class AuditEntry(Base):
    """Owned by the audit log (``trust.stewardship.audit``): one entry per audited stored event,
    append-only and never rebuilt. ``entry`` is the entry's canonical JSON (no personal data),
    the Merkle leaf; ``chain`` = SHA-256(previous entry's chain ‖ entry), hex."""

    __tablename__ = "audit_entries"

    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry: Mapped[str] = mapped_column(Text)
    chain: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """Owned by the audit log: the signed tree head after each batch of entries (RFC 6962 root
    and chain head at ``tree_size``), with the tree's right edge to grow it from (``frontier``,
    a JSON list of hex subtree roots). Unsigned when the trust had no release key."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(64))
    chain: Mapped[str] = mapped_column(String(64))
    frontier: Mapped[str] = mapped_column(Text)
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(128))  # base64 Ed25519


# --- principals (trust.stewardship.principals) ---------------------------------------------------


class ProjPrincipal(Base):
    """The principals who may act on the trust, one per name: role, the source a data steward
    answers for, and the token's id, salt and keyed hash (never the token). ``revoked_at_ms``
    set: the token is refused. A projection of ``PrincipalAdded`` / ``PrincipalRevoked``."""

    __tablename__ = "proj_principals"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str | None] = mapped_column(String(128))
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_salt: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64))
    added_by: Mapped[str] = mapped_column(String(64))
    added_at_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger)


# --- end of principals ----------------------------------------------------------------------


def _table(cls: type[Base]) -> Table:
    table = cls.__table__
    assert isinstance(table, Table)
    return table


# Core handles on the tables, typed as ``Table`` for insert/update/delete.
stored_events = _table(StoredEvent)
accepted_event_ids = _table(AcceptedEventId)
positions = _table(ConsumerPosition)
follower_positions = _table(FollowerPosition)
proj_records = _table(ProjRecord)
proj_persons = _table(ProjPerson)
proj_perpetrators = _table(ProjPerpetrator)
proj_releases = _table(ProjRelease)
proj_erasures = _table(ProjErasure)
proj_rejections = _table(ProjRejection)
proj_subscriptions = _table(ProjSubscription)
person_keys = _table(PersonKey)
vault_secrets = _table(VaultSecret)
release_person_cells = _table(ReleasePersonCell)
release_cell_counts = _table(ReleaseCellCount)
proj_person_links = _table(ProjPersonLink)
proj_linked_persons = _table(ProjLinkedPerson)
proj_link_reviews = _table(ProjLinkReview)
proj_link_overrides = _table(ProjLinkOverride)
link_blocks = _table(LinkBlock)
link_features = _table(LinkFeature)
link_terms = _table(LinkTerm)
privacy_ledger = _table(PrivacyLedgerEntry)
proj_principals = _table(ProjPrincipal)

PROJECTION_TABLES: tuple[Table, ...] = (
    proj_records,
    proj_persons,
    proj_perpetrators,
    proj_erasures,
    proj_releases,
    proj_rejections,
    proj_subscriptions,
    proj_person_links,
    proj_linked_persons,
    proj_link_reviews,
    proj_link_overrides,
    proj_principals,
)
"""The tables ``projections.rebuild`` empties and refills, in a stable order."""

FOLLOWER_TABLES: tuple[Table, ...] = (
    release_person_cells,
    release_cell_counts,
    link_blocks,
    link_features,
    link_terms,
)
"""Tables owned by followers of the store (rebuilt by resetting the follower to position 0)."""
