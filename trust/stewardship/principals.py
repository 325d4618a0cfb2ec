"""Principals, roles and API tokens: nobody acts on the trust without proving who they are.

Files are not credentials. Whoever can read the trust's home folder can read its keys and its
databases, but acting on the trust — registering a source, subscribing a consumer, deciding or
seeing a review's records, retracting a source's case — takes the API token of a **principal**
with the right role. Tokens are never kept by the trust: a principal's ``PrincipalAdded`` event
holds the token's id, a random salt and HMAC-SHA256(salt, secret). The secret is 256 random bits
(``secrets``), so the hash needs no slow key derivation: there is nothing to guess. Principals are
added and revoked as events, so the audit log (a follower of every stored event) records each
change; ``proj_principals`` is their projection.

A token reads ``tt1.<token id>.<secret>``: the id finds the row without trying every hash, the
secret is compared in constant time (:func:`hmac.compare_digest`).

Roles (the manual's table 2, in this trust's words):

``custodian``
    runs the trust: registers sources and their agreements, adds and revokes principals,
    subscribes consumers, and reviews uncertain links — seeing the records of a review task
    side by side, every view audited — and overrides linkage (join, separate); applies the
    agreements' retention (destroys or archives what a term ended).
``trustee``
    oversees releases: adds and ends subscriptions (approval of new ones is a later step).
``data_steward``
    answers for one source (``source``): only they act for it towards the trust (retraction,
    consent withdrawal, disposal), and only they may see a secret-level field of their own
    source's records.
``consumer`` and ``researcher``
    receive the releases of their own subscriptions; a subscription's consumer must be one of
    them (its principal name is the consumer id).

By classification level: **secret** (a victim's identifying values) — the data steward of the
record's own source, and the custodian within a review task; **restricted** (record-level facts
without identifiers: review levels and weights, link histories) — custodian and data stewards;
**public** (signed, disclosure-controlled releases) — the consumers subscribed to them.

:func:`authorize` is the one access check: it takes an authenticated :class:`Principal`, an
:class:`Action` and the source or consumer acted for, and raises :class:`AccessDenied` with a
reason ``code`` when the role does not allow it. A refusal names the role and the action, never a
token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, RowMapping, select

from transport.topics import validate_name
from trust.store.db import writer
from trust.store.events import AccessRefused, PrincipalAdded, PrincipalRevoked, new_event_id
from trust.store.eventstore import EventStore
from trust.store.tables import proj_principals

TOKEN_PREFIX = "tt1"
"""The token format's version: ``tt1.<16 hex id>.<43 url-safe base64 secret>``."""

BOOTSTRAP = "bootstrap"
"""``added_by`` of the first custodian (made by ``tiptrust keys trust-init``)."""


class Role(StrEnum):
    """What a principal is to the trust (one role per principal)."""

    CUSTODIAN = "custodian"
    TRUSTEE = "trustee"
    DATA_STEWARD = "data_steward"
    CONSUMER = "consumer"
    RESEARCHER = "researcher"


class Action(StrEnum):
    """What a command does on the trust, as :func:`authorize` judges it."""

    REGISTER_SOURCE = "register_source"  # a source's key or agreement
    MANAGE_PRINCIPALS = "manage_principals"  # add, revoke
    MANAGE_SUBSCRIPTIONS = "manage_subscriptions"  # ask for, remove
    APPROVE_RELEASES = "approve_releases"  # a subscription or a new stream definition
    DECIDE_LINKS = "decide_links"  # review accept/reject, join, separate
    VIEW_IDENTIFIERS = "view_identifiers"  # secret level, within a review task
    ACT_FOR_SOURCE = "act_for_source"  # retraction, consent withdrawal, disposal
    RECEIVE_RELEASES = "receive_releases"  # subscribe as the consumer
    APPLY_RETENTION = "apply_retention"  # destroy or archive what an agreement's term ended
    MANAGE_STORE = "manage_store"  # back up, restore


RULES: Mapping[Action, frozenset[Role]] = {
    Action.REGISTER_SOURCE: frozenset({Role.CUSTODIAN}),
    Action.MANAGE_PRINCIPALS: frozenset({Role.CUSTODIAN}),
    Action.MANAGE_SUBSCRIPTIONS: frozenset({Role.CUSTODIAN, Role.TRUSTEE}),
    Action.APPROVE_RELEASES: frozenset({Role.TRUSTEE}),  # and not the one who asked
    Action.DECIDE_LINKS: frozenset({Role.CUSTODIAN}),
    Action.VIEW_IDENTIFIERS: frozenset({Role.CUSTODIAN}),
    Action.ACT_FOR_SOURCE: frozenset({Role.DATA_STEWARD}),
    Action.RECEIVE_RELEASES: frozenset({Role.CONSUMER, Role.RESEARCHER}),
    Action.APPLY_RETENTION: frozenset({Role.CUSTODIAN}),
    Action.MANAGE_STORE: frozenset({Role.CUSTODIAN}),
}
"""Which roles may take each action (a data steward only for its own source, a consumer only
as itself: :func:`authorize` checks that too)."""

RECEIVING_ROLES = RULES[Action.RECEIVE_RELEASES]


class AccessReason(StrEnum):
    """Why a principal was refused (the ``code`` of :class:`AccessDenied`)."""

    NO_TOKEN = "no_token"
    MALFORMED_TOKEN = "malformed_token"
    UNKNOWN_TOKEN = "unknown_token"
    REVOKED = "revoked"
    WRONG_ROLE = "wrong_role"
    OTHER_SOURCE = "other_source"
    OTHER_CONSUMER = "other_consumer"


class AccessDenied(Exception):
    """The token proves no principal, or its principal may not take this action."""

    def __init__(self, code: AccessReason, message: str) -> None:
        self.code = code
        super().__init__(message)


class PrincipalError(Exception):
    """A principal cannot be added or revoked as asked (``code`` says why)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Principal:
    """Someone the trust knows: name (a consumer's is its consumer id), role, and the source a
    data steward answers for."""

    name: str
    role: Role
    source: str | None = None
    added_by: str = ""
    added_at_ms: int = 0
    revoked_at_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None

    def describe(self) -> str:
        return f"{self.name} ({self.role}" + (f" of {self.source})" if self.source else ")")


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: ``token`` is shown once to whoever asked, then forgotten."""

    principal: Principal
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(principal={self.principal!r}, token=<hidden>)"


# --- tokens --------------------------------------------------------------------------------------


def _hash(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    """A fresh token: a 64-bit id and a 256-bit secret from :mod:`secrets`."""
    return f"{TOKEN_PREFIX}.{secrets.token_hex(8)}.{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> tuple[str, str]:
    """``(token id, secret)`` of a well-formed token.

    Raises:
        AccessDenied: ``malformed_token`` (the message never repeats the token).
    """
    prefix, _, rest = token.strip().partition(".")
    token_id, _, secret = rest.partition(".")
    well_formed = (
        prefix == TOKEN_PREFIX
        and len(token_id) == 16
        and all(c in "0123456789abcdef" for c in token_id)
        and len(secret) >= 43
    )
    if not well_formed:
        raise AccessDenied(
            AccessReason.MALFORMED_TOKEN,
            "the token is not a tiptrust API token (tt1.<id>.<secret>)",
        )
    return token_id, secret


def _row_principal(row: RowMapping) -> Principal:
    source = row["source_id"]
    revoked = row["revoked_at_ms"]
    added = row["added_at_ms"]
    return Principal(
        name=str(row["name"]),
        role=Role(str(row["role"])),
        source=str(source) if source is not None else None,
        added_by=str(row["added_by"]),
        added_at_ms=int(added) if isinstance(added, int) else 0,
        revoked_at_ms=int(revoked) if isinstance(revoked, int) else None,
    )


def authenticate(store: EventStore, token: str | None) -> Principal:
    """The principal ``token`` proves.

    Raises:
        AccessDenied: no token, a malformed or unknown one, or the principal's revoked.
    """
    if not token:
        raise AccessDenied(
            AccessReason.NO_TOKEN,
            "no API token: give --token or set TIPTRUST_TOKEN (a custodian adds principals "
            "with `tiptrust principal add`)",
        )
    token_id, secret = parse_token(token)
    t = proj_principals
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.token_id == token_id)).mappings().first()
    if row is None or not hmac.compare_digest(
        _hash(bytes.fromhex(str(row["token_salt"])), secret), str(row["token_hash"])
    ):
        raise AccessDenied(AccessReason.UNKNOWN_TOKEN, "the API token is not known to this trust")
    principal = _row_principal(row)
    if principal.revoked:
        raise AccessDenied(
            AccessReason.REVOKED, f"principal {principal.name} was revoked: its token is refused"
        )
    return principal


def authorize(
    principal: Principal,
    action: Action,
    *,
    source: str | None = None,
    consumer: str | None = None,
) -> Principal:
    """Check that ``principal`` may take ``action`` (for ``source`` / as ``consumer``); returns
    it for chaining.

    Raises:
        AccessDenied: ``wrong_role``; ``other_source`` (a data steward acting for another
            source); ``other_consumer`` (receiving as another consumer).
    """
    allowed = RULES[action]
    if principal.role not in allowed:
        raise AccessDenied(
            AccessReason.WRONG_ROLE,
            f"{principal.describe()} may not {action.value.replace('_', ' ')}: "
            f"that needs {' or '.join(sorted(r.value for r in allowed))}",
        )
    if action is Action.ACT_FOR_SOURCE and principal.source != source:
        raise AccessDenied(
            AccessReason.OTHER_SOURCE,
            f"{principal.describe()} may not act for source {source}",
        )
    if action is Action.RECEIVE_RELEASES and principal.name != consumer:
        raise AccessDenied(
            AccessReason.OTHER_CONSUMER,
            f"{principal.describe()} may not receive the releases of consumer {consumer}",
        )
    return principal


def require(
    store: EventStore,
    token: str | None,
    action: Action,
    *,
    source: str | None = None,
    consumer: str | None = None,
) -> Principal:
    """:func:`authenticate` then :func:`authorize`: the principal acting, or AccessDenied —
    and then the refusal is in the store (:func:`record_refusal`), so the audit log has it."""
    principal: Principal | None = None
    try:
        principal = authenticate(store, token)
        return authorize(principal, action, source=source, consumer=consumer)
    except AccessDenied as exc:
        record_refusal(store, principal, action.value, exc)
        raise


def record_refusal(
    store: EventStore, principal: Principal | None, action: str, refusal: AccessDenied
) -> None:
    """Keep a refusal as an :class:`~trust.store.events.AccessRefused` event: who (the
    principal's name; ``""`` when the token proved nobody — the token itself is never kept),
    what, and the reason code."""
    store.append(
        [
            AccessRefused(
                event_id=new_event_id(),
                principal="" if principal is None else principal.name,
                action=action,
                reason=str(refusal.code),
                refused_at_ms=time.time_ns() // 1_000_000,
            )
        ],
        None,
        ACCESS_CONTROL,
    )


ACCESS_CONTROL = "access-control"
"""The store consumer name refusals are appended under."""


# --- the register of principals -----------------------------------------------------------------


def principals(store: EventStore, *, include_revoked: bool = False) -> list[Principal]:
    """Every principal (revoked ones too if asked), by name. No token or hash is returned."""
    t = proj_principals
    with store.engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.name)).mappings().all()
    found = [_row_principal(r) for r in rows]
    return [p for p in found if include_revoked or not p.revoked]


def find(store: EventStore, name: str) -> Principal | None:
    """The principal called ``name`` (revoked or not), None if the trust never had one."""
    t = proj_principals
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.name == name)).mappings().first()
    return None if row is None else _row_principal(row)


def require_receiver(store: EventStore, consumer: str) -> Principal:
    """The registered principal a subscription's consumer must be (consumer or researcher).

    Raises:
        PrincipalError: ``unregistered_consumer`` or ``not_a_consumer``.
    """
    p = find(store, consumer)
    if p is None or p.revoked:
        raise PrincipalError(
            "unregistered_consumer",
            f"{consumer} is not a registered consumer: a custodian adds it first "
            f"(`tiptrust principal add --role consumer --name {consumer}`)",
        )
    if p.role not in RECEIVING_ROLES:
        raise PrincipalError(
            "not_a_consumer", f"{p.describe()} is not a consumer or researcher: it receives nothing"
        )
    return p


def _current(conn: Connection, name: str) -> RowMapping | None:
    t = proj_principals
    return conn.execute(select(t).where(t.c.name == name)).mappings().first()


def add_principal(
    store: EventStore,
    name: str,
    role: Role,
    *,
    source: str | None = None,
    added_by: str,
    token: str | None = None,
) -> IssuedToken:
    """Add ``name`` in ``role`` (a data steward with its ``source``) with a fresh token (or the
    well-formed ``token`` given, for an operator who brings a secret of their own).

    Raises:
        PrincipalError: a bad name, a steward without source (or a source given to another
            role), or a principal of that name already active.
        AccessDenied: ``token`` is malformed.
    """
    try:
        validate_name(name)
        if source is not None:
            validate_name(source)
    except ValueError:
        raise PrincipalError(
            "bad_name", "a principal or source name is a lowercase letter, then 1-62 of a-z 0-9 _ -"
        ) from None
    if (role is Role.DATA_STEWARD) != (source is not None):
        raise PrincipalError(
            "source_mismatch", "a data steward needs --source; no other role takes one"
        )
    given = token or new_token()
    token_id, secret = parse_token(given)
    salt = secrets.token_bytes(16)
    event = PrincipalAdded(
        event_id=new_event_id(),
        name=name,
        role=role.value,
        source=source,
        token_id=token_id,
        token_salt=salt.hex(),
        token_hash=_hash(salt, secret),
        added_by=added_by,
        added_at_ms=time.time_ns() // 1_000_000,
    )
    with writer(store.engine).begin() as conn:
        row = _current(conn, name)
        if row is not None and row["revoked_at_ms"] is None:
            raise PrincipalError(
                "name_taken", f"principal {name} exists: revoke it first to give it a new token"
            )
        EventStore.append_in(conn, [event])
    return IssuedToken(Principal(name, role, source, added_by, event.added_at_ms), given)


def bootstrap_custodian(
    store: EventStore, name: str, token: str | None = None
) -> IssuedToken | None:
    """The trust's first custodian, made once (``tiptrust keys trust-init``): None when the
    trust already has an active custodian (then only a custodian adds principals)."""
    if any(p.role is Role.CUSTODIAN for p in principals(store)):
        return None
    return add_principal(store, name, Role.CUSTODIAN, added_by=BOOTSTRAP, token=token)


def revoke_principal(store: EventStore, name: str, *, revoked_by: str) -> Principal:
    """Revoke ``name``: its token is refused from now on. The last active custodian cannot be
    revoked (nobody could add principals again).

    Raises:
        PrincipalError: ``unknown_principal``, ``already_revoked`` or ``last_custodian``.
    """
    with writer(store.engine).begin() as conn:
        row = _current(conn, name)
        if row is None:
            raise PrincipalError("unknown_principal", f"no principal is called {name}")
        p = _row_principal(row)
        if p.revoked:
            raise PrincipalError("already_revoked", f"principal {name} is already revoked")
        if p.role is Role.CUSTODIAN:
            t = proj_principals
            others = conn.execute(
                select(t.c.name).where(
                    t.c.role == Role.CUSTODIAN.value,
                    t.c.revoked_at_ms.is_(None),
                    t.c.name != name,
                )
            ).first()
            if others is None:
                raise PrincipalError(
                    "last_custodian", f"{name} is the last custodian: add another one first"
                )
        EventStore.append_in(
            conn,
            [PrincipalRevoked(new_event_id(), name, revoked_by, time.time_ns() // 1_000_000)],
        )
    return p
