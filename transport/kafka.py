"""Kafka backend of the event-log port, on confluent-kafka (librdkafka).

Production runs on Apache Kafka; tests run on Tansu (``infra/broker.py``). The client defaults are
production-safe (librdkafka's own timings, which Apache Kafka accepts; see
:mod:`transport.kafka_config`). Other settings come as the URL's query,
``kafka://host:port?session.timeout.ms=45000&security.protocol=ssl``: each option goes to the
clients that use it, and every option is checked against librdkafka when the log is opened (an
unknown name, an invalid value or an option the transport fixes raises
:class:`~transport.errors.InvalidLogOptions` naming each, before anything connects). The test
broker's URL carries the timings Tansu needs (``infra.broker.TANSU_CLIENT_OVERRIDES``).

How the port maps onto Kafka:

* ``append`` = ``Producer.produce`` on an idempotent producer (``acks=all``); ``flush``
  waits for every delivery report and raises :class:`DeliveryFailed` with the count of
  failed ones. A missing topic is created through the AdminClient first (Tansu would
  auto-create it with 4 partitions; we create ``default_partitions``).
* ``consumer`` = a group member (``subscribe``) with auto-commit off; ``commit`` is a
  synchronous commit of explicit offsets.
* ``seek`` works at any time, including right after the consumer is created: a seek on a
  partition this member does not hold yet is kept pending and applied inside the
  ``on_assign`` callback (by assigning the partition at that offset); a seek on a held
  partition is a ``Consumer.seek``, retried on the next poll if librdkafka is not ready.
  We chose this over ``assign()`` without a group because it keeps rebalancing and commits
  identical with or without a seek, and it is what ran reliably on Tansu.
* ``at_end`` = every assigned partition has reported partition EOF
  (``enable.partition.eof``) since its last record, at an end offset no lower than this log's
  own acknowledged appends there (an EOF from a fetch that began before them is stale). High
  watermarks from ListOffsets are never used: Tansu returns wrong ones.
* ``read_all`` = a throw-away consumer that ``assign``s every partition from the beginning
  and reads until each partition reports EOF.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from transport.errors import (
    DeleteUnsupported,
    DeliveryFailed,
    InvalidLogOptions,
    LogUnavailable,
    TransportError,
)
from transport.kafka_config import (
    CONSUMER_ONLY,
    FIXED,
    PRODUCER_ONLY,
    ClientConfigs,
    Role,
    build_configs,
    client_value,
    fixed_problems,
    parse_url,
    scope_of,
)
from transport.log import LogRecord

__all__ = ["KafkaConsumer", "KafkaLog", "bootstrap_of", "check_url"]


def bootstrap_of(url: str) -> str:
    """``kafka://h1:p1,h2:p2[?options]`` -> ``h1:p1,h2:p2``; :class:`UnsupportedLogURL` if malformed."""
    return parse_url(url).bootstrap


# A logger of its own, outside the logging tree: librdkafka's notes about a throw-away
# validation client (e.g. "no bootstrap.servers") go nowhere instead of to stderr.
_QUIET = logging.Logger("transport.kafka.validation")
_QUIET.addHandler(logging.NullHandler())

# Names an operator is likely to mean, for "did you mean" hints on a typo.
_COMMON = (
    "client.id",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "socket.timeout.ms",
    "socket.keepalive.enable",
    "socket.connection.setup.timeout.ms",
    "metadata.max.age.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "retry.backoff.ms",
    "message.max.bytes",
    "receive.message.max.bytes",
    "log.connection.close",
    "log_level",
    "debug",
    "statistics.interval.ms",
    "topic.metadata.refresh.interval.ms",
)


@functools.lru_cache(maxsize=512)
def _probe(role: Role, conf: tuple[tuple[str, Any], ...]) -> str | None:
    """librdkafka's complaint about ``conf`` for a client of ``role``, or None if it takes it.

    Builds a client that never connects (no bootstrap servers) and drops it at once.
    """
    settings: dict[str, Any] = {**dict(conf), "logger": _QUIET}
    try:
        if role == "consumer":
            Consumer({**settings, "group.id": "tiptrust-validation"}).close()
        elif role == "producer":
            Producer(settings)
        else:
            AdminClient(settings)
    except KafkaException as exc:
        err = exc.args[0]
        return str(err.str()) if isinstance(err, KafkaError) else str(err)
    except (TypeError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _scrub(text: str, values: Sequence[Any]) -> str:
    """``text`` with every given value replaced by ``***`` (a value may be a password)."""
    for value in sorted({str(v) for v in values}, key=len, reverse=True):
        if value:
            text = text.replace(value, "***")
    return text


def _unknown_hint(name: str) -> str:
    known = sorted(CONSUMER_ONLY | PRODUCER_ONLY | set(_COMMON))
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def _option_problems(options: Mapping[str, str]) -> list[str]:
    """What librdkafka refuses in each option on its own: an unknown name or an invalid value.

    A complaint that comes only when the client starts (``Failed to create …``: e.g. SASL over
    SSL without a mechanism) depends on other options; the whole configuration is checked next.
    """
    problems: list[str] = []
    for name, value in options.items():
        if name in FIXED:
            continue  # reported by fixed_problems
        role: Role = "consumer" if scope_of(name) == "consumer" else "producer"
        complaint = _probe(role, ((name, client_value(name, value)),))
        if complaint is None or complaint.startswith("Failed to create"):
            continue
        if "No such configuration property" in complaint:
            problems.append(f"{name}: unknown Kafka client option{_unknown_hint(name)}")
        else:
            problems.append(f"{name}: invalid value")
    return problems


def _config_problems(configs: ClientConfigs) -> list[str]:
    """What librdkafka refuses in each client's whole configuration (combinations, such as
    ``acks`` with idempotence, or a settings given in code), with values scrubbed."""
    by_complaint: dict[str, list[str]] = {}
    for role in ("producer", "consumer", "admin"):
        conf = {k: v for k, v in configs.of(role).items() if k != "bootstrap.servers"}
        complaint = _probe(role, tuple(sorted(conf.items())))
        if complaint is not None:
            text = _scrub(re.sub(r"^Failed to create [a-z ]+: ", "", complaint), [*conf.values()])
            by_complaint.setdefault(text, []).append(role)
    return [
        f"{', '.join(roles)} client{'s' if len(roles) > 1 else ''}: {text}"
        for text, roles in by_complaint.items()
    ]


def check_url(
    url: str,
    *,
    producer: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
    admin: Mapping[str, Any] | None = None,
) -> ClientConfigs:
    """Parse ``url`` and check its options as :class:`KafkaLog` would, without connecting.

    Returns:
        Each client's configuration.

    Raises:
        UnsupportedLogURL: the URL is malformed.
        InvalidLogOptions: some options are unknown, invalid or fixed (all of them listed).
    """
    parsed = parse_url(url)
    given = {"producer": producer, "consumer": consumer, "admin": admin}
    problems = fixed_problems(parsed.options, **given) + _option_problems(parsed.options)
    if problems:
        raise InvalidLogOptions(problems)
    configs = build_configs(parsed.bootstrap, parsed.options, **given)
    problems = _config_problems(configs)
    if problems:
        raise InvalidLogOptions(problems)
    return configs


def _error_code(err: KafkaError) -> str:
    return f"kafka_{str(err.name()).lower().lstrip('_')}"


def _header_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _record(msg: Message) -> LogRecord:
    _, ts = msg.timestamp()
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return LogRecord(
        topic=str(msg.topic()),
        partition=int(msg.partition() or 0),
        offset=int(msg.offset() or 0),
        key=msg.key(),
        value=msg.value() or b"",
        headers=tuple((str(k), _header_bytes(v)) for k, v in pairs),
        timestamp_ms=int(ts),
    )


class KafkaLog:
    """An :class:`~transport.log.EventLog` on a Kafka-protocol cluster (``kafka://host:port``).

    Args:
        url: ``kafka://host:port[,host:port...][?option=value&...]``; the options are librdkafka
            settings, each sent to the clients that use it (see :mod:`transport.kafka_config`).
        default_partitions: Partitions of topics created implicitly by ``append``/``consumer``.
        replication_factor: For created topics; ``-1`` = the broker's default.
        producer, consumer, admin: librdkafka settings for one client, over the URL's options.
        timeout: Seconds to wait for metadata and topic creation.

    Raises:
        UnsupportedLogURL: the URL is malformed.
        InvalidLogOptions: an option is unknown, has an invalid value, or is fixed by the
            transport; every such option is listed by name (never with its value).
    """

    def __init__(
        self,
        url: str,
        *,
        default_partitions: int = 1,
        replication_factor: int = -1,
        producer: Mapping[str, Any] | None = None,
        consumer: Mapping[str, Any] | None = None,
        admin: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if default_partitions < 1:
            raise ValueError("default_partitions must be >= 1")
        configs = check_url(url, producer=producer, consumer=consumer, admin=admin)
        self.url = url
        self._bootstrap = bootstrap_of(url)
        self._default_partitions = default_partitions
        self._replication_factor = replication_factor
        self._timeout = timeout
        self._producer_conf = configs.producer
        self._consumer_conf = configs.consumer
        self._admin_conf = configs.admin
        self._admin = AdminClient(self._admin_conf)
        self._producer: Producer | None = None
        self._known_topics: set[str] = set()
        self._failed = 0
        self._failure_code = ""
        self._closed = False
        self._consumers: list[KafkaConsumer] = []
        # Per partition, the offset after the last append this log has had acknowledged: a
        # partition EOF its consumers hold from before it is stale (see ``at_end``).
        self._delivered_end: dict[tuple[str, int], int] = {}

    def _check_open(self) -> None:
        if self._closed:
            raise LogUnavailable("the log is closed", code="log_closed")

    # -- topics ----------------------------------------------------------------------

    def _partition_counts(self, topic: str | None = None) -> dict[str, int]:
        try:
            md = self._admin.list_topics(topic=topic, timeout=self._timeout)
        except KafkaException as exc:
            err = exc.args[0]
            raise LogUnavailable("cannot read cluster metadata", code=_error_code(err)) from exc
        return {
            name: len(t.partitions)
            for name, t in md.topics.items()
            if t.error is None and t.partitions
        }

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create ``topic``; "already exists" counts as success. Returns once metadata shows it."""
        self._check_open()
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        if not topic:
            raise ValueError("topic name must not be empty")
        if topic in self._known_topics:
            return
        futures = self._admin.create_topics(
            [NewTopic(topic, partitions, replication_factor=self._replication_factor)],
            operation_timeout=self._timeout,
            request_timeout=self._timeout,
        )
        try:
            futures[topic].result(self._timeout)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TransportError(
                    f"cannot create topic {topic!r}", code=_error_code(err)
                ) from exc
        deadline = time.monotonic() + self._timeout
        while topic not in self._partition_counts(topic):
            if time.monotonic() > deadline:
                raise LogUnavailable(
                    f"topic {topic!r} did not appear in metadata", code="topic_not_visible"
                )
            time.sleep(0.05)
        self._known_topics.add(topic)

    def _ensure_topic(self, topic: str) -> None:
        if topic not in self._known_topics:
            self.create_topic(topic, self._default_partitions)

    def list_topics(self, prefix: str = "") -> list[str]:
        """Topic names starting with ``prefix``, sorted (internal ``__`` topics excluded)."""
        self._check_open()
        names = self._partition_counts()
        return sorted(n for n in names if n.startswith(prefix) and not n.startswith("__"))

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (0 if it does not exist)."""
        self._check_open()
        # a metadata request naming the topic would auto-create it on brokers that allow that
        return self._partition_counts().get(topic, 0)

    # -- appending -------------------------------------------------------------------

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._producer_conf)
        return self._producer

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed += 1
            self._failure_code = _error_code(err)
            return
        tp = (str(msg.topic()), int(msg.partition() or 0))
        end = int(msg.offset() or 0) + 1
        if end > self._delivered_end.get(tp, 0):
            self._delivered_end[tp] = end

    def append(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue one message; durable once :meth:`flush` returns.

        Failures (including ones librdkafka reports at once, such as an oversized message)
        are counted and raised by the next :meth:`flush`.
        """
        self._check_open()
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"value must be bytes, got {type(value).__name__}")
        self._ensure_topic(topic)
        producer = self._get_producer()
        while True:
            try:
                producer.produce(
                    topic,
                    value=bytes(value),
                    key=key,
                    headers=list(headers) if headers else None,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                producer.poll(0.1)
            except KafkaException as exc:
                self._failed += 1
                self._failure_code = _error_code(exc.args[0])
                break
        producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every append so far is acknowledged by the cluster (``acks=all``).

        Raises:
            DeliveryFailed: ``failed`` = appends since the last flush that were not
                delivered, including ones still unacknowledged when ``timeout`` ran out.
        """
        self._check_open()
        self._flush(timeout)

    def _flush(self, timeout: float) -> None:
        if self._producer is not None:
            remaining = self._producer.flush(timeout)
            if remaining > 0:
                self._failed += remaining
                self._failure_code = "flush_timeout"
                # Those messages may still be delivered later; callers re-append and rely on
                # idempotent effects, as for any at-least-once failure.
        if self._failed:
            failed, code = self._failed, self._failure_code
            self._failed, self._failure_code = 0, ""
            raise DeliveryFailed(
                f"{failed} appends were not acknowledged ({code})", failed=failed, code=code
            )

    # -- reading ---------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        """A member of ``group`` subscribed to ``topics`` (missing topics are created)."""
        self._check_open()
        if not group:
            raise ValueError("group must not be empty")
        for topic in topics:
            self._ensure_topic(topic)
        consumer = KafkaConsumer(self, {**self._consumer_conf, "group.id": group}, list(topics))
        self._consumers.append(consumer)
        return consumer

    def delete_before(self, topic: str, partition: int, offset: int) -> int:
        """Kafka's DeleteRecords: the partition's low watermark moves to ``offset``.

        A broker that does not implement DeleteRecords (Tansu drops the connection) is told
        apart from one that is down by reading the topic's metadata first.

        Raises:
            DeleteUnsupported: the broker refused or dropped the request.
            LogUnavailable: the broker is unreachable.
        """
        self._check_open()
        if partition >= self._partition_counts(topic).get(topic, 0):
            raise ValueError(f"{topic!r} has no partition {partition}")
        futures = self._admin.delete_records(
            [TopicPartition(topic, partition, offset)],
            request_timeout=self._timeout,
            operation_timeout=self._timeout,
        )
        try:
            [result] = [f.result(timeout=self._timeout) for f in futures.values()]
        except KafkaException as exc:
            err = exc.args[0]
            raise DeleteUnsupported(
                "the broker refused or dropped DeleteRecords: bound the topic's retention "
                "(retention.ms) instead",
                code=f"delete_unsupported:{_error_code(err)}",
            ) from exc
        return int(result.low_watermark)

    def read_all(self, topic: str) -> list[LogRecord]:
        """Every record of ``topic`` from offset 0 in every partition, by (partition, offset).

        Reads until every partition reports EOF; an unknown topic reads as ``[]``.

        Raises:
            LogUnavailable: the end of every partition was not reached within the timeout.
        """
        self._check_open()
        count = self._partition_counts(topic).get(topic, 0)
        if count == 0:
            return []
        conf = {
            **self._consumer_conf,
            "group.id": f"tiptrust-read-all-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
        consumer = Consumer(conf)
        records: list[LogRecord] = []
        try:
            consumer.list_topics(topic, timeout=self._timeout)  # see KafkaConsumer.__init__
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(count)])
            at_eof: set[int] = set()
            deadline = time.monotonic() + max(self._timeout, 30.0)
            while len(at_eof) < count:
                if time.monotonic() > deadline:
                    raise LogUnavailable(
                        f"read_all of {topic!r} did not reach the end", code="read_all_timeout"
                    )
                for msg in consumer.consume(1000, 0.2):
                    err = msg.error()
                    if err is None:
                        records.append(_record(msg))
                        at_eof.discard(int(msg.partition() or 0))
                    elif err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(int(msg.partition() or 0))
                    else:
                        raise TransportError(f"read_all of {topic!r} failed", code=_error_code(err))
        finally:
            consumer.close()
        records.sort(key=lambda r: (r.partition, r.offset))
        return records

    def close(self) -> None:
        """Flush pending appends (up to the log's timeout), close consumers. Idempotent."""
        if self._closed:
            return
        try:
            for consumer in self._consumers:
                consumer.close()
            self._consumers.clear()
            self._flush(self._timeout)
        finally:
            self._closed = True
            if self._producer is not None:
                self._producer.close()
                self._producer = None
            # The AdminClient has no close(); dropping it stops its threads and reconnects.
            del self._admin

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaLog(bootstrap={self._bootstrap!r}, closed={self._closed})"


class KafkaConsumer:
    """A consumer-group member of a :class:`KafkaLog` (see the module notes on seek/EOF).

    The rebalance callbacks assume an eager assignor (librdkafka's default ``range`` /
    ``roundrobin``), not ``cooperative-sticky``.
    """

    def __init__(self, log: KafkaLog, conf: dict[str, Any], topics: list[str]) -> None:
        self._log = log
        self._topics = topics
        self._consumer = Consumer(conf)
        self._assigned: set[tuple[str, int]] = set()
        # Per partition that reported EOF since its last record: the end offset it reported.
        self._eof: dict[tuple[str, int], int] = {}
        self._joined = False
        self._settled = False
        self._pending_seeks: dict[tuple[str, int], int] = {}
        # Records read while waiting for the group join inside commit(); poll returns them.
        self._buffer: list[LogRecord] = []
        self._closed = False
        for topic in topics:
            # Warm the metadata cache: a partition whose leader is unknown when fetching
            # starts waits on a 500 ms librdkafka retry timer.
            self._consumer.list_topics(topic, timeout=log._timeout)
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (str(tp.topic), int(tp.partition))
            if key in self._pending_seeks:
                tp.offset = self._pending_seeks.pop(key)
        consumer.assign(partitions)
        self._assigned = {(str(tp.topic), int(tp.partition)) for tp in partitions}
        for key in self._assigned:
            self._eof.pop(key, None)
        self._joined = True
        self._settled = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.unassign()
        self._settled = False  # a rebalance is under way until the next assignment
        self._assigned = set()
        self._eof = {}
        self._buffer = []  # the next owner of those partitions reads them again

    def _check_open(self) -> None:
        if self._closed:
            raise LogUnavailable("the consumer is closed", code="consumer_closed")

    def _apply_seeks(self) -> None:
        for (topic, partition), offset in list(self._pending_seeks.items()):
            if (topic, partition) not in self._assigned:
                continue  # applied by _on_assign when (if) this member gets the partition
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                continue  # librdkafka not ready for this partition yet: retry next poll
            del self._pending_seeks[(topic, partition)]

    def _consume(self, max_records: int, timeout: float) -> tuple[list[LogRecord], bool]:
        """One ``consume`` call: its records, and whether it returned anything at all."""
        msgs = self._consumer.consume(max_records, max(timeout, 0.0))
        out: list[LogRecord] = []
        for msg in msgs:
            err = msg.error()
            tp = (str(msg.topic()), int(msg.partition() or 0))
            if err is None:
                out.append(_record(msg))
                self._eof.pop(tp, None)
            elif err.code() == KafkaError._PARTITION_EOF:
                self._eof[tp] = int(msg.offset() or 0)
            else:
                raise TransportError("consumer error", code=_error_code(err))
        if self._pending_seeks:
            self._apply_seeks()
        return out, bool(msgs)

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[LogRecord]:
        """Up to ``max_records`` records within ``timeout`` s (``[]`` while joining the group).

        Raises:
            TransportError: librdkafka reported an error other than partition EOF.
        """
        self._check_open()
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        if self._buffer:
            out, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
            return out
        if self._pending_seeks:
            self._apply_seeks()
        out = []
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            records, _ = self._consume(max_records - len(out), deadline - time.monotonic())
            out += records
            # consume() returns early when it has only EOF events: keep waiting for records
            # until the deadline, as the port promises.
            if out or time.monotonic() >= deadline:
                return out

    def _await_join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._joined and time.monotonic() < deadline:
            records, _ = self._consume(500, 0.05)
            self._buffer += records

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Synchronously commit the next offsets for the given partitions.

        Before this member has joined its group (no poll yet) the commit first waits for the
        join; records read meanwhile are kept for the next poll.
        """
        self._check_open()
        if not positions:
            return
        if not self._joined:
            self._await_join(self._log._timeout)
            if not self._joined:
                raise TransportError("commit before the group join completed", code="not_joined")
        offsets = [TopicPartition(t, p, int(o)) for (t, p), o in positions.items()]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise TransportError("commit failed", code=_error_code(exc.args[0])) from exc
        for tp in result or []:
            if tp.error is not None:
                raise TransportError("commit failed", code=_error_code(tp.error))

    def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed next offsets for every partition of this consumer's topics."""
        self._check_open()
        tps = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in range(self._log._partition_counts(topic).get(topic, 0))
        ]
        if not tps:
            return {}
        try:
            result = self._consumer.committed(tps, timeout=self._log._timeout)
        except KafkaException as exc:
            raise TransportError(
                "cannot read committed offsets", code=_error_code(exc.args[0])
            ) from exc
        return {
            (str(tp.topic), int(tp.partition)): int(tp.offset) for tp in result if tp.offset >= 0
        }

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Next poll of ``(topic, partition)`` starts at ``offset``; valid before assignment."""
        self._check_open()
        if offset < 0:
            raise ValueError("offset must be >= 0")
        self._pending_seeks[(topic, partition)] = offset
        self._eof.pop((topic, partition), None)
        self._buffer = [r for r in self._buffer if (r.topic, r.partition) != (topic, partition)]
        self._apply_seeks()

    def at_end(self) -> bool:
        """True once this member holds its partitions and each hit EOF since its last record,
        at or beyond the end of what this consumer's log has appended there.

        An EOF is a statement about the partition when a fetch answered. A fetch already
        waiting when this process appends may answer (after ``fetch.wait.max.ms``) without the
        new record — Tansu does not wake a waiting fetch — so an EOF short of this log's own
        acknowledged appends is stale, and the member is not at the end until it has read them.
        Appends by other processes are not known here: "at the end" is as of the last fetch.
        """
        if not self._settled or self._buffer:
            return False
        delivered = self._log._delivered_end
        for tp in self._assigned:
            end = self._eof.get(tp)
            if end is None or end < delivered.get(tp, 0):
                return False
        return True

    def close(self) -> None:
        """Leave the group (uncommitted reads go to the next member). Idempotent.

        A member still joining is first allowed to finish its join (up to the log's
        timeout): on Tansu, a member that leaves while its JoinGroup is held wedges the
        group, and no later member is ever assigned. On Kafka this only delays close.
        """
        if self._closed:
            return
        self._closed = True
        try:
            deadline = time.monotonic() + self._log._timeout
            while not (self._joined and self._settled) and time.monotonic() < deadline:
                self._consumer.consume(500, 0.05)  # records dropped: not committed, redelivered
        finally:
            self._consumer.close()

    def __repr__(self) -> str:
        return f"KafkaConsumer(topics={self._topics!r}, joined={self._joined})"
