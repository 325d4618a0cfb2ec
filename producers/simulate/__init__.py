"""A seeded simulation of agencies' trafficking case exports, with the hidden truth behind them.

``simulate(seed, persons, out_dir)`` draws a population of trafficked persons and TIP events
(``population``), lets five agencies with different coverage and formality detect some of them
(``agencies``), writes each agency's export in its own format with realistic noise (``export``,
``noise``) and the truth only tests read. ``faults.bad_rows`` corrupts an export on purpose.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from producers.simulate.agencies import SOURCES, detect
from producers.simulate.export import write_exports, write_truth
from producers.simulate.population import generate

__all__ = ["SOURCES", "SimulationSummary", "simulate"]


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """What a simulation wrote: rows per source, the true numbers behind them, and where."""

    out_dir: Path
    persons: int
    events: int
    rows: dict[str, int]


def simulate(
    seed: int, persons: int = 2000, out_dir: Path | str = Path("sim")
) -> SimulationSummary:
    """Write ``DIR/<source>/records.csv`` + ``mapping.yaml`` + ``agreement.yaml`` per agency and
    ``DIR/truth.csv``.

    The same seed and size give byte-identical files (no wall clock, no hash-seed dependence).
    """
    if persons < 1:
        raise ValueError("persons must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    population = generate(random.Random(f"{seed}:population"), persons)
    detections = detect(random.Random(f"{seed}:detection"), population)
    rows, truth = write_exports(seed, detections, out)
    write_truth(out / "truth.csv", truth)
    return SimulationSummary(out, len(population.persons), len(population.events), rows)
