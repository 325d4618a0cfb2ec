"""How bytes move: the event-log port and :func:`open_log`, which picks a backend by URL.

``sqlite:///path.db`` opens the embedded log (the default; no server); ``kafka://host:port``
(comma-separated for several bootstrap servers) opens the confluent-kafka backend, with client
options as the URL's query (``kafka://host:port?session.timeout.ms=45000``; see
:mod:`transport.kafka_config`). Backends are imported only when opened, so the embedded path
never loads librdkafka. This package never decodes a payload, never reads the environment, and
imports nothing else of the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transport.errors import (
    DeleteUnsupported,
    DeliveryFailed,
    InvalidLogOptions,
    LogUnavailable,
    TransportError,
    UnsupportedLogURL,
)
from transport.kafka_config import display_url
from transport.log import EventLog, LogConsumer, LogRecord

__all__ = [
    "DEFAULT_LOG_URL",
    "DeleteUnsupported",
    "DeliveryFailed",
    "EventLog",
    "InvalidLogOptions",
    "LogConsumer",
    "LogRecord",
    "LogUnavailable",
    "TransportError",
    "UnsupportedLogURL",
    "check_log_url",
    "display_url",
    "open_log",
    "with_log_options",
]

DEFAULT_LOG_URL = "sqlite:///.tiptrust/log.db"
"""The embedded log in the working folder's ``.tiptrust/`` (ignored by git)."""


def _scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise UnsupportedLogURL(
            "a log URL looks like sqlite:///path.db or kafka://host:port",
            code="unsupported_log_url",
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return "sqlite"
    if scheme == "kafka":
        return "kafka"
    raise UnsupportedLogURL(
        f"unsupported log URL scheme {scheme!r}: use sqlite:/// or kafka://",
        code="unsupported_log_url",
    )


def check_log_url(url: str) -> None:
    """Check ``url`` as :func:`open_log` would, without opening, creating or connecting.

    For ``kafka://`` URLs every client option is checked against librdkafka (which is loaded).

    Raises:
        UnsupportedLogURL: the scheme names no backend, or the URL is malformed.
        InvalidLogOptions: some options are unknown, invalid or fixed; ``problems`` lists each.
    """
    if _scheme(url) == "sqlite":
        from transport.sqlite import check_url as check_sqlite

        check_sqlite(url)
    else:
        from transport.kafka import check_url as check_kafka

        check_kafka(url)


def with_log_options(url: str, kafka_options: Mapping[str, str]) -> str:
    """``url`` with ``kafka_options`` added to a ``kafka://`` URL's query (its own options win).

    A ``sqlite:///`` URL is returned unchanged (it takes no client options), and so is any URL
    when there is nothing to add. Options are checked when the log is opened (or by
    :func:`check_log_url`).

    Raises:
        UnsupportedLogURL: the scheme names no backend, or a kafka:// URL is malformed.
        InvalidLogOptions: the URL's own query is not ``name=value&...``.
    """
    if _scheme(url) != "kafka" or not kafka_options:
        return url
    from transport.kafka_config import with_options

    return with_options(url, kafka_options)


def open_log(url: str, **options: Any) -> EventLog:
    """Open the event log named by ``url``.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``, or
            ``kafka://host:port[,host:port...][?option=value&...]`` (librdkafka options; see
            :mod:`transport.kafka_config`).
        **options: Backend options, passed to the backend's constructor (see
            :class:`transport.sqlite.SqliteLog` and :class:`transport.kafka.KafkaLog`);
            an option the backend does not know raises ``TypeError``.

    Returns:
        An open :class:`EventLog`; close it (or use it as a context manager).

    Raises:
        UnsupportedLogURL: the scheme names no backend, or the URL is malformed.
        InvalidLogOptions: a kafka:// URL's options are unknown, invalid or fixed (all listed).
        LogUnavailable: the log could not be opened.
    """
    if _scheme(url) == "sqlite":
        from transport.sqlite import SqliteLog

        return SqliteLog(url, **options)
    from transport.kafka import KafkaLog

    return KafkaLog(url, **options)
