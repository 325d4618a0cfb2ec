"""Subscribe to a release stream, verify the trust's signature, write what verifies.

A :class:`Subscriber` reads its subscription's topic ``tip.release.<consumer>.<stream>`` as the
consumer group ``<consumer>``, checks every
message with :func:`schemas.release.verify_release` against the trust release keys it was given,
writes verified releases through its sink, and commits each message only after its effect is
durable. Refused messages (unsigned, altered, unknown key, wrong stream) are reported by offset
with the reason, never written, and committed past so they are reported once.

A verified release for a sequence the consumer already holds is either a re-send of the same
signed bytes — reported under ``duplicates``, committed, nothing rewritten — or a *conflict*: a
different release under a held sequence (see :mod:`consumers.writers`). A conflict is a sign of a
broken or compromised trust, so the subscriber **stops** there: it reports the
:class:`~consumers.errors.ReleaseConflict`, keeps the held files, does not commit the message and
reads nothing after it. Every later run stops at the same message until an operator decides
(asks the trust; to accept the new release, moves the held files aside).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from consumers.errors import ReleaseConflict
from consumers.writers import ReleaseSink
from schemas.keys import VerifyKey
from schemas.release import Release, ReleaseRejected, verify_release
from transport import EventLog, LogConsumer, LogRecord, topics


@dataclass
class SubscribeReport:
    """What one :meth:`Subscriber.run_once` did: messages read, files written, refusals.

    ``releases`` are the verified releases newly written, ``duplicates`` the sequences that
    arrived again with the same signed bytes (accepted, nothing rewritten), ``refused`` the
    (offset, reason) of messages that failed verification, and ``conflict`` the release that
    stopped the run (not committed; ``None`` when the run was not stopped).
    """

    received: int = 0
    written: list[Path] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    conflict: ReleaseConflict | None = None


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
        self.topic = topics.release(consumer_id, stream)
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
        """Read until caught up; verify, write, commit each. ``timeout`` bounds the wait for
        records that do not come (a log that is slow to say where its end is), not the work:
        a backlog of any length is read in one run.

        Stops early at a release that conflicts with a held one (``report.conflict``), without
        committing it; the next run reads it again.

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
            batch = consumer.poll(max_records, min(remaining, 0.25))
            for i, record in enumerate(batch):
                report.received += 1
                try:
                    release = self._verify(record)
                except ReleaseRejected as exc:
                    report.refused.append((record.offset, exc.message))
                else:
                    try:
                        written = self._writer.write(release)
                    except ReleaseConflict as exc:
                        _rewind(consumer, batch[i:])  # not committed: read again next run
                        report.conflict = exc
                        return report
                    except OSError:
                        _rewind(consumer, batch[i:])
                        raise
                    report.written.extend(written.paths)
                    if written.duplicate:
                        report.duplicates.append(release.sequence)
                    else:
                        report.releases.append(release)
                consumer.commit({(record.topic, record.partition): record.offset + 1})
            if batch:  # progress: wait for the rest as long again
                deadline = time.monotonic() + timeout
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


def _rewind(consumer: LogConsumer, unprocessed: list[LogRecord]) -> None:
    """Seek each partition back to its first unprocessed record of a poll."""
    first: dict[tuple[str, int], int] = {}
    for r in unprocessed:
        key = (r.topic, r.partition)
        first[key] = min(first.get(key, r.offset), r.offset)
    for (topic, partition), offset in first.items():
        consumer.seek(topic, partition, offset)
