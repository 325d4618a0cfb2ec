"""The one policy decision point: every question of "may this happen, and under which rule".

- Which agreement is in force for a message — judged by the time the TRUST received it, never by
  the sender's clock (a backdated header cannot select an expired agreement). Messages that only
  reduce use (retraction, withdrawal of consent, disposal) need none.
- Which fields of a record are kept (the rest is dropped at ingest: minimisation).
- Which sources' persons enter a subscription's release: only those whose agreement in force
  allows that consumer and purpose (deny by default); the others are left out, and the release
  says how many. A subscription no contributing source allows gets no release at all.
- The purpose firewall: a sensitive purpose (``agreement.SENSITIVE_PURPOSES``, each with its
  reason: immigration enforcement, prosecution of victims, intelligence, ...) is served only by
  sources whose agreement names it explicitly for that consumer; a purpose an agreement forbids
  (``purposes_forbidden``) never is.
- Which sources' records enter a stream about perpetrators (``StreamSpec.subject``
  ``perpetrators``): only those whose agreement in force also shares perpetrator data
  (``perpetrator_sharing``, format 5); the others are left out, and the release says how many
  for that reason.
- Which included sources a release may name (``may_name_source``): the others are counted in the
  number of sources but not listed.
- Which k applies: the strictest among the stream's and the included sources' agreements.
- Which privacy budget each included source's agreement grants (differentially private releases
  spend it, per consumer; the release ledger keeps the account).

The answers for a release are fixed in a :class:`ReleasePlan` before any data is touched.

The agreements are those the trust held when it started plus every version submitted since:
:class:`AgreementFollower` follows the store's ``AgreementSubmitted`` events into the running
policy, so a new version needs no restart (it applies from its effective date, never before the
trust received it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

from schemas.envelope import MessageKind
from transport import topics
from trust.follow import Batch
from trust.release.streams import PERPETRATORS, StreamSpec
from trust.stewardship.agreement import (
    Agreement,
    Agreements,
    PrivacyBudget,
    RecordTerms,
    version_of,
)
from trust.store.events import AgreementSubmitted

USE_REDUCING: frozenset[MessageKind] = frozenset(
    {MessageKind.RECORD_RETRACTION, MessageKind.CONSENT_WITHDRAWAL, MessageKind.DISPOSAL_REQUEST}
)
"""Message kinds that only take data out of use: admitted without an agreement in force."""


@dataclass(frozen=True)
class Subscription:
    """An entity of the trust: ``consumer`` receives ``stream`` for ``purpose``."""

    consumer: str
    stream: str
    purpose: str

    def __post_init__(self) -> None:
        for name in (self.consumer, self.stream, self.purpose):
            topics.validate_name(name)

    @property
    def topic(self) -> str:
        return topics.release(self.consumer, self.stream)


class NothingToRelease(Exception):
    """No contributing source's agreement allows this subscription: it gets no release."""

    code = "nothing_allowed"


@dataclass(frozen=True)
class ReleasePlan:
    """What one release of a subscription may contain, decided before any data is read.

    Raises on construction when it would release nothing or weaken the stream's k.
    """

    subscription: Subscription
    spec: StreamSpec
    sources: tuple[str, ...]  # included, sorted
    sources_left_out: int  # contributing sources whose agreement does not allow this
    k: int
    agreement_versions: tuple[tuple[str, int], ...]
    #: each included source's privacy budget (None: its agreement grants none), in source order
    privacy_budgets: tuple[tuple[str, PrivacyBudget | None], ...] = ()
    #: the included sources whose agreement lets a release name them (sorted); the others are
    #: counted in the number of sources only
    sources_named: tuple[str, ...] = ()
    #: of ``sources_left_out``, those left out because their agreement allows the subscription
    #: but does not share perpetrator data (a stream about perpetrators)
    sources_left_out_perpetrators: int = 0

    def __post_init__(self) -> None:
        if not self.sources:
            if self.sources_left_out_perpetrators:
                raise NothingToRelease(
                    f"no source whose agreement allows {self.subscription.consumer} for "
                    f"{self.subscription.purpose} shares perpetrator data"
                )
            raise NothingToRelease(
                f"no source's agreement allows {self.subscription.consumer} "
                f"for {self.subscription.purpose}"
            )
        if not set(self.sources_named) <= set(self.sources):
            raise ValueError("a plan may name only the sources it includes")
        if self.k < self.spec.k:
            raise ValueError("a plan's k may not be below its stream's k")
        if self.spec.name != self.subscription.stream:
            raise ValueError("the plan's stream is not the subscription's")

    @property
    def topic(self) -> str:
        return self.subscription.topic


class Policy:
    """Answers policy questions from the registered agreements (see the module docstring)."""

    def __init__(self, agreements: Agreements) -> None:
        self.agreements = agreements

    def admit(self, source_id: str, kind: MessageKind, received_at_ms: int) -> Agreement | None:
        """Whether a message of ``kind`` from ``source_id`` (already authenticated) is admitted
        when the trust received it, and under which agreement.

        A case record needs the agreement in force then (returned). A message that only reduces
        use — a retraction, a withdrawal of consent, a disposal request — is always admitted
        (None): a victim's withdrawal must count even after the source's agreement lapsed.

        Raises:
            NoAgreement: a case record with no agreement in force.
        """
        if kind in USE_REDUCING:
            return None
        return self.agreement_for_message(source_id, received_at_ms)

    def agreement_for_message(self, source_id: str, received_at_ms: int) -> Agreement:
        """The agreement in force when the trust received a message from ``source_id``.

        Raises:
            NoAgreement: none is in force then (the message is rejected).
        """
        return self.agreements.in_force_at(source_id, received_at_ms)

    def may_link(self, source_a: str, source_b: str, at_ms: int) -> bool:
        """Whether records of ``source_a`` and ``source_b`` may be linked at ``at_ms``: a source's
        own records always may; two sources only when both agreements in force then allow it."""
        if source_a == source_b:
            return True
        a = self.agreements.in_force_at_or_none(source_a, at_ms)
        b = self.agreements.in_force_at_or_none(source_b, at_ms)
        return a is not None and b is not None and a.links_with(source_b) and b.links_with(source_a)

    def shared_schemes(self, source_a: str, source_b: str, at_ms: int) -> frozenset[str]:
        """The identifier schemes both sources' agreements in force declare (empty when they may
        not be linked)."""
        if not self.may_link(source_a, source_b, at_ms):
            return frozenset()
        a = self.agreements.in_force_at_or_none(source_a, at_ms)
        b = self.agreements.in_force_at_or_none(source_b, at_ms)
        assert a is not None and b is not None
        return frozenset(a.linkage.shared_identifiers) & frozenset(b.linkage.shared_identifiers)

    def privacy_budget(self, source_id: str, at_ms: int) -> PrivacyBudget | None:
        """The privacy budget the agreement in force at ``at_ms`` grants for ``source_id``'s
        persons (None: no agreement in force, or it grants none — deny by default)."""
        a = self.agreements.in_force_at_or_none(source_id, at_ms)
        return None if a is None else a.privacy_budget

    def fields_kept(self, agreement: Agreement) -> RecordTerms:
        """What the agreement lets the trust keep of a case record: a record with a victim
        under a legal basis it does not accept is refused, then the fields not shared drop."""
        return self.agreements.pruner(agreement)

    @staticmethod
    def allows_release(agreement: Agreement, subscription: Subscription) -> bool:
        """Whether ``agreement`` lets its source's persons into ``subscription``'s releases:
        the purpose firewall first (a forbidden purpose never; a sensitive one only when named
        for that consumer), then the grants (deny by default)."""
        return agreement.allows(subscription.consumer, subscription.purpose)

    @staticmethod
    def shares_subject(agreement: Agreement, spec: StreamSpec) -> bool:
        """Whether ``agreement`` lets its source's records into a stream about ``spec``'s
        subject: victims always; perpetrators only with ``perpetrator_sharing``."""
        return spec.subject != PERPETRATORS or agreement.perpetrator_sharing

    def plan(
        self,
        subscription: Subscription,
        spec: StreamSpec,
        contributing: Iterable[str],
        at_ms: int,
    ) -> ReleasePlan:
        """The plan of ``subscription``'s release at ``at_ms`` over the ``contributing`` sources.

        Raises:
            NothingToRelease: no contributing source's agreement in force allows it.
        """
        included: list[Agreement] = []
        left_out = not_shared = 0
        for source_id in sorted(set(contributing)):
            a = self.agreements.in_force_at_or_none(source_id, at_ms)
            if a is None or not self.allows_release(a, subscription):
                left_out += 1
            elif not self.shares_subject(a, spec):
                left_out += 1
                not_shared += 1
            else:
                included.append(a)
        k = max([spec.k, *(a.min_cell_size for a in included)])
        return ReleasePlan(
            subscription=subscription,
            spec=spec,
            sources=tuple(a.source_id for a in included),
            sources_left_out=left_out,
            k=k,
            agreement_versions=tuple((a.source_id, a.version) for a in included),
            privacy_budgets=tuple((a.source_id, a.privacy_budget) for a in included),
            sources_named=tuple(a.source_id for a in included if a.may_name_source),
            sources_left_out_perpetrators=not_shared,
        )


class AgreementFollower:
    """Brings agreement versions submitted while the trust runs into its policy (a follower of
    the store's ``AgreementSubmitted`` events; its effect is in memory, so it has no tables).

    Adding a version the policy holds already changes nothing, so re-reading events after a
    restart is harmless. Put it first among the followers: ingest and linkage then judge by
    every version submitted before their step.
    """

    name = "trust-agreements"
    event_types = frozenset({AgreementSubmitted.event_type})
    version = "1"
    reads_records = False

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def apply(self, conn: Connection, events: Batch) -> None:
        for seq, ev in events:
            if isinstance(ev, AgreementSubmitted):
                self.policy.agreements.add(version_of(seq, ev))

    def clear(self, conn: Connection) -> None:
        """Nothing to empty: the policy is rebuilt from the store when the trust starts."""
