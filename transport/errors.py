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


class InvalidLogOptions(UnsupportedLogURL, ValueError):
    """Log options (a ``kafka://`` URL's query, or client settings given in code) were refused.

    ``problems`` lists every problem, each naming its option and never its value (a value may
    be a password): an unknown option, an invalid value, an option the transport fixes.
    """

    code = "invalid_log_option"

    def __init__(self, problems: list[str] | tuple[str, ...], *, code: str | None = None) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid log options: " + "; ".join(self.problems), code=code)


class DeleteUnsupported(TransportError):
    """The backend (or broker) cannot delete records: the operator bounds how long the log keeps
    them another way (a topic's ``retention.ms`` on Kafka)."""

    code = "delete_unsupported"
