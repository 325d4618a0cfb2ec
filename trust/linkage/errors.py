"""Errors of record linkage: named by meaning, carrying a reason code and a position, never a value.

A linkage input holds names, dates of birth and document numbers, so a message says *where* the
problem is (input, row, column) and what was expected there — never what the cell contained.
"""

from __future__ import annotations

from enum import StrEnum


class LinkageReason(StrEnum):
    """Why linkage refused its input or its configuration. Stable strings."""

    MISSING_COLUMN = "missing_column"  # a required column is not in the file's header
    UNKNOWN_COLUMN = "unknown_column"  # a column the batch format does not define
    MISSING_ID = "missing_id"  # a row without an id
    DUPLICATE_ID = "duplicate_id"  # an id used twice, in one input or across inputs
    BAD_DATE = "bad_date"  # a date that no lenient reading understands
    BAD_VALUE = "bad_value"  # a year or an age that is not a whole number in range
    UNREADABLE = "unreadable"  # not a readable UTF-8 CSV file
    BAD_SETTINGS = "bad_settings"  # thresholds, rules or comparisons that cannot work
    BAD_KEY = "bad_key"  # a blocking-key secret that is too short
    BAD_MODEL = "bad_model"  # parameters that do not fit the comparisons
    BAD_MODE = "bad_mode"  # e.g. one input without --dedupe
    UNKNOWN_REVIEW = "unknown_review"  # no review has this id
    REVIEW_CLOSED = "review_closed"  # the review was already resolved or withdrawn
    UNKNOWN_PERSON = "unknown_person"  # no person has this id (or it is not a candidate)
    UNKNOWN_RECORD = "unknown_record"  # no linked victim record has this key


class LinkageError(Exception):
    """A linkage failure with a stable ``reason``; ``where`` locates it without any value."""

    def __init__(self, reason: LinkageReason, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = reason
        self.where = where
        self.detail = message

    def at(self, where: str) -> LinkageError:
        """The same error, located further out (``row 17`` becomes ``B.csv row 17``)."""
        place = f"{where} {self.where}".strip() if self.where else where
        return LinkageError(self.reason, self.detail, where=place)
