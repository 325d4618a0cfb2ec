"""Errors of the release stage: named by meaning, carrying a stable ``code``, never a count."""

from __future__ import annotations


class ReleaseError(Exception):
    """Base of every release-stage failure; ``code`` is a stable, machine-readable reason."""

    code: str = "release_error"


class InvalidThreshold(ReleaseError):
    """A minimum cell size below 1: primary suppression would protect nothing."""

    code = "invalid_threshold"


class UnknownStream(ReleaseError):
    """A stream name that no :class:`~trust.release.streams.StreamSpec` declares."""

    code = "unknown_stream"


class UnprotectedTable(ReleaseError):
    """A table whose disclosure control is weaker than its stream requires (e.g. a smaller k)."""

    code = "unprotected_table"
