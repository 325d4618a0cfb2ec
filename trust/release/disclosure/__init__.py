"""Disclosure control: what of a count table may leave the trust (§5 of the manual).

:class:`DisclosurePolicy` fixes k and the ordered steps at construction; today the only step is
primary suppression (:func:`primary_suppression`). Secondary suppression, rounding and
differential privacy are later steps that take and return a :class:`SuppressedTable`.
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
