"""Subscribe to a release stream, verify the trust's signature, write what verifies.

A :class:`Subscriber` reads ``tip.release.<stream>`` as its own consumer group, checks every
message with :func:`schemas.release.verify_release` against the trust release keys it was given,
writes verified releases through its sink, and commits each message only after its effect is
durable. Refused messages (unsigned, altered, unknown key, wrong stream) are reported by offset
with the reason, never written, and committed past so they are reported once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from consumers.writers import ReleaseSink
from schemas.keys import VerifyKey
from schemas.release import Release, ReleaseRejected, verify_release
from transport import EventLog, LogConsumer, LogRecord, topics


@dataclass
class SubscribeReport:
    """What one :meth:`Subscriber.run_once` did: messages read, files written, refusals."""

    received: int = 0
    written: list[Path] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)


class Subscriber:
    """A consumer of one release stream (see the module docstring)."""

    def __init__(
        self,
        log: EventLog,
        stream: str,
        consumer_id: str,
        trust_keys: dict[str, VerifyKey],
        writer: ReleaseSink,
    ) -> None:
        self.log = log
        self.stream = stream
        self.topic = topics.release(stream)
        self.consumer_id = consumer_id
        self._keys = dict(trust_keys)
        self._writer = writer
        self._consumer: LogConsumer | None = None

    def _verify(self, record: LogRecord) -> Release:
        release = verify_release(record.value, self._keys)
        if release.stream != self.stream:
            raise ReleaseRejected(
                f"release names stream {release.stream!r} but arrived on {self.topic}"
            )
        return release

    def run_once(self, timeout: float = 5.0, max_records: int = 100) -> SubscribeReport:
        """Read until caught up (or ``timeout`` seconds pass); verify, write, commit each.

        Raises:
            TransportError: the log failed; nothing after the last commit is lost.
            OSError: a file could not be written; that message is read again next time.
        """
        if self._consumer is None:
            self._consumer = self.log.consumer(self.consumer_id, [self.topic])
        consumer = self._consumer
        report = SubscribeReport()
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            for record in consumer.poll(max_records, min(remaining, 0.25)):
                report.received += 1
                try:
                    release = self._verify(record)
                except ReleaseRejected as exc:
                    report.refused.append((record.offset, exc.message))
                else:
                    report.written.extend(self._writer.write(release))
                    report.releases.append(release)
                consumer.commit({(record.topic, record.partition): record.offset + 1})
            if consumer.at_end() or time.monotonic() >= deadline:
                return report

    def close(self) -> None:
        """Leave the consumer group (committed positions stay)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
