"""Rounding of published values (method note: ``noise.md``).

- **Rounding down** to a multiple of a base (the CTDC publishes counts rounded down to multiples
  of its privacy resolution k): deterministic, so every release publishes the same value for the
  same count; biased down by up to ``base - 1``.
- **Unbiased random rounding** to a multiple of a base: ``v = q·base + r`` becomes ``(q+1)·base``
  with probability ``r / base``, else ``q·base`` (expected value ``v``). The draw is not fresh
  randomness but the aggregate's cell key (``cellkey.py``): the same persons are rounded the same
  way in every table and every release, so a consumer cannot average repeated releases.

Both run after suppression on the published values only; a value rounded below k is suppressed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trust.release.disclosure.suppression import SuppressedTable, map_published
from trust.release.history import AggregateKey


def _check_base(base: int) -> int:
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise ValueError("a rounding base is an integer >= 1")
    return base


def round_down(value: int, base: int) -> int:
    """The largest multiple of ``base`` not above ``value`` (``value`` >= 0)."""
    _check_base(base)
    return value - value % base


def random_round(value: int, base: int, draw: int) -> int:
    """``value`` rounded to a neighbouring multiple of ``base``: up when ``draw`` (an integer in
    ``[0, base)``, uniform) is below ``value mod base``, else down. Unbiased: over the ``base``
    draws the mean of the results is ``value`` exactly."""
    _check_base(base)
    if not 0 <= draw < base:
        raise ValueError("a rounding draw is in [0, base)")
    rest = value % base
    down = value - rest
    return down + base if draw < rest else down


ROUND_DOWN_METHOD = "rounding down to a multiple of {base} (values not exact)"
RANDOM_ROUNDING_METHOD = (
    "unbiased random rounding to a multiple of {base}, the draw fixed by the persons counted "
    "(cell key), so the same persons round the same way in every release (values not exact)"
)


@dataclass(frozen=True)
class RoundDownStep:
    """Every published value rounded down to a multiple of ``base``."""

    base: int

    def __post_init__(self) -> None:
        _check_base(self.base)

    @property
    def method(self) -> str:
        return ROUND_DOWN_METHOD.format(base=self.base)

    def apply(self, table: SuppressedTable) -> SuppressedTable:
        return map_published(
            table,
            lambda _, v: round_down(v, self.base),
            {"method_name": "round_down", "rounding_base": str(self.base)},
        )


@dataclass(frozen=True)
class RandomRoundingStep:
    """Every published value randomly rounded to a multiple of ``base``, the draw taken from the
    aggregate's cell key (``cell_keys``: every aggregate's key; an aggregate without persons has
    key 0)."""

    base: int
    cell_keys: Mapping[AggregateKey, int]

    def __post_init__(self) -> None:
        _check_base(self.base)

    @property
    def method(self) -> str:
        return RANDOM_ROUNDING_METHOD.format(base=self.base)

    def apply(self, table: SuppressedTable) -> SuppressedTable:
        return map_published(
            table,
            lambda a, v: random_round(v, self.base, self.cell_keys.get(a, 0) % self.base),
            {"method_name": "random_rounding", "rounding_base": str(self.base)},
        )
