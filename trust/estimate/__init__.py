"""Multiple-systems estimation: how many victims no list saw, from how the lists overlap.

``histories`` (capture histories from linked persons or a CSV) → ``existence`` (can a model be
fitted at all?) → ``selection`` (which list dependencies to model) → ``models`` (Poisson
log-linear fits with statsmodels) → ``intervals`` (profile likelihood, bootstrap BCa) →
``prevalence.estimate_population`` (all of it, or "no estimate" with the reason).
See ``METHOD.md`` for the assumptions and the published figures the tests reproduce.
"""

from trust.estimate.errors import EstimateError, ReasonCode
from trust.estimate.histories import CaptureHistories, from_persons, from_rows, read_csv
from trust.estimate.prevalence import PopulationEstimate, estimate_population
from trust.estimate.selection import Criterion, Search, SelectionRule

__all__ = [
    "CaptureHistories",
    "Criterion",
    "EstimateError",
    "PopulationEstimate",
    "ReasonCode",
    "Search",
    "SelectionRule",
    "estimate_population",
    "from_persons",
    "from_rows",
    "read_csv",
]
