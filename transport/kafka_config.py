"""Kafka client options: production defaults, where options come from, which client takes each.

An option is a librdkafka configuration property (``session.timeout.ms``, ``security.protocol``,
``linger.ms``…; see librdkafka's ``CONFIGURATION.md``). Options reach the Kafka backend as the
query of the log URL, the same syntax everywhere::

    kafka://broker1:9092,broker2:9092?session.timeout.ms=45000&security.protocol=ssl

Values are percent-decoded (``%26`` for ``&``, ``%3D`` for ``=``, ``%25`` for ``%``); ``+`` is a
plus sign, not a space. Each option goes to the clients that use it: consumer properties to the
consumers, producer properties to the producer, the rest (security, sockets, metadata, ``debug``…)
to every client, so librdkafka never warns that it ignores one. An option the transport fixes
(the bootstrap servers, the group id, explicit commits, partition EOF…) is refused, naming it and
why. Unknown names and invalid values are refused by :mod:`transport.kafka` when the log is
opened, every problem at once, each by option name and never with its value (a value may be a
password).

The defaults are production-safe: librdkafka's own timings, which Apache Kafka accepts
(``session.timeout.ms`` 45000 is above the broker's ``group.min.session.timeout.ms``, 6000 by
default). A broker that needs other timings gets them in its URL: the test broker does
(``infra.broker.TANSU_CLIENT_OVERRIDES``).

This module is pure Python: it never loads librdkafka.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote

from transport.errors import InvalidLogOptions, UnsupportedLogURL

__all__ = [
    "CONSUMER_DEFAULTS",
    "CONSUMER_ONLY",
    "FIXED",
    "PRODUCER_DEFAULTS",
    "PRODUCER_ONLY",
    "ClientConfigs",
    "KafkaURL",
    "Role",
    "build_configs",
    "client_value",
    "display_url",
    "fixed_problems",
    "format_options",
    "parse_options",
    "parse_url",
    "scope_of",
    "with_options",
]

Role = Literal["producer", "consumer", "admin"]

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    # Values up to ~1 MB must pass; the broker's own limit still applies.
    "message.max.bytes": 8 * 1024 * 1024,
}
"""What the producer needs beyond librdkafka's defaults (durable, ordered, large enough)."""

CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": True,
}
"""What the port's semantics need; the timings (session 45 s, heartbeat 3 s, fetch wait 0.5 s)
are librdkafka's defaults, which Apache Kafka accepts."""

FIXED: Mapping[str, str] = {
    "bootstrap.servers": "it comes from the URL's host:port list",
    "metadata.broker.list": "it comes from the URL's host:port list",
    "group.id": "each consumer names its group in code",
    "group.instance.id": "every consumer of the process would share one static member id",
    "enable.auto.commit": "the port commits explicitly, after effects are durable",
    "auto.commit.enable": "the port commits explicitly, after effects are durable",
    "enable.partition.eof": "at_end() relies on partition-EOF events",
    "auto.offset.reset": "a new group starts at the earliest record, as the port promises",
    "group.protocol": "the consumer's rebalance callbacks assume the classic group protocol",
    "transactional.id": "the port does not use transactions",
    # callbacks of the Python client: code, not settings
    "logger": "it is a Python callback, set in code",
    "error_cb": "it is a Python callback, set in code",
    "throttle_cb": "it is a Python callback, set in code",
    "stats_cb": "it is a Python callback, set in code",
    "oauth_cb": "it is a Python callback, set in code",
    "on_delivery": "it is a Python callback, set in code",
    "on_commit": "it is a Python callback, set in code",
}
"""Options the transport sets itself; giving one is an error, with the reason."""

# From librdkafka's CONFIGURATION.md (the C/P column): properties of one kind of client only.
# Everything else is global and goes to every client. tests/transport/test_kafka_options.py
# checks these tables against the bundled librdkafka.
CONSUMER_ONLY: frozenset[str] = frozenset(
    {
        "auto.commit.enable",
        "auto.commit.interval.ms",
        "auto.offset.reset",
        "check.crcs",
        "consume.callback.max.messages",
        "consume_cb",
        "coordinator.query.interval.ms",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
        "fetch.error.backoff.ms",
        "fetch.max.bytes",
        "fetch.message.max.bytes",
        "fetch.min.bytes",
        "fetch.queue.backoff.ms",
        "fetch.wait.max.ms",
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.protocol.type",
        "group.remote.assignor",
        "heartbeat.interval.ms",
        "isolation.level",
        "max.partition.fetch.bytes",
        "max.poll.interval.ms",
        "max.poll.records",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        "offset_commit_cb",
        "partition.assignment.strategy",
        "queued.max.messages.kbytes",
        "queued.min.messages",
        "rebalance_cb",
        "session.timeout.ms",
        "share.acknowledgement.mode",
    }
)
PRODUCER_ONLY: frozenset[str] = frozenset(
    {
        "acks",
        "batch.num.messages",
        "batch.size",
        "compression.codec",
        "compression.level",
        "compression.type",
        "delivery.report.only.error",
        "delivery.timeout.ms",
        "dr_cb",
        "dr_msg_cb",
        "enable.gapless.guarantee",
        "enable.idempotence",
        "linger.ms",
        "message.send.max.retries",
        "message.timeout.ms",
        "msg_order_cmp",
        "partitioner",
        "partitioner_cb",
        "produce.offset.report",
        "queue.buffering.backpressure.threshold",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.messages",
        "queue.buffering.max.ms",
        "queuing.strategy",
        "request.required.acks",
        "request.timeout.ms",
        "retries",
        "sticky.partitioning.linger.ms",
        "transaction.timeout.ms",
        "transactional.id",
    }
)

_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_SECRET = re.compile(
    r"password|secret|credential|token|jaas|oauthbearer\.config|private|pem|keystore"
)


# Options the Python client reads itself, as a bool rather than librdkafka's text.
_PYTHON_BOOLS = frozenset({"delivery.report.only.error"})


def client_value(name: str, value: str) -> Any:
    """An option's text as the client takes it (``true``/``false`` where Python wants a bool)."""
    if name in _PYTHON_BOOLS and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def scope_of(name: str) -> Literal["consumer", "producer", "global"]:
    """Which clients use option ``name``: the consumers, the producer, or every client."""
    if name in CONSUMER_ONLY:
        return "consumer"
    if name in PRODUCER_ONLY:
        return "producer"
    return "global"


def is_secret(name: str) -> bool:
    """True for options whose value must never be shown (passwords, keys, tokens)."""
    return bool(_SECRET.search(name))


@dataclass(frozen=True)
class KafkaURL:
    """A parsed ``kafka://`` URL: its bootstrap servers and its client options."""

    bootstrap: str
    options: Mapping[str, str] = field(default_factory=dict)


def parse_options(query: str) -> tuple[dict[str, str], list[str]]:
    """``a.b=1&c=2`` -> ``({"a.b": "1", "c": "2"}, problems)``; problems name options, not values.

    Checks the syntax only (``name=value`` pairs, names like ``session.timeout.ms``, no name
    twice, no empty value); whether librdkafka knows a name is checked when the log is opened.
    """
    options: dict[str, str] = {}
    problems: list[str] = []
    for n, piece in enumerate(p for p in query.split("&") if p.strip()):
        name, eq, raw = piece.partition("=")
        name = unquote(name).strip()
        if not eq or not name:
            problems.append(f"option {n + 1}: expected name=value")
            continue
        if not _NAME.fullmatch(name):
            problems.append(f"{name!r}: not a Kafka client option name (like session.timeout.ms)")
            continue
        if name in options:
            problems.append(f"{name}: given twice")
            continue
        value = unquote(raw.strip())  # spaces around a pair go; encoded ones (%20) stay
        if not value:
            problems.append(f"{name}: no value")
            continue
        options[name] = value
    return options, problems


def format_options(options: Mapping[str, str]) -> str:
    """The inverse of :func:`parse_options`: ``name=value&…`` sorted by name, percent-encoded."""
    return "&".join(
        f"{quote(name, safe='._')}={quote(str(value), safe='.,_-:/')}"
        for name, value in sorted(options.items())
    )


def parse_url(url: str) -> KafkaURL:
    """``kafka://h1:p1,h2:p2[/][?options]`` -> bootstrap ``h1:p1,h2:p2`` and its options.

    Raises:
        UnsupportedLogURL: not a ``kafka://`` URL, or no valid ``host:port`` list.
        InvalidLogOptions: the query is not ``name=value&…`` (every problem at once).
    """
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "kafka" or not sep:
        raise UnsupportedLogURL("not a kafka:// URL", code="unsupported_log_url")
    location, _, query = rest.partition("?")
    servers, _, path = location.partition("/")
    if path:
        raise UnsupportedLogURL(
            "a kafka:// URL has no path: kafka://host:port[?options]", code="unsupported_log_url"
        )
    hosts = [s.strip() for s in servers.split(",") if s.strip()]
    for host in hosts:
        name, colon, port = host.rpartition(":")
        if not colon or not name or not port.isdigit():
            raise UnsupportedLogURL(
                "a kafka:// URL lists host:port pairs separated by commas",
                code="unsupported_log_url",
            )
    if not hosts:
        raise UnsupportedLogURL(
            "a kafka:// URL needs at least one host:port", code="unsupported_log_url"
        )
    options, problems = parse_options(query)
    if problems:
        raise InvalidLogOptions(problems)
    return KafkaURL(",".join(hosts), options)


def with_options(url: str, options: Mapping[str, str]) -> str:
    """``url`` with ``options`` added to its query; an option already in ``url`` wins.

    Returns ``url`` unchanged (byte for byte) when there is nothing to add.

    Raises:
        UnsupportedLogURL, InvalidLogOptions: as :func:`parse_url`.
    """
    parsed = parse_url(url)
    extra = {k: v for k, v in options.items() if k not in parsed.options}
    if not extra:
        return url
    base = url.partition("?")[0].rstrip("/")
    return f"{base}?{format_options({**parsed.options, **extra})}"


def display_url(url: str) -> str:
    """``url`` fit to print: the value of every secret option (passwords, keys) is ``***``.

    Anything that is not a well-formed ``kafka://`` URL with options is returned unchanged.
    """
    if not url.lower().startswith("kafka://") or "?" not in url:
        return url
    try:
        parsed = parse_url(url)
    except (UnsupportedLogURL, InvalidLogOptions):
        return url.partition("?")[0] + "?***"
    if not any(is_secret(k) for k in parsed.options):
        return url
    shown = "&".join(
        f"{name}=***" if is_secret(name) else format_options({name: value})
        for name, value in sorted(parsed.options.items())
    )
    return f"{url.partition('?')[0]}?{shown}"


@dataclass(frozen=True)
class ClientConfigs:
    """The librdkafka configuration of each client of one log (bootstrap servers included)."""

    producer: dict[str, Any]
    consumer: dict[str, Any]
    admin: dict[str, Any]

    def of(self, role: Role) -> dict[str, Any]:
        return {"producer": self.producer, "consumer": self.consumer, "admin": self.admin}[role]


def fixed_problems(
    options: Mapping[str, Any],
    *,
    producer: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
    admin: Mapping[str, Any] | None = None,
) -> list[str]:
    """Options the transport fixes, and cooperative assignors: one problem each, by name."""
    problems: list[str] = []
    given: list[tuple[str, Mapping[str, Any] | None]] = [
        ("", options),
        ("producer ", producer),
        ("consumer ", consumer),
        ("admin ", admin),
    ]
    for where, opts in given:
        for name, value in (opts or {}).items():
            if name in FIXED:
                problems.append(f"{where}{name}: fixed by the transport ({FIXED[name]})")
            elif name == "partition.assignment.strategy" and "cooperative" in str(value):
                problems.append(
                    f"{where}{name}: cooperative assignors are not supported "
                    "(the consumer assumes eager rebalancing: range or roundrobin)"
                )
    return problems


def build_configs(
    bootstrap: str,
    options: Mapping[str, str],
    *,
    producer: Mapping[str, Any] | None = None,
    consumer: Mapping[str, Any] | None = None,
    admin: Mapping[str, Any] | None = None,
) -> ClientConfigs:
    """Each client's configuration: defaults, then the URL's ``options`` routed by scope, then
    the per-client overrides given in code. Checks nothing: see :func:`fixed_problems`."""
    base: dict[str, Any] = {"bootstrap.servers": bootstrap}
    routed: dict[Role, dict[str, Any]] = {"producer": {}, "consumer": {}, "admin": {}}
    for name, value in options.items():
        scope = scope_of(name)
        roles: tuple[Role, ...] = (
            ("producer", "consumer", "admin") if scope == "global" else (scope,)
        )
        for role in roles:
            routed[role][name] = client_value(name, value)
    return ClientConfigs(
        producer={**base, **PRODUCER_DEFAULTS, **routed["producer"], **(producer or {})},
        consumer={**base, **CONSUMER_DEFAULTS, **routed["consumer"], **(consumer or {})},
        admin={**base, **routed["admin"], **(admin or {})},
    )
