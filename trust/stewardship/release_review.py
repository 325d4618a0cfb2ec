"""Release review: nothing new leaves the trust on one person's word (the two-person rule).

A subscription — a consumer receiving a stream for a purpose — is *requested* by a custodian or a
trustee and released to only after a **trustee other than the requester** approved it. The
approval names the request it approves and the **definition** of the stream it saw (a digest of
the stream's declaration: dimensions, categories, structural zeros, k, method, margins …). When
the trust later runs a different definition of that stream (an upgrade changed it), the
subscription is held until a trustee approves the new definition: a new stream definition is
reviewed like a new subscription. Routine releases of an approved subscription go out without
anyone in the loop. Requests and approvals are events in the store, so the audit log holds them.

Who may receive what is checked when the request is made: the consumer must be a registered
principal with a receiving role, and streams of record-level (synthetic) data go to
researchers only.

Subscriptions added before release review existed (their events name no requester) were in
force under the rules of their time and stay so (approved by :data:`PRE_REVIEW`, for any
definition).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from trust.convert import converter
from trust.refusal import Refusal
from trust.release.streams import CATALOGUE, StreamSpec
from trust.stewardship.policy import Subscription
from trust.stewardship.principals import Principal, Role, require_receiver
from trust.store.events import SubscriptionAdded, SubscriptionApproved, new_event_id
from trust.store.eventstore import EventStore
from trust.store.projections import PRE_REVIEW
from trust.store.tables import proj_subscriptions

__all__ = [
    "PRE_REVIEW",
    "REVIEWER",
    "ReviewError",
    "ReviewReason",
    "Status",
    "SubscriptionState",
    "approve_subscription",
    "definition_digest",
    "in_force",
    "request_subscription",
    "subscription_states",
]

REVIEWER = "release-review"
"""The store consumer name the requests and approvals are appended under."""


class ReviewReason(StrEnum):
    """Why a request or an approval was refused (the ``code`` of :class:`ReviewError`)."""

    NO_STREAM = "no_stream"
    RESEARCHERS_ONLY = "researchers_only"
    NO_REQUEST = "no_request"
    ALREADY_APPROVED = "already_approved"
    NOT_A_TRUSTEE = "not_a_trustee"
    SAME_PERSON = "same_person"


class ReviewError(Refusal):
    """A request or approval the rules refuse; ``code`` is a :class:`ReviewReason` value."""


class Status(StrEnum):
    IN_FORCE = "in force"
    AWAITING_APPROVAL = "awaiting approval"
    DEFINITION_CHANGED = "definition changed: awaiting approval"


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as release review sees it."""

    consumer: str
    stream: str
    purpose: str
    requested_by: str
    request_id: str | None
    approved_by: str | None
    approved_definition: str | None
    current_definition: str | None  # None: the trust no longer declares the stream

    @property
    def id(self) -> str:
        """What ``tiptrust trust subscription approve`` takes: ``consumer/stream``."""
        return f"{self.consumer}/{self.stream}"

    @property
    def status(self) -> Status:
        if self.approved_by is None:
            return Status.AWAITING_APPROVAL
        if self.approved_definition is not None and (
            self.approved_definition != self.current_definition
        ):
            return Status.DEFINITION_CHANGED
        return Status.IN_FORCE

    def subscription(self) -> Subscription:
        return Subscription(self.consumer, self.stream, self.purpose)


def _without_labels(value: Any) -> Any:
    # labels are for readers (a translation or a country's new short name is no new definition)
    if isinstance(value, Mapping):
        return {k: _without_labels(v) for k, v in value.items() if k not in ("label", "title")}
    if isinstance(value, list | tuple):
        return [_without_labels(v) for v in value]
    return value


def definition_digest(spec: StreamSpec) -> str:
    """A digest of what a stream counts and how it protects it: its declaration and the
    classifications of its dimensions, labels and titles left out (16 bytes, hex)."""
    body = {
        "spec": converter.unstructure(spec),
        "classifications": converter.unstructure(spec.classifications()),
    }
    canonical = json.dumps(_without_labels(body), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _digests(streams: Mapping[str, StreamSpec]) -> dict[str, str]:
    return {name: definition_digest(spec) for name, spec in streams.items()}


def subscription_states(
    store: EventStore, streams: Mapping[str, StreamSpec] = CATALOGUE
) -> list[SubscriptionState]:
    """Every subscription, approved or not, in (consumer, stream) order."""
    t = proj_subscriptions
    digests = _digests(streams)
    with store.engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.consumer, t.c.stream)).mappings().all()
    return [
        SubscriptionState(
            consumer=str(r["consumer"]),
            stream=str(r["stream"]),
            purpose=str(r["purpose"]),
            requested_by=str(r["requested_by"]),
            request_id=r["request_id"],
            approved_by=r["approved_by"],
            approved_definition=r["definition"],
            current_definition=digests.get(str(r["stream"])),
        )
        for r in rows
    ]


def in_force(
    store: EventStore, streams: Mapping[str, StreamSpec] = CATALOGUE
) -> list[Subscription]:
    """The subscriptions releases are made for: approved, for the definition the trust runs."""
    return [
        s.subscription() for s in subscription_states(store, streams) if s.status is Status.IN_FORCE
    ]


def request_subscription(
    store: EventStore,
    consumer: str,
    stream: str,
    purpose: str,
    requested_by: str,
    *,
    streams: Mapping[str, StreamSpec] = CATALOGUE,
    now_ms: int | None = None,
) -> SubscriptionState:
    """Ask for ``consumer`` to receive ``stream`` for ``purpose`` (replacing its earlier
    subscription to the stream, approved or not): it awaits a trustee's approval.

    Raises:
        ReviewError: ``no_stream``; ``researchers_only`` (record-level data to a non-researcher).
        PrincipalError: the consumer is not a registered receiving principal.
    """
    spec = streams.get(stream)
    if spec is None:
        raise ReviewError(
            ReviewReason.NO_STREAM,
            f"no release stream {stream!r}: the trust declares {', '.join(sorted(streams))}",
        )
    receiver = require_receiver(store, consumer)
    if spec.synthetic is not None and receiver.role is not Role.RESEARCHER:
        raise ReviewError(
            ReviewReason.RESEARCHERS_ONLY,
            f"{stream} holds record-level (synthetic) data: it goes to researchers only, and "
            f"{receiver.describe()} is not one",
        )
    event = SubscriptionAdded(
        new_event_id(),
        consumer,
        stream,
        purpose,
        int(time.time() * 1000) if now_ms is None else now_ms,
        requested_by=requested_by,
    )
    store.append([event], None, REVIEWER)
    return SubscriptionState(
        consumer, stream, purpose, requested_by, event.event_id, None, None,
        definition_digest(spec),
    )  # fmt: skip


def approve_subscription(
    store: EventStore,
    consumer: str,
    stream: str,
    approver: Principal,
    *,
    streams: Mapping[str, StreamSpec] = CATALOGUE,
    now_ms: int | None = None,
) -> SubscriptionState:
    """Approve the current request of ``consumer`` for ``stream``, as the trust defines the
    stream now. The approver must be a trustee and not the requester.

    Raises:
        ReviewError: ``no_request``, ``no_stream`` (no longer declared), ``already_approved``,
            ``not_a_trustee``, ``same_person``.
    """
    state = next(
        (
            s
            for s in subscription_states(store, streams)
            if (s.consumer, s.stream) == (consumer, stream)
        ),
        None,
    )
    if state is None:
        raise ReviewError(ReviewReason.NO_REQUEST, f"{consumer} has no subscription to {stream}")
    if state.current_definition is None:
        raise ReviewError(
            ReviewReason.NO_STREAM, f"the trust no longer declares a stream {stream!r}"
        )
    if state.status is Status.IN_FORCE:
        raise ReviewError(
            ReviewReason.ALREADY_APPROVED,
            f"{state.id} is in force (approved by {state.approved_by})",
        )
    if approver.role is not Role.TRUSTEE:
        raise ReviewError(
            ReviewReason.NOT_A_TRUSTEE,
            f"{approver.describe()} may not approve releases: that needs a trustee",
        )
    if approver.name == state.requested_by:
        raise ReviewError(
            ReviewReason.SAME_PERSON,
            f"{approver.name} asked for {state.id}: another trustee must approve it",
        )
    request_id = state.request_id
    assert request_id is not None  # only pre-review rows lack one, and they are in force
    store.append(
        [
            SubscriptionApproved(
                new_event_id(),
                request_id,
                consumer,
                stream,
                state.purpose,
                state.current_definition,
                approver.name,
                int(time.time() * 1000) if now_ms is None else now_ms,
            )
        ],
        None,
        REVIEWER,
    )
    return SubscriptionState(
        consumer, stream, state.purpose, state.requested_by, request_id, approver.name,
        state.current_definition, state.current_definition,
    )  # fmt: skip
