"""k-anonymous synthetic microdata: every combination released describes at least k people.

``synthesize(table, k, mode, seed)`` runs the default mode or the ``pairs`` mode
(``default.py``, method note ``METHOD.md``) or the classic row-seeded mode (``classic.py``); ``check`` (``check.py``) verifies
any output independently; ``companion_aggregate`` (the command line's, unprotected) and
``length_utility`` give the counts and the utility report published beside it, and
``check_aggregate`` verifies the counts independently. The release's companion aggregate, cut
from a protected count table, is :mod:`trust.synthesize.companion` (not imported here: it needs
the release path).
"""

from __future__ import annotations

from collections.abc import Callable

from trust.synthesize.aggregate import AggregateCount, companion_aggregate
from trust.synthesize.check import AggregateCheck, CheckResult, check, check_aggregate
from trust.synthesize.classic import synthesize_classic
from trust.synthesize.data import Table, floor_k
from trust.synthesize.default import synthesize_default
from trust.synthesize.errors import (
    ColumnMismatch,
    InvalidReportingLength,
    InvalidResolution,
    InvalidTable,
    SynthesisError,
    UnknownMode,
)
from trust.synthesize.utility import LengthUtility, UtilityReport, length_utility

MODES = ("default", "pairs", "classic")

__all__ = [
    "MODES",
    "AggregateCheck",
    "AggregateCount",
    "CheckResult",
    "ColumnMismatch",
    "InvalidReportingLength",
    "InvalidResolution",
    "InvalidTable",
    "LengthUtility",
    "SynthesisError",
    "Table",
    "UnknownMode",
    "UtilityReport",
    "check",
    "check_aggregate",
    "companion_aggregate",
    "floor_k",
    "length_utility",
    "synthesize",
]


def synthesize(
    table: Table,
    k: int,
    mode: str = "default",
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> Table:
    """A synthetic table in which every combination, of any length, is held by ≥ k rows of
    ``table``; single-attribute counts are ``table``'s rounded down to multiples of ``k``.

    ``progress``, if given, is called with the fraction done (0 … 1).
    """
    if k < 1:
        raise InvalidResolution("k must be at least 1")
    if mode == "default":
        return synthesize_default(table, k, seed, progress, fit="balanced")
    if mode == "pairs":
        return synthesize_default(table, k, seed, progress, fit="pairs")
    if mode == "classic":
        return synthesize_classic(table, k, seed, progress)
    raise UnknownMode(f"unknown mode, expected one of {', '.join(MODES)}")
