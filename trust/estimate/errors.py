"""Why an estimate could not be made: one reason code per cause, never a value from the data.

Two kinds of reason share the codes. Bad input (a missing ``count`` column, a flag other than
0/1, fewer than two lists, an option out of range) raises :class:`EstimateError`, which the CLI
turns into a usage error. Data that are valid but cannot support an estimate (lists that never
overlap, a list holding every observed person) are not errors: the result says "no estimate" and
carries the reason code and a sentence, so a release can state why there is no number.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    # bad input: raised as EstimateError
    NO_ROWS = "no_rows"
    NO_COUNT_COLUMN = "no_count_column"
    DUPLICATE_COLUMN = "duplicate_column"
    NOT_BINARY = "not_binary"
    BAD_COUNT = "bad_count"
    TOO_FEW_LISTS = "too_few_lists"
    UNKNOWN_LIST = "unknown_list"
    BAD_OPTION = "bad_option"
    SEARCH_TOO_LARGE = "search_too_large"
    # valid data without an estimate: carried on the result
    NO_OBSERVATIONS = "no_observations"
    NOT_ENOUGH_LISTS = "not_enough_lists"
    LIST_HOLDS_EVERYONE = "list_holds_everyone"
    LISTS_DISJOINT = "lists_disjoint"
    MLE_DOES_NOT_EXIST = "mle_does_not_exist"
    NOT_IDENTIFIABLE = "not_identifiable"
    NO_FINITE_MODEL = "no_finite_model"


class EstimateError(ValueError):
    """Input the estimator cannot use; ``code`` says why, ``where`` names the row or column."""

    def __init__(self, code: ReasonCode, message: str, where: str | None = None) -> None:
        self.code = code
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
