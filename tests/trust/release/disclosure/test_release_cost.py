"""The cheaper bookkeeping of the release check gives exactly what the plain computation gives.

The four-way stream's release check spends most of its CPU in HiGHS; around it, a few steps were
made cheaper without changing a single number: the audit's hints scored once per distinct class
set (``_extremes``), the class sets' ids and components without a sort per set (``_set_ids``), a
proof LP's target read from the CSR arrays (``CellClasses.classes_of``), a witness's touch and
inside totals in one product (``CellClasses.reach``) and the aggregates' breakdowns built
dimension by dimension. Each is checked here against the plain computation it replaces, on
random input; the release itself (suppressed aggregates, audit verdicts, the audit's tables) is
unchanged (``benchmarks/profile_release.py`` prints digests to compare two versions of the code).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trust.release.disclosure.strategies import tables
from trust.release.disclosure.audit import _extremes, _set_ids
from trust.release.disclosure.moves import CellClasses
from trust.release.disclosure.secondary import primary_mask
from trust.release.disclosure.table import TOTAL, HierarchicalTable, incidence


@st.composite
def class_sets(draw: st.DrawFn) -> tuple[sp.csr_matrix, np.ndarray]:
    """A 0/1 matrix (rows: aggregates, columns: classes) with repeated rows and empty ones, and
    a component label per column."""
    n_cols = draw(st.integers(1, 8))
    distinct = draw(
        st.lists(st.lists(st.booleans(), min_size=n_cols, max_size=n_cols), min_size=1, max_size=5)
    )
    picks = draw(st.lists(st.integers(0, len(distinct) - 1), min_size=1, max_size=12))
    dense = np.array([distinct[p] for p in picks], dtype=np.float64)
    comp = np.array(draw(st.lists(st.integers(0, 3), min_size=n_cols, max_size=n_cols)))
    return sp.csr_matrix(dense), comp


def _set_ids_plain(rows: sp.csr_matrix, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What ``_set_ids`` computed before: a sort of the components of every new set."""
    seen: dict[bytes, int] = {}
    ids = np.empty(rows.shape[0], dtype=np.int64)
    comps: list[int] = []
    for r in range(rows.shape[0]):
        cols = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
        key = cols.tobytes()
        if key not in seen:
            seen[key] = len(seen)
            labels = np.unique(comp[cols])
            comps.append(int(labels[0]) if labels.size == 1 else (-1 if labels.size else -2))
        ids[r] = seen[key]
    out = np.asarray(comps, dtype=np.int64)
    empty = np.flatnonzero(out == -2)
    out[empty] = (comp.max() + 1 if comp.size else 0) + np.arange(empty.size)
    return ids, out


@settings(max_examples=200, deadline=None)
@given(class_sets())
def test_set_ids_are_the_plain_ones(case: tuple[sp.csr_matrix, np.ndarray]) -> None:
    rows, comp = case
    ids, comps = _set_ids(rows, comp)
    plain_ids, plain_comps = _set_ids_plain(rows, comp)
    assert np.array_equal(ids, plain_ids)
    assert np.array_equal(comps, plain_comps)


@settings(max_examples=200, deadline=None)
@given(class_sets(), st.data())
def test_extremes_are_those_of_the_whole_matrix(
    case: tuple[sp.csr_matrix, np.ndarray], data: st.DataObject
) -> None:
    rows, comp = case
    set_id, _ = _set_ids(rows, comp)
    # repeated fixed parts (rows of one set with the same and with other fixed parts), values
    # that tie and values that differ in the last bits
    fixed = np.array(
        data.draw(
            st.lists(
                st.sampled_from([0.0, 1.0, 3.0, 0.1 + 0.2, 1e16]),
                min_size=rows.shape[0],
                max_size=rows.shape[0],
            )
        )
    )
    n_tables = data.draw(st.integers(1, 6))
    z = np.array(
        data.draw(
            st.lists(
                st.sampled_from([0.0, 0.3, 1.0, 2.0, 0.1 + 0.2, 7.5]),
                min_size=rows.shape[1] * n_tables,
                max_size=rows.shape[1] * n_tables,
            )
        )
    ).reshape(rows.shape[1], n_tables)
    whole = fixed[:, None] + np.asarray(rows @ z)
    at = np.arange(whole.shape[0])
    for largest in (True, False):
        best, value = _extremes(rows, set_id, fixed, z, largest=largest)
        plain = whole.argmax(axis=1) if largest else whole.argmin(axis=1)
        assert np.array_equal(best, plain)
        assert np.array_equal(value, whole[at, plain])


@settings(max_examples=100, deadline=None)
@given(tables(), st.data())
def test_class_rows_and_reach_are_the_matrices(t: HierarchicalTable, data: st.DataObject) -> None:
    sup = primary_mask(t, 5)
    extra = data.draw(st.lists(st.booleans(), min_size=t.size, max_size=t.size))
    sup = sup | np.array(extra, dtype=bool)
    classes = CellClasses.of(t, incidence(t), sup)
    z = np.array(
        data.draw(
            st.lists(
                st.floats(0, 50, allow_nan=False), min_size=classes.size, max_size=classes.size
            )
        )
    )
    for i in range(t.size):
        assert np.array_equal(classes.classes_of(i, up=True), classes.touch[i].indices)
        assert np.array_equal(classes.classes_of(i, up=False), classes.inside[i].indices)
    high, low = classes.reach(z)
    assert np.array_equal(high, classes.touch @ z)
    assert np.array_equal(low, classes.inside @ z)


@settings(max_examples=100, deadline=None)
@given(tables())
def test_breakdowns_name_the_dimensions_of_each_key(t: HierarchicalTable) -> None:
    names = tuple(d.name for d in t.dimensions)
    for i, key in enumerate(t.keys()):
        kept = [(d, n) for d, n in zip(names, key, strict=True) if n != TOTAL]
        assert t.breakdown(i) == (tuple(d for d, _ in kept), tuple(n for _, n in kept))
        assert t.by_breakdown[t.breakdown(i)] == i
