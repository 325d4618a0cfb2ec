"""Human-readable labels of the code lists (HTCDS v2.0, CC BY 4.0: ``codelists/LICENSE-HTCDS.md``).

Codes travel as HTCDS ``value_name`` symbols (``SexualExploitation``); people read their
``value_label`` ("Sexual exploitation"). Releases carry the labels of the codes they use.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

CODELISTS_DIR = Path(__file__).parent / "codelists"


@cache
def htcds_labels(field: str) -> Mapping[str, str]:
    """``value_name -> value_label`` of one HTCDS field (e.g. ``prs_Gender``); empty if unknown."""
    with open(CODELISTS_DIR / "htcds_v2.0_codelists.csv", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["field"] == field]
    rows.sort(key=lambda r: int(r["order"]))
    return MappingProxyType({r["value_name"]: r["value_label"] for r in rows})
