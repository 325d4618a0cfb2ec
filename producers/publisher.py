"""The producer SDK: records → validate → minimise → seal → outbox → append → ack.

```python
publisher = Publisher(log=open_log(url), source_key=key, trust_key=trust_pub, outbox=Outbox(path))
report = publisher.publish(outgoing_messages)
```
Nothing is sent until it validates; every rejected row is reported with its row number, field path
and reason (never the value). Sealed envelopes sit in the outbox until the log acknowledges them,
so a crash or a broker outage loses nothing: :meth:`Publisher.resend_pending` (run first by
:meth:`Publisher.publish`) sends what is left, with the same event ids.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from producers.outbox import Outbox, OutboxEntry
from schemas.codec import SchemaRegistry, default_registry
from schemas.envelope import EventHeader, new_event_id, seal_batch
from schemas.errors import Problem
from schemas.fields import Pruner
from schemas.keys import SigningKey, TrustPublicKey
from schemas.validate import validator_for
from transport import EventLog, topics

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a source wants to send: a case record upsert, retraction, consent withdrawal or
    disposal request. ``record_key`` identifies what it is about (stable across runs); ``rows`` are
    the export rows it came from (for error reports)."""

    kind: str
    record_key: str
    datum: dict[str, Any]
    rows: tuple[int, ...] = ()
    partition_key: str = ""


@dataclass
class PublishReport:
    messages: int = 0
    published: int = 0
    unchanged: int = 0
    resent: int = 0
    rows_published: int = 0
    rejected_rows: set[int] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def merge_problems(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            self.problems.append(p)
            if p.row is not None:
                self.rejected_rows.add(p.row)


def _ids() -> Iterator[uuid.UUID]:
    while True:
        yield new_event_id()


class Publisher:
    """Publishes one source's messages to ``tip.inbound.<source>``."""

    def __init__(
        self,
        *,
        log: EventLog,
        source_key: SigningKey,
        trust_key: TrustPublicKey,
        outbox: Outbox,
        registry: SchemaRegistry | None = None,
        shared_fields: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> None:
        self.log = log
        self.source_key = source_key
        self.source_id = source_key.owner
        self.trust_key = trust_key
        self.outbox = outbox
        self.registry = registry or default_registry()
        self.batch_size = batch_size
        self.topic = topics.inbound(self.source_id)
        case = self.registry.current("case_record")
        self._pruner = Pruner(case, shared_fields) if shared_fields is not None else None
        self.log.create_topic(self.topic, partitions=4)

    def resend_pending(self) -> int:
        """Send every sealed envelope the log has not acknowledged yet; returns how many."""
        total = 0
        while True:
            entries = self.outbox.pending(self.batch_size * 4)
            if not entries:
                return total
            self._send(entries)
            total += len(entries)

    def publish(
        self, messages: Iterable[Outgoing], on_progress: Progress | None = None
    ) -> PublishReport:
        report = PublishReport()
        report.resent = self.resend_pending()
        batch: list[Outgoing] = []
        for m in messages:
            report.messages += 1
            batch.append(m)
            if len(batch) >= self.batch_size:
                self._publish_batch(batch, report)
                if on_progress:
                    on_progress(len(batch))
                batch = []
        if batch:
            self._publish_batch(batch, report)
            if on_progress:
                on_progress(len(batch))
        return report

    def _publish_batch(self, batch: Sequence[Outgoing], report: PublishReport) -> None:
        valid: list[tuple[Outgoing, bytes, bytes]] = []
        for m in batch:
            schema = self.registry.for_kind(m.kind)
            problems = validator_for(schema).problems(m.datum)
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
            datum = (
                self._pruner.prune(m.datum)
                if (self._pruner and m.kind == "RecordUpsert")
                else m.datum
            )
            payload = schema.encode(datum)
            digest = hashlib.sha256(m.kind.encode() + b"\x00" + payload).digest()
            valid.append((m, payload, digest))
        if not valid:
            return
        ids = self.outbox.event_ids([(f"{m.kind}:{m.record_key}", d) for m, _, d in valid], _ids())
        sealed_before = self.outbox.already_sent(eid for eid, known in ids if known)
        now = int(time.time() * 1000)
        to_seal: list[tuple[EventHeader, bytes]] = []
        keys: list[bytes] = []
        for (m, payload, _), (eid, _) in zip(valid, ids, strict=True):
            if eid in sealed_before:
                report.unchanged += 1
                continue
            schema = self.registry.for_kind(m.kind)
            header = EventHeader(
                self.source_id,
                eid,
                m.kind,
                schema.fingerprint,
                now,
                self.trust_key.key_id,
                self.source_key.key_id,
            )
            to_seal.append((header, payload))
            keys.append((m.partition_key or m.record_key).encode())
            report.rows_published += len(m.rows)
        if to_seal:
            envelopes = seal_batch(to_seal, trust_key=self.trust_key, source_key=self.source_key)
            entries = [
                OutboxEntry(h.event_id, self.topic, k, env)
                for (h, _), k, env in zip(to_seal, keys, envelopes, strict=True)
            ]
            self.outbox.put(entries)
            self._send(entries)
            report.published += len(entries)

    def _send(self, entries: Sequence[OutboxEntry]) -> None:
        for e in entries:
            self.log.append(
                e.topic, e.envelope, key=e.key, headers=(("event_id", e.event_id.bytes),)
            )
        self.log.flush()
        self.outbox.mark_sent([e.event_id for e in entries])
