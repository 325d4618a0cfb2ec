"""Small categorical tables for the synthesis tests, hand-made and random."""

from __future__ import annotations

from hypothesis import strategies as st

from trust.synthesize.data import Table

# The textbook example of seeded synthesis at k = 2: five people, gender, broad age group and a
# forced-labour flag; one (Female, 18-20, 1) is unique and must be broken up
TEXTBOOK_COLUMNS = ("gender", "age", "forced_labour")
TEXTBOOK_ROWS = (
    ("Female", "18-20", "1"),
    ("Male", "18-20", "1"),
    ("Male", "18-20", "1"),
    ("Female", "30-38", ""),
    ("Female", "30-38", ""),
)


def textbook() -> Table:
    return Table.from_rows(TEXTBOOK_COLUMNS, TEXTBOOK_ROWS)


@st.composite
def tables(draw: st.DrawFn, max_columns: int = 4, max_rows: int = 60) -> Table:
    """A random table: 1-``max_columns`` columns of 1-4 values each, some cells missing."""
    m = draw(st.integers(1, max_columns))
    sizes = [draw(st.integers(1, 4)) for _ in range(m)]
    n = draw(st.integers(1, max_rows))
    cell = [st.sampled_from(["", *(f"v{i}" for i in range(s))]) for s in sizes]
    rows = draw(st.lists(st.tuples(*cell), min_size=n, max_size=n))
    return Table.from_rows([f"c{j}" for j in range(m)], rows)
