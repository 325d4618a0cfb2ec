"""The one shape of a refusal the trust's rules make: a stable reason code and a message.

``code`` is the value of the module's reason enum (what scripts, receipts and tests match on);
the message says what to do, and never holds personal data. Each rule keeps its own enum of
reasons beside it (``ReviewReason``, ``BackupReason``, ``RevocationReason`` …) and its own
subclass, so a caller catches exactly the refusals it can explain.
"""

from __future__ import annotations

from enum import StrEnum


class Refusal(Exception):
    """Refused for ``code`` (a reason enum's value), with a message for the operator."""

    def __init__(self, code: StrEnum, message: str) -> None:
        self.code = code.value
        super().__init__(message)
