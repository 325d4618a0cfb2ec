"""Disclosure control: what of a count table may leave the trust (§5 of the manual).

:class:`DisclosurePolicy` fixes k and the ordered steps at construction, starting with primary
suppression (:func:`primary_suppression`); secondary suppression (``margins.py``) protects tables
with margins. A stream's method (``methods.py``; ``noise.md``) then rounds or perturbs the
published values, or replaces suppression with differential privacy through OpenDP.
"""

from trust.release.disclosure.suppression import (
    PRIMARY_METHOD,
    DisclosurePolicy,
    DisclosureStep,
    SuppressedCell,
    SuppressedTable,
    primary_suppression,
)

__all__ = [
    "PRIMARY_METHOD",
    "DisclosurePolicy",
    "DisclosureStep",
    "SuppressedCell",
    "SuppressedTable",
    "primary_suppression",
]
