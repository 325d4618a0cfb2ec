"""Random small tables with margins and hierarchies, shared by the disclosure tests."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from trust.release.disclosure.table import Dimension, HierarchicalTable, build_table

# small counts, zeros and counts just around k = 5 are the interesting ones
COUNTS = st.sampled_from([0, 0, 1, 2, 4, 5, 6, 9, 15, 40])


@st.composite
def tables(draw: st.DrawFn, max_dims: int = 3) -> HierarchicalTable:
    """A table of 1..max_dims dimensions with 1..4 categories each, some with a parent."""
    dims = []
    for d in range(draw(st.integers(1, max_dims))):
        n = draw(st.integers(1, 4))
        cats = tuple(f"c{j}" for j in range(n))
        hier: tuple[tuple[str, tuple[str, ...]], ...] = ()
        if n >= 3 and draw(st.booleans()):
            hier = (("p", cats[:2]),)
        dims.append(Dimension(f"d{d}", cats, hier))
    keys = list(itertools.product(*(d.categories for d in dims)))
    values = draw(st.lists(COUNTS, min_size=len(keys), max_size=len(keys)))
    counts = dict(zip(keys, values, strict=True))
    zeros = [k for k, v in counts.items() if v == 0]
    structural = draw(st.lists(st.sampled_from(zeros), max_size=2)) if zeros else []
    return build_table(dims, counts, structural)
