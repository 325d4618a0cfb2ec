"""Published example tables, as the R packages ship them (see ``data/README.md``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trust.estimate.histories import CaptureHistories, read_csv

DATA = Path(__file__).parent / "data"


@pytest.fixture
def published() -> Callable[[str], CaptureHistories]:
    def load(name: str) -> CaptureHistories:
        return read_csv(DATA / f"{name}.csv")[()]

    return load
