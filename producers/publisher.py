"""The producer SDK: records → validate → minimise → seal → outbox → append → ack.

```python
publisher = Publisher(
    log=open_log(url), source_key=key, trust_key=trust_pub, outbox=Outbox(path),
    keyer=load_or_create_keyer(secret_path), destination=destination_of(url),
)
report = publisher.publish(outgoing_messages)
```
Nothing is sent until it validates; every rejected row is reported with its row number, field path
and reason (never the value). Sealed envelopes sit in the outbox until the log acknowledges them,
so a crash or a broker outage loses nothing: :meth:`Publisher.resend_pending` (run first by
:meth:`Publisher.publish`) sends what is left, with the same event ids.

What the log sees in clear: the topic, the message key — a keyed hash of the case reference
(:mod:`producers.message_key`), stable per case so a case keeps its partition — and one header,
``event_id`` (a random UUIDv7). Everything else is inside the sealed envelope.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from producers.message_key import MessageKeyer
from producers.outbox import Outbox, OutboxEntry
from schemas.codec import SchemaRegistry, WireSchema, default_registry
from schemas.envelope import new_event_id, seal_events
from schemas.errors import Problem, ReasonCode
from schemas.fields import Pruner
from schemas.keys import SigningKey, TrustPublicKey
from schemas.rules import MAX_PAYLOAD_BYTES
from schemas.validate import Validator, validator_for
from transport import EventLog, topics

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a source wants to send: a case record upsert, retraction, consent withdrawal or
    disposal request. ``record_key`` identifies what it is about (stable across runs; kept only in
    the local outbox); ``rows`` are the export rows it came from (for error reports);
    ``partition_key`` (default: ``record_key``) is what the message key is a keyed hash of — the
    case reference, so every message about a case lands in one partition, in order."""

    kind: str
    record_key: str
    datum: dict[str, Any]
    rows: tuple[int, ...] = ()
    partition_key: str = ""


@dataclass
class PublishReport:
    """What one :meth:`Publisher.publish` did.

    ``published`` envelopes sealed and sent in this run (of which ``republished`` had been sent to
    this destination before: ``resend=True``); ``unchanged`` skipped as already sent there;
    ``resent`` pending envelopes of earlier runs sent from the outbox.
    """

    messages: int = 0
    published: int = 0
    unchanged: int = 0
    resent: int = 0
    republished: int = 0
    rows_published: int = 0
    rejected_rows: set[int] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def merge_problems(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            self.problems.append(p)
            if p.row is not None:
                self.rejected_rows.add(p.row)


#: per message kind: its current schema, validator, digest prefix and one-pass check and encode
_KindTools = tuple[WireSchema, Validator, bytes, Callable[[Any], tuple[bytes, bytes] | None] | None]


def _too_large() -> Problem:
    """The trust refuses larger messages: say so here, before anything is sealed."""
    return Problem(
        "$", ReasonCode.TOO_LARGE, f"a record of at most {MAX_PAYLOAD_BYTES} bytes encoded"
    )


class Publisher:
    """Publishes one source's messages to ``tip.inbound.<source>`` of one log.

    ``keyer`` makes the message keys (never the clear reference); ``destination`` names the log
    in the outbox (see :func:`producers.workflow.destination_of`), so what was sent to one log is
    not taken as sent to another.
    """

    def __init__(
        self,
        *,
        log: EventLog,
        source_key: SigningKey,
        trust_key: TrustPublicKey,
        outbox: Outbox,
        keyer: MessageKeyer,
        destination: str,
        registry: SchemaRegistry | None = None,
        shared_fields: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> None:
        self.log = log
        self.source_key = source_key
        self.source_id = source_key.owner
        self.trust_key = trust_key
        self.outbox = outbox
        self.keyer = keyer
        if not destination or destination == "*":
            raise ValueError("a destination names one log (non-empty, not '*')")
        self.destination = destination
        self.registry = registry or default_registry()
        self.batch_size = batch_size
        self.topic = topics.inbound(self.source_id)
        case = self.registry.current("case_record")
        self._pruner = Pruner(case, shared_fields) if shared_fields is not None else None
        self._kinds: dict[str, _KindTools] = {}
        # what the log acknowledged (flushed) and the outbox has not marked sent yet: marked in
        # the next batch's outbox transaction, or at the end of the publish (one transaction
        # per batch instead of two); never left unmarked past ``publish``
        self._acknowledged: Sequence[uuid.UUID] = ()
        self.log.create_topic(self.topic, partitions=4)

    def resend_pending(self) -> int:
        """Send every sealed envelope the log has not acknowledged yet; returns how many."""
        total = 0
        while True:
            entries = self.outbox.pending(self.destination, self.batch_size * 4)
            if not entries:
                return total
            self._send(entries)
            total += len(entries)

    def publish(
        self,
        messages: Iterable[Outgoing],
        on_progress: Progress | None = None,
        *,
        resend: bool = False,
    ) -> PublishReport:
        """Validate, minimise, seal and send ``messages``; pending envelopes are sent first.

        A message whose content was sent to this destination before is skipped (``unchanged``),
        unless ``resend``: then it is sealed again (a new batch, fresh encryption, the same event
        id) and sent again — for what the trust refused for a reason the source has since fixed.
        """
        report = PublishReport()
        report.resent = self.resend_pending()
        batch: list[Outgoing] = []
        try:
            for m in messages:
                report.messages += 1
                batch.append(m)
                if len(batch) >= self.batch_size:
                    self._publish_batch(batch, report, resend)
                    if on_progress:
                        on_progress(len(batch))
                    batch = []
            if batch:
                self._publish_batch(batch, report, resend)
                if on_progress:
                    on_progress(len(batch))
        finally:  # what the log acknowledged is marked sent before publish returns, or raises
            if self._acknowledged:
                self.outbox.mark_sent(self.destination, self._acknowledged)
                self._acknowledged = ()
        return report

    def _kind(self, kind: str) -> _KindTools:
        """The current schema of ``kind``, its validator, the digest's prefix and the one-pass
        check and encode of its valid records (looked up once; see
        :meth:`schemas.validate.Validator.content_encoder`). No one-pass encode where records are
        minimised first: what is written is then not what was checked."""
        found = self._kinds.get(kind)
        if found is None:
            schema = self.registry.for_kind(kind)
            validator = validator_for(schema)
            pruned = self._pruner is not None and kind == "RecordUpsert"
            found = self._kinds[kind] = (
                schema,
                validator,
                kind.encode() + b"\x00",
                None if pruned else validator.content_encoder(self.registry),
            )
        return found

    def _validate_and_encode(
        self, m: Outgoing, schema: WireSchema, validator: Validator
    ) -> tuple[bytes, bytes, list[Problem]]:
        """The two passes, for a record the one pass does not take: every problem of it, else
        its payload and content bytes (minimised first where the publisher minimises)."""
        problems = validator.problems(m.datum)
        if problems:
            return b"", b"", problems
        datum = (
            self._pruner.prune(m.datum) if (self._pruner and m.kind == "RecordUpsert") else m.datum
        )
        payload, content = self.registry.encode_with_content(schema.name, datum)
        return payload, content, [_too_large()] if len(payload) > MAX_PAYLOAD_BYTES else []

    def _publish_batch(
        self, batch: Sequence[Outgoing], report: PublishReport, resend: bool
    ) -> None:
        valid: list[tuple[Outgoing, bytes, bytes, bytes]] = []
        kinds = self._kinds
        for m in batch:
            schema, validator, prefix, encode_valid = kinds.get(m.kind) or self._kind(m.kind)
            encoded = encode_valid(m.datum) if encode_valid is not None else None
            if encoded is not None:  # valid, and written in the same pass
                payload, content = encoded
                problems = [_too_large()] if len(payload) > MAX_PAYLOAD_BYTES else None
            else:
                payload, content, problems = self._validate_and_encode(m, schema, validator)
            if problems:
                rows = m.rows or (None,)
                report.merge_problems(
                    Problem(p.path, p.code, p.expected, row=r) for p in problems for r in rows[:1]
                )
                for r in m.rows[1:]:
                    report.merge_problems(
                        [
                            Problem(
                                "$",
                                problems[0].code,
                                "withheld: another row of this case is invalid",
                                row=r,
                            )
                        ]
                    )
                continue
            # known by its content across schema versions (``content``: see
            # ``SchemaRegistry.content_bytes``): an optional field added since the record was
            # first sent, left at its default, does not make it a new event
            digest = hashlib.sha256(prefix + content).digest()
            valid.append((m, payload, digest, schema.fingerprint))
        if not valid:
            return
        event_ids: list[uuid.UUID] = []
        keys: list[bytes] = []
        envelopes: list[bytes] = []
        kept: Sequence[uuid.UUID] = ()
        acknowledged = self._acknowledged
        with self.outbox.transaction():  # ids, what was sent before and the envelopes: at once
            if acknowledged:  # the batch before's, acknowledged by the log since
                self.outbox.mark_sent(self.destination, acknowledged)
            # each id's bytes computed once, for the outbox, its envelope row and the log
            ids, raws, was_known = self.outbox.draw_event_ids(
                [(f"{m.kind}:{m.record_key}", d) for m, _, d, _ in valid], new_event_id
            )
            known = [eid for eid, k in zip(ids, was_known, strict=True) if k]
            sealed_before = self.outbox.already_sent(self.destination, known) if known else set()
            key_of = self.keyer.key
            to_seal: list[tuple[uuid.UUID, str, bytes, bytes]] = []
            rows_published = 0
            # with nothing sealed before, every one is sealed now: the bytes as they were drawn
            id_bytes: list[bytes] = [] if sealed_before else raws
            for (m, payload, _, fingerprint), eid, raw in zip(valid, ids, raws, strict=True):
                if sealed_before:
                    if eid in sealed_before:
                        if not resend:
                            report.unchanged += 1
                            continue
                        report.republished += 1
                    id_bytes.append(raw)
                to_seal.append((eid, m.kind, fingerprint, payload))
                event_ids.append(eid)
                keys.append(key_of(m.partition_key or m.record_key))
                rows_published += len(m.rows)
            report.rows_published += rows_published
            if to_seal:  # headers: this source and its key, the trust's key, produced now
                envelopes = seal_events(
                    to_seal,
                    produced_at_ms=int(time.time() * 1000),
                    trust_key=self.trust_key,
                    source_key=self.source_key,
                )
                kept = self.outbox.put_sealed(
                    self.destination, self.topic, event_ids, keys, envelopes, id_bytes
                )
        self._acknowledged = ()  # marked: committed with this batch
        if kept:  # kept durably: now they go to the log
            append, topic = self.log.append, self.topic
            for raw, key, envelope in zip(id_bytes, keys, envelopes, strict=True):
                append(topic, envelope, key=key, headers=(("event_id", raw),))
            self.log.flush()
            self._acknowledged = kept  # marked sent in the next transaction
            report.published += len(envelopes)

    def _send(self, entries: Sequence[OutboxEntry]) -> None:
        """Append pending ``entries`` to the log, flush, and mark them sent in the outbox."""
        for e in entries:
            key = e.key
            if e.clear_key and key is not None:  # kept by an older publisher: re-key it
                key = self.keyer.key(key.decode("utf-8"))
            self.log.append(e.topic, e.envelope, key=key, headers=(("event_id", e.event_id.bytes),))
        self.log.flush()
        self.outbox.mark_sent(self.destination, [e.event_id for e in entries])
