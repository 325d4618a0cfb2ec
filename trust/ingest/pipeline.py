"""The ingest pipeline: one inbound message in, one accepted event or one rejection out.

verify signature → check source and agreement → decrypt → decode and validate (one pass for a
valid payload of the current schema) → minimise under the agreement → (the worker dedupes by
event id) → seal each person's identifiers under that person's own key. Pure with respect to the
log and the store: the worker does the I/O, so the same steps run on every transport backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.codec import SchemaRegistry
from schemas.envelope import MessageKind, OpenCache, OpenedEvent, open_event
from schemas.errors import ContractError, Delivery, ReasonCode, SourceMismatch
from schemas.fastdecode import PayloadDecoder
from schemas.keys import Keyring
from schemas.rules import MAX_MESSAGE_BYTES
from schemas.validate import Validator, validator_for
from transport import LogRecord, topics
from trust.stewardship.agreement import Agreement
from trust.stewardship.policy import Policy
from trust.store.errors import KeyShredded
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    RecordAccepted,
    RecordRetracted,
)
from trust.store.vault import Vault

log = logging.getLogger(__name__)

# envelope failures found after the batch signature verified: the header (and its event id) is the
# source's own. Before that point the header could have been written by anyone.
_SIGNED_BEFORE_FAILING = frozenset({ReasonCode.UNKNOWN_TRUST_KEY, ReasonCode.DECRYPTION_FAILED})

AcceptedEvent = RecordAccepted | RecordRetracted | ConsentWithdrawn | DisposalRequested


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was not accepted: a reason code, where, and what was expected — no value."""

    reason: ReasonCode
    field_path: str | None
    detail: str


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 5x to build (one per message)
class Outcome:
    delivery: Delivery
    source_id: str | None  # None: the topic names no valid source
    event_id: str | None
    accepted: AcceptedEvent | None = None
    rejection: Rejection | None = None


class IngestPipeline:
    """Turns inbound envelopes into accepted events or rejections."""

    def __init__(
        self,
        *,
        keyring: Keyring,
        policy: Policy,
        registry: SchemaRegistry,
        vault: Vault,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keyring = keyring
        self.policy = policy
        self.registry = registry
        self._payloads = PayloadDecoder(registry)  # the registry's values, generated readers
        self.vault = vault
        self.clock = clock
        self.cache = OpenCache()
        # per topic and per message kind, what every message of it needs (looked up once)
        self._sources: dict[str, str] = {}
        self._validators: dict[MessageKind, Validator] = {}
        # per batch: the agreement each (source, kind) was admitted under at the batch's arrival
        self._admitted: dict[tuple[str, MessageKind], Agreement | None] = {}

    def process(self, rec: LogRecord) -> Outcome:
        """One message (see :meth:`process_batch`)."""
        return self.process_batch([rec])[0]

    def process_batch(
        self, records: Sequence[LogRecord], *, defer_keys: bool = False
    ) -> list[Outcome]:
        """Check every message, then seal the identifiers of all accepted records at once (the
        persons' keys are loaded or created in one vault transaction). With ``defer_keys`` the
        new persons' keys are only made, for the caller to write in its append transaction
        (:meth:`Vault.write_pending_in`, then :meth:`Vault.keep_pending`)."""
        received_ms = int(self.clock() * 1000)
        self._admitted.clear()  # an agreement registered since the last batch counts from now
        check = self._check
        checked: list[Outcome | _Checked] = [check(r, received_ms) for r in records]
        # a failure here is the vault's (the store's), not one message's: it stops the worker
        vault = self.vault
        prepare = vault.prepare_deferred if defer_keys else vault.prepare
        key_id = vault.person_key_id
        prepare(
            key_id(c.source_id, c.datum["case_id"], v["victim_id"])
            for c in checked
            if type(c) is _Checked and c.kind is MessageKind.RECORD_UPSERT
            for v in c.datum["victims"]
            if v.get("identifiers") is not None
        )
        now = int(self.clock() * 1000)  # the batch's acceptance time
        finish = self._finish_safely
        return [c if type(c) is Outcome else finish(c, now) for c in checked]  # type: ignore[arg-type]

    def _check(self, rec: LogRecord, received_ms: int) -> Outcome | _Checked:
        delivery = Delivery(rec.topic, rec.partition, rec.offset)
        source_id = self._sources.get(rec.topic)
        if source_id is None:
            try:
                source_id = self._sources[rec.topic] = topics.source_of_inbound(rec.topic)
            except ValueError:
                return Outcome(
                    delivery,
                    None,
                    None,
                    rejection=Rejection(
                        ReasonCode.INVALID_TOPIC, None, "the topic names no valid source id"
                    ),
                )
        if len(rec.value) > MAX_MESSAGE_BYTES:
            return Outcome(
                delivery,
                source_id,
                None,
                rejection=Rejection(
                    ReasonCode.TOO_LARGE, None, f"a message of at most {MAX_MESSAGE_BYTES} bytes"
                ),
            )
        try:
            return self._open(rec, delivery, source_id, received_ms)
        except Exception as exc:  # one message's failure never stops ingest: it is rejected
            log.warning(
                "ingest.step_failed error=%s topic=%s partition=%d offset=%d",
                type(exc).__name__,
                delivery.topic,
                delivery.partition,
                delivery.offset,
            )
            return Outcome(
                delivery,
                source_id,
                None,
                rejection=Rejection(
                    ReasonCode.PROCESSING_FAILED,
                    None,
                    f"could not be processed ({type(exc).__name__})",
                ),
            )

    def _open(
        self, rec: LogRecord, delivery: Delivery, source_id: str, received_ms: int
    ) -> Outcome | _Checked:
        try:
            opened = open_event(
                rec.value,
                keyring=self.keyring,
                ctx=delivery,
                expected_source=source_id,
                cache=self.cache,
            )
        except ContractError as err:
            # a signed receipt names the event id only if the batch signature verified: before
            # that, the header could have been written by anyone (about anyone's event)
            event_id = err.event_id if err.code in _SIGNED_BEFORE_FAILING else None
            return _refused(delivery, source_id, event_id, err)
        try:
            return self._decode(opened, delivery, received_ms)
        except ContractError as err:
            return _refused(delivery, source_id, err.event_id, err)

    def _decode(self, opened: OpenedEvent, delivery: Delivery, received_ms: int) -> _Checked:
        h = opened.header
        event_id = opened.event_id or str(h.event_id)
        try:
            # the agreement in force when the TRUST received the message, never the sender's
            # clock; a message that only reduces use (retraction, consent withdrawn, disposal)
            # needs none: it is honoured even after an agreement lapsed
            kind = _KINDS.get(h.kind) or MessageKind(h.kind)  # ValueError if none
            admitted = self._admitted.get((h.source_id, kind), _UNASKED)
            agreement = (
                self._admit(h.source_id, kind, received_ms) if admitted is _UNASKED else admitted
            )
            # decode, then validate: in one pass for a payload of the kind's current schema
            # without a problem, any other as two (the same datum, problems and errors). The
            # first message of a kind is decoded before its validator is made, as it always was
            payload, validator = opened.payload, self._validators.get(kind)
            if validator is None:
                datum = self._payloads.decode_payload(h.kind, h.schema_fingerprint, payload)
                self._validator(kind).check(datum)
            else:
                datum = self._payloads.decode_checked(
                    h.kind, h.schema_fingerprint, payload, validator
                )
            if kind is MessageKind.RECORD_UPSERT:
                if datum["reporting_entity"]["source_id"] != h.source_id:
                    raise SourceMismatch(
                        "$.reporting_entity.source_id differs from the envelope's source"
                    )
                assert agreement is not None  # an upsert is admitted only under an agreement
                datum = self.policy.fields_kept(agreement).prune(datum)
        except ContractError as err:
            err.event_id = event_id
            raise
        version = None if agreement is None else agreement.version
        return _Checked(delivery, h.source_id, event_id, kind, h.produced_at_ms, datum, version)

    def _admit(self, source_id: str, kind: MessageKind, received_ms: int) -> Agreement | None:
        """:meth:`Policy.admit`, asked once per source and kind in a batch: every message of a
        batch arrived at the same ``received_ms``. A refusal is not kept (each message raises
        its own ``NoAgreement``)."""
        key = (source_id, kind)
        if key in self._admitted:
            return self._admitted[key]
        found = self._admitted[key] = self.policy.admit(source_id, kind, received_ms)
        return found

    def _validator(self, kind: MessageKind) -> Validator:
        """The trust's validator (decoded mode) of the payload schema of ``kind``."""
        found = self._validators.get(kind)
        if found is None:
            found = validator_for(self.registry.for_kind(kind), decoded=True)
            self._validators[kind] = found
        return found

    def _finish_safely(self, c: _Checked, now: int) -> Outcome:
        # only what this message's data can cause becomes its rejection; a failure of the vault
        # (its database, a wrong key-encryption key) propagates and stops the worker
        try:
            if c.kind is MessageKind.RECORD_UPSERT:  # most messages: no dispatch
                event = self._upsert(c, now)
            else:
                event = _ACCEPT[c.kind](self, c, now)
            return Outcome(c.delivery, c.source_id, c.event_id, event)
        except (KeyShredded, KeyError, TypeError, ValueError) as exc:
            log.warning(
                "ingest.seal_failed error=%s topic=%s partition=%d offset=%d",
                type(exc).__name__,
                c.delivery.topic,
                c.delivery.partition,
                c.delivery.offset,
            )
            return Outcome(
                c.delivery,
                c.source_id,
                c.event_id,
                rejection=Rejection(
                    ReasonCode.PROCESSING_FAILED,
                    None,
                    f"could not be processed ({type(exc).__name__})",
                ),
            )

    def _upsert(self, c: _Checked, now: int) -> AcceptedEvent:
        d = c.datum
        # the datum is this message's own (decoded for it): its identifiers are cleared in place
        record, sealed = self.vault.seal_identifiers(c.source_id, d["case_id"], d, in_place=True)
        return RecordAccepted(
            c.event_id,
            c.source_id,
            d["case_id"],
            record,
            sealed,
            c.produced_at_ms,
            now,
            agreement_version=c.agreement_version,
        )

    def _retraction(self, c: _Checked, now: int) -> AcceptedEvent:
        d = c.datum
        return RecordRetracted(c.event_id, c.source_id, d["case_id"], d["reason"], now)

    def _consent(self, c: _Checked, now: int) -> AcceptedEvent:
        d = c.datum
        return ConsentWithdrawn(
            c.event_id, c.source_id, d["case_id"], d["victim_id"], list(d["withdrawn_scopes"]), now
        )

    def _disposal(self, c: _Checked, now: int) -> AcceptedEvent:
        d = c.datum
        return DisposalRequested(
            c.event_id, c.source_id, d["case_id"], d["victim_id"], d["basis"], now
        )


def _refused(
    delivery: Delivery, source_id: str, event_id: str | None, err: ContractError
) -> Outcome:
    return Outcome(
        delivery, source_id, event_id, rejection=Rejection(err.code, err.field_path, err.message)
    )


_UNASKED: Any = object()
"""Not in a batch's admitted agreements yet (None there is an answer: a kind that needs none)."""

_KINDS: dict[str, MessageKind] = {k.value: k for k in MessageKind}
"""The message kinds by the header's text (an unknown one is left to ``MessageKind``)."""

_ACCEPT: dict[MessageKind, Callable[[IngestPipeline, _Checked, int], AcceptedEvent]] = {
    MessageKind.RECORD_UPSERT: IngestPipeline._upsert,
    MessageKind.RECORD_RETRACTION: IngestPipeline._retraction,
    MessageKind.CONSENT_WITHDRAWAL: IngestPipeline._consent,
    MessageKind.DISPOSAL_REQUEST: IngestPipeline._disposal,
}
"""The event each kind of message becomes once accepted: one handler per kind, no catch-all."""


@dataclass(slots=True)  # not frozen: see Outcome
class _Checked:
    """A message that passed every check, before its identifiers are sealed."""

    delivery: Delivery
    source_id: str
    event_id: str
    kind: MessageKind
    produced_at_ms: int
    datum: dict[str, Any]
    agreement_version: int | None  # the version admitted under (None: a kind that needs none)
