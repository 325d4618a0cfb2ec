"""How bytes move: the event-log port and :func:`open_log`, which picks a backend by URL.

``sqlite:///path.db`` opens the embedded log (the default; no server); ``kafka://host:port``
(comma-separated for several bootstrap servers) opens the confluent-kafka backend. Backends
are imported only when opened, so the embedded path never loads librdkafka. This package
never decodes a payload and imports nothing else of the project.
"""

from __future__ import annotations

from typing import Any

from transport.errors import DeliveryFailed, LogUnavailable, TransportError, UnsupportedLogURL
from transport.log import EventLog, LogConsumer, LogRecord

__all__ = [
    "DEFAULT_LOG_URL",
    "DeliveryFailed",
    "EventLog",
    "LogConsumer",
    "LogRecord",
    "LogUnavailable",
    "TransportError",
    "UnsupportedLogURL",
    "open_log",
]

DEFAULT_LOG_URL = "sqlite:///.tiptrust/log.db"
"""The embedded log in the working folder's ``.tiptrust/`` (ignored by git)."""


def open_log(url: str, **options: Any) -> EventLog:
    """Open the event log named by ``url``.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``, or
            ``kafka://host:port[,host:port...]``.
        **options: Backend options, passed to the backend's constructor (see
            :class:`transport.sqlite.SqliteLog` and :class:`transport.kafka.KafkaLog`);
            an option the backend does not know raises ``TypeError``.

    Returns:
        An open :class:`EventLog`; close it (or use it as a context manager).

    Raises:
        UnsupportedLogURL: the scheme names no backend, or the URL is malformed.
        LogUnavailable: the log could not be opened.
    """
    if not isinstance(url, str) or "://" not in url:
        raise UnsupportedLogURL(
            "a log URL looks like sqlite:///path.db or kafka://host:port",
            code="unsupported_log_url",
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("sqlite", "sqlite+pysqlite"):
        from transport.sqlite import SqliteLog

        return SqliteLog(url, **options)
    if scheme == "kafka":
        from transport.kafka import KafkaLog

        return KafkaLog(url, **options)
    raise UnsupportedLogURL(
        f"unsupported log URL scheme {scheme!r}: use sqlite:/// or kafka://",
        code="unsupported_log_url",
    )
