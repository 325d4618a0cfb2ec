"""How much of the sensitive data's structure a synthetic table keeps, length by length.

For each combination length 1 … the reporting length, over the sensitive combinations counted at
least ``k`` times (the ones a release at resolution ``k`` may show): the mean absolute error and
the mean relative error of the synthetic counts (0 when a combination is absent), and the share of
those combinations present in the synthetic data at all. With record expansion, runtime and the
checker's leak count, this is the report published beside the synthetic data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trust.synthesize.combinations import column_sets, group_rows
from trust.synthesize.data import Table
from trust.synthesize.errors import ColumnMismatch


@dataclass(frozen=True)
class LengthUtility:
    """Errors over the ``combinations`` sensitive combinations of one length with count ≥ k."""

    mae: float
    mre: float
    preserved: float
    combinations: int


@dataclass(frozen=True)
class UtilityReport:
    """The utility report; :meth:`to_json` gives the published shape."""

    k: int
    length: int
    mode: str
    seconds: float
    rows_in: int
    rows_out: int
    leaks: int
    lengths: dict[int, LengthUtility]

    @property
    def expansion(self) -> float:
        """Synthetic rows per sensitive row, minus one (0.66 means 66 % more rows)."""
        return self.rows_out / self.rows_in - 1.0 if self.rows_in else 0.0

    def mre_up_to(self, length: int) -> float:
        """Mean relative error pooled over every combination of length ≤ ``length``."""
        parts = [u for n, u in self.lengths.items() if n <= length]
        total = sum(u.combinations for u in parts)
        return sum(u.mre * u.combinations for u in parts) / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "length": self.length,
            "mode": self.mode,
            "seconds": round(self.seconds, 3),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "expansion": round(self.expansion, 4),
            "leaks": self.leaks,
            "lengths": {
                str(n): {
                    "mae": round(u.mae, 4),
                    "mre": round(u.mre, 4),
                    "preserved": round(u.preserved, 4),
                }
                for n, u in sorted(self.lengths.items())
            },
        }


def length_utility(
    sensitive: Table, synthetic: Table, k: int, length: int
) -> dict[int, LengthUtility]:
    """Per combination length 1 … ``length``: errors of ``synthetic``'s counts against ``sensitive``'s."""
    if sensitive.columns != synthetic.columns or sensitive.vocab != synthetic.vocab:
        raise ColumnMismatch("synthetic and sensitive tables must share columns and values")
    n = sensitive.n_rows
    both = np.concatenate([sensitive.codes, synthetic.codes])
    sums: dict[int, list[float]] = {n_: [0.0, 0.0, 0.0, 0.0] for n_ in range(1, length + 1)}
    for cols in column_sets(sensitive.n_columns, length):
        groups = group_rows(both, cols)
        g_sen, g_syn = groups.group[:n], groups.group[n:]
        size = groups.count.shape[0]
        sen = np.bincount(g_sen[g_sen >= 0], minlength=size)
        syn = np.bincount(g_syn[g_syn >= 0], minlength=size)
        keep = sen >= k
        err = np.abs(syn[keep] - sen[keep]).astype(np.float64)
        acc = sums[len(cols)]
        acc[0] += float(err.sum())
        acc[1] += float((err / sen[keep]).sum())
        acc[2] += float((syn[keep] > 0).sum())
        acc[3] += float(keep.sum())
    out: dict[int, LengthUtility] = {}
    for n_, (abs_sum, rel_sum, present, total) in sums.items():
        if total == 0:
            out[n_] = LengthUtility(0.0, 0.0, 1.0, 0)
        else:
            out[n_] = LengthUtility(abs_sum / total, rel_sum / total, present / total, int(total))
    return out
