"""Errors of the event-log port: each carries a reason ``code`` and never a message value."""

from __future__ import annotations


class TransportError(Exception):
    """Base of every transport failure; ``code`` is a stable, machine-readable reason."""

    code: str = "transport_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UnsupportedLogURL(TransportError):
    """The log URL's scheme names no known backend (or the URL is malformed)."""

    code = "unsupported_log_url"


class DeliveryFailed(TransportError):
    """Some appends were not acknowledged as durable; ``failed`` says how many."""

    code = "delivery_failed"

    def __init__(self, message: str, *, failed: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.failed = failed


class LogUnavailable(TransportError):
    """The log could not be reached or opened (broker down, file locked too long, closed log)."""

    code = "log_unavailable"
