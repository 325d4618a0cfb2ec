"""Errors of synthesis: named by meaning, carrying a stable ``code``, never a cell value."""

from __future__ import annotations


class SynthesisError(Exception):
    """Base of every synthesis failure; ``code`` is a stable, machine-readable reason."""

    code: str = "synthesis_error"


class InvalidResolution(SynthesisError):
    """A privacy resolution ``k`` below 1: no combination would be protected."""

    code = "invalid_resolution"


class InvalidReportingLength(SynthesisError):
    """A reporting length below 1."""

    code = "invalid_reporting_length"


class UnknownMode(SynthesisError):
    """A synthesis mode other than ``default``, ``pairs`` or ``classic``."""

    code = "unknown_mode"


class InvalidFitWeights(SynthesisError):
    """Weights of the fitting programme that make no sense: a negative triple weight, a cap of
    0 or below."""

    code = "invalid_fit_weights"


class InvalidTable(SynthesisError):
    """A table that cannot be synthesised: no columns, duplicate column names, ragged rows."""

    code = "invalid_table"


class ColumnMismatch(SynthesisError):
    """Synthetic and sensitive tables whose columns differ (the checker compares like with like)."""

    code = "column_mismatch"
