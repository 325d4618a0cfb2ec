"""The ingest pipeline: one inbound message in, one accepted event or one rejection out.

verify signature → check source and agreement → decrypt → decode → validate → minimise under the
agreement → (the worker dedupes by event id) → seal each person's identifiers under that person's
own key. Pure with respect to the log and the store: the worker does the I/O, so the same steps
run on every transport backend.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.codec import SchemaRegistry
from schemas.envelope import OpenCache, OpenedEvent, open_event, peek_header
from schemas.errors import ContractError, Delivery, ReasonCode, SourceMismatch
from schemas.keys import Keyring
from schemas.validate import validator_for
from transport import LogRecord, topics
from trust.stewardship.agreement import Agreements
from trust.store.events import (
    ConsentWithdrawn,
    DisposalRequested,
    RecordAccepted,
    RecordRetracted,
)
from trust.store.vault import Vault

AcceptedEvent = RecordAccepted | RecordRetracted | ConsentWithdrawn | DisposalRequested


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was not accepted: a reason code, where, and what was expected — no value."""

    reason: ReasonCode
    field_path: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery: Delivery
    source_id: str
    event_id: str | None
    accepted: AcceptedEvent | None = None
    rejection: Rejection | None = None


class IngestPipeline:
    """Turns inbound envelopes into accepted events or rejections."""

    def __init__(
        self,
        *,
        keyring: Keyring,
        agreements: Agreements,
        registry: SchemaRegistry,
        vault: Vault,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keyring = keyring
        self.agreements = agreements
        self.registry = registry
        self.vault = vault
        self.clock = clock
        self.cache = OpenCache()

    def process(self, rec: LogRecord) -> Outcome:
        delivery = Delivery(rec.topic, rec.partition, rec.offset)
        source_id = topics.source_of_inbound(rec.topic)
        try:
            opened = open_event(
                rec.value, keyring=self.keyring, ctx=delivery, expected_source=source_id, cache=self.cache
            )
            event = self._accept(opened)
        except ContractError as err:
            event_id = err.event_id
            if event_id is None:
                try:
                    event_id = str(peek_header(rec.value).event_id)
                except ContractError:
                    event_id = None
            return Outcome(
                delivery, source_id, event_id, rejection=Rejection(err.code, err.field_path, err.message)
            )
        return Outcome(delivery, source_id, event.event_id, accepted=event)

    def _accept(self, opened: OpenedEvent) -> AcceptedEvent:
        h = opened.header
        event_id = str(h.event_id)
        try:
            produced = dt.datetime.fromtimestamp(h.produced_at_ms / 1000, dt.UTC).date()
            agreement = self.agreements.in_force(h.source_id, produced)
            datum = self.registry.decode_payload(h.kind, h.schema_fingerprint, opened.payload)
            validator_for(self.registry.for_kind(h.kind)).check(datum)
        except ContractError as err:
            err.event_id = event_id
            raise
        now = int(self.clock() * 1000)
        if h.kind == "RecordUpsert":
            if datum["reporting_entity"]["source_id"] != h.source_id:
                raise SourceMismatch(
                    "$.reporting_entity.source_id differs from the envelope's source", event_id=event_id
                )
            datum = self.agreements.pruner(agreement).prune(datum)
            return self._seal_record(event_id, h.source_id, h.produced_at_ms, now, datum)
        if h.kind == "RecordRetraction":
            return RecordRetracted(event_id, h.source_id, datum["case_id"], datum["reason"], now)
        if h.kind == "ConsentWithdrawal":
            return ConsentWithdrawn(
                event_id, h.source_id, datum["case_id"], datum["victim_id"], list(datum["withdrawn_scopes"]), now
            )
        return DisposalRequested(event_id, h.source_id, datum["case_id"], datum["victim_id"], datum["basis"], now)

    def _seal_record(
        self, event_id: str, source_id: str, produced_ms: int, now: int, datum: dict[str, Any]
    ) -> RecordAccepted:
        record, sealed = self.vault.seal_identifiers(source_id, datum["case_id"], datum)
        return RecordAccepted(
            event_id=event_id,
            source_id=source_id,
            case_id=datum["case_id"],
            record=record,
            sealed_identifiers=sealed,
            produced_at_ms=produced_ms,
            accepted_at_ms=now,
        )
