"""The event-log port: how bytes move between agencies, the trust and its subscribers.

An :class:`EventLog` is an append-only, partitioned log of opaque byte messages, read back
by named consumer groups with explicitly committed positions. Two backends implement it
(``transport.sqlite`` embedded, ``transport.kafka`` on a Kafka-protocol broker); callers
obtain one with :func:`transport.open_log` and never name a backend. Nothing here decodes a
payload: values, keys and header values are bytes in and bytes out.

Delivery is at-least-once: a record polled but not committed is delivered again to the next
consumer of the group. Consumers of this port make their effects idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

Headers = tuple[tuple[str, bytes], ...]
"""Message headers: ordered (name, bytes) pairs; names may repeat."""

Position = tuple[str, int]
"""A (topic, partition) pair."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One message read back from the log.

    Attributes:
        topic: The topic it was appended to.
        partition: The partition it landed in (0-based).
        offset: Its offset in that partition; dense from 0 per partition.
        key: The key given to ``append`` (``None`` when unkeyed).
        value: The value, byte for byte as appended.
        headers: The headers, in append order.
        timestamp_ms: When the log stored it, in milliseconds since the Unix epoch.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    def __repr__(self) -> str:
        # Never show the value or header bytes: they may be sealed but are still content.
        return (
            f"LogRecord(topic={self.topic!r}, partition={self.partition}, "
            f"offset={self.offset}, value_len={len(self.value)})"
        )


@runtime_checkable
class LogConsumer(Protocol):
    """A member of a consumer group reading one or more topics.

    Positions are explicit: nothing is committed unless :meth:`commit` is called, so a
    caller commits only after its effect is durable. A consumer is used from one thread.
    """

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[LogRecord]:
        """Return up to ``max_records`` next records, waiting at most ``timeout`` seconds.

        Reading starts at the group's committed position of each partition, or at the
        earliest offset when the group has none (or where :meth:`seek` moved it). Records
        of one partition come in offset order; partitions may interleave. Returns ``[]``
        when nothing new arrived within ``timeout``.

        Raises:
            TransportError: the backend reported an error other than reaching the end.
        """
        ...

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Synchronously commit, per (topic, partition), the NEXT offset the group reads.

        Commit ``record.offset + 1`` after the effect of ``record`` is durable. Returns
        only when the commit is stored.

        Raises:
            TransportError: the commit was not stored.
        """
        ...

    def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed next offsets for the partitions this consumer reads.

        Partitions without a committed position are absent.
        """
        ...

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Make the next poll of ``(topic, partition)`` start at ``offset``.

        For replay, or to resume from a position the caller stored itself (e.g. in the
        same transaction as its effect). Valid right after the consumer is created. Does
        not commit.
        """
        ...

    def at_end(self) -> bool:
        """True when the last poll reached the end of every partition this consumer reads.

        "Caught up": after it is True, a poll returns only records appended since. It is
        derived from partition-EOF events seen while polling, never from a broker's
        high-watermark query. False before the first poll.
        """
        ...

    def close(self) -> None:
        """Leave the group and release resources; uncommitted reads are redelivered later."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """An append-only, partitioned log of byte messages (the port).

    Obtain one with :func:`transport.open_log`. Usable as a context manager, which closes it.
    An instance is used from one thread; several processes may open the same URL.

    Attributes:
        url: The URL the log was opened with.
    """

    url: str

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create ``topic`` with ``partitions`` partitions; a no-op if it exists.

        Returns once the topic is usable for append and consume.
        """
        ...

    def list_topics(self, prefix: str = "") -> list[str]:
        """Names of existing topics starting with ``prefix``, sorted."""
        ...

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (0 if it does not exist).

        A consumer that keeps its positions outside the log (the trust keeps them in its store)
        seeks every partition: to its stored position, or to 0 for a partition it never read.
        """
        ...

    def append(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue one message for ``topic``; durable only after :meth:`flush` returns.

        Records with the same key land in the same partition, in append order. A missing
        topic is created with the backend's default partition count. May buffer; a backend
        may write early when its buffer fills.

        Raises:
            DeliveryFailed: an earlier automatic write of the buffer failed.
            LogUnavailable: the log is closed.
        """
        ...

    def flush(self, timeout: float = 30.0) -> None:
        """Return only when every append so far is durable (acknowledged).

        Raises:
            DeliveryFailed: with ``failed`` = how many appends are not durable.
        """
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> LogConsumer:
        """A consumer in ``group`` reading every partition of ``topics`` it is assigned.

        Different groups are independent; each has its own committed positions.
        """
        ...

    def delete_before(self, topic: str, partition: int, offset: int) -> int:
        """Delete the partition's records below ``offset`` (Kafka's DeleteRecords): gone for
        every reader, and their offsets are never handed out again. Returns the partition's
        earliest offset afterwards (deleting below it again changes nothing).

        Raises:
            DeleteUnsupported: the backend or broker cannot delete records.
            LogUnavailable: the log is closed or unreachable.
        """
        ...

    def read_all(self, topic: str) -> list[LogRecord]:
        """Every record of every partition of ``topic`` from its earliest offset (0, unless
        records were deleted), without a group.

        For tests, audits and rebuilds; ordered by (partition, offset). Sees only flushed
        appends. An unknown topic reads as ``[]``.
        """
        ...

    def close(self) -> None:
        """Flush pending appends, then release resources. Idempotent.

        Raises:
            DeliveryFailed: some pending appends could not be made durable (resources are
                released all the same).
        """
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
