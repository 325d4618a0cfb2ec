"""The one registry of disclosure methods a stream may declare (``StreamSpec.method``).

Each name stands for an implementation and its parameters (method note: ``noise.md``):

=======================  ========================================================================
``suppression``          suppression only (primary, differencing, secondary): values exact
``round_down``           then published values rounded down to a multiple of k (the CTDC's rule)
``random_rounding``      then unbiased random rounding to a multiple of 5, drawn by cell key
``cell_key``             then cell-key perturbation, noise in [-2, 2] (ONS / ABS)
``dp_discrete_laplace``  instead of suppression: OpenDP discrete Laplace, epsilon 0.1 per release
``dp_discrete_gaussian`` instead of suppression: OpenDP discrete Gaussian, epsilon 0.1 and delta
                         1e-7 per release
``dp_continual``         a cumulative monthly series: OpenDP's b-ary tree over 64 months with
                         Laplace noise, epsilon 1 for the whole series (``continual.py``)
=======================  ========================================================================

The release stage resolves every stream's method when it is built (:func:`method`: an unknown
name is an error there, not at the first release).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from trust.release.disclosure.dp import Mechanism, PrivacyCost
from trust.release.errors import ReleaseError
from trust.release.history import AggregateKey

if TYPE_CHECKING:
    from trust.release.disclosure.suppression import DisclosureStep


class UnknownMethod(ReleaseError):
    """A stream declares a disclosure method the registry does not know."""

    code = "unknown_method"


@dataclass(frozen=True)
class Suppression:
    """Suppression only: values published exactly."""

    name: str = "suppression"
    uses_record_keys: bool = False

    def step(self, k: int, cell_keys: Mapping[AggregateKey, int] | None) -> DisclosureStep | None:
        return None


@dataclass(frozen=True)
class RoundDown:
    """After suppression, published values rounded down to a multiple of ``base`` (None: k)."""

    name: str = "round_down"
    base: int | None = None
    uses_record_keys: bool = False

    def step(self, k: int, cell_keys: Mapping[AggregateKey, int] | None) -> DisclosureStep | None:
        from trust.release.disclosure.rounding import RoundDownStep

        return RoundDownStep(self.base or k)


@dataclass(frozen=True)
class RandomRounding:
    """After suppression, published values randomly rounded to a multiple of ``base`` (None:
    k), drawn by cell key."""

    name: str = "random_rounding"
    base: int | None = 5
    uses_record_keys: bool = True

    def step(self, k: int, cell_keys: Mapping[AggregateKey, int] | None) -> DisclosureStep | None:
        from trust.release.disclosure.rounding import RandomRoundingStep

        if cell_keys is None:
            raise ValueError("random rounding needs the aggregates' cell keys")
        return RandomRoundingStep(self.base or k, cell_keys)


@dataclass(frozen=True)
class CellKey:
    """After suppression, cell-key perturbation with noise in ``[-max_noise, max_noise]``."""

    name: str = "cell_key"
    max_noise: int = 2
    uses_record_keys: bool = True

    def step(self, k: int, cell_keys: Mapping[AggregateKey, int] | None) -> DisclosureStep | None:
        from trust.release.disclosure.cellkey import CellKeyStep, PerturbationTable

        if cell_keys is None:
            raise ValueError("cell-key perturbation needs the aggregates' cell keys")
        return CellKeyStep(PerturbationTable(k, self.max_noise), cell_keys)


@dataclass(frozen=True)
class DifferentialPrivacy:
    """Instead of suppression: OpenDP noise on every aggregate, spending ``cost`` of the privacy
    budget of every contributing source for the consumer (the ledger)."""

    name: str
    mechanism: Mechanism
    cost: PrivacyCost
    uses_record_keys: bool = False


@dataclass(frozen=True)
class ContinualPrivacy:
    """For a cumulative monthly series (a stream with ``StreamSpec.cumulative``): OpenDP's b-ary
    tree over ``horizon_months`` (rounded up to a power of ``branching``) with Laplace noise,
    ``cost`` charged once per contributing source for the whole series, when the source is
    first counted in it. ``changes_per_person``: how many monthly changes one person makes (2:
    counted once, and removed once by a retraction, an erasure or a merge)."""

    name: str
    cost: PrivacyCost
    horizon_months: int = 64
    branching: int = 2
    changes_per_person: int = 2
    uses_record_keys: bool = False


PostSuppression = Suppression | RoundDown | RandomRounding | CellKey
"""The methods applied to the published values of a suppressed table."""

DisclosureMethod = PostSuppression | DifferentialPrivacy | ContinualPrivacy

METHODS: Mapping[str, DisclosureMethod] = MappingProxyType(
    {
        m.name: m
        for m in (
            Suppression(),
            RoundDown(),
            RandomRounding(),
            CellKey(),
            DifferentialPrivacy("dp_discrete_laplace", "laplace", PrivacyCost(0.1)),
            DifferentialPrivacy("dp_discrete_gaussian", "gaussian", PrivacyCost(0.1, 1e-7)),
            ContinualPrivacy("dp_continual", PrivacyCost(1.0)),
        )
    }
)


def method(name: str) -> DisclosureMethod:
    """The method declared as ``name``; :class:`UnknownMethod` if there is none."""
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise UnknownMethod(
            f"no disclosure method is declared as {name!r} (known: {known})"
        ) from None
