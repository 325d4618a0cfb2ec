"""The release's companion aggregate, read by an independent linear-programme reader
(``reader.py``): over every listed count (each one ``c … c + k - 1``), no combination held by
1 … k - 1 persons has a least possible count of 1 or more, and none is pinned — on random small
populations and on one of the simulator's. Beside the synthetic records' single counts, the
companion shows nothing the records alone do not. The reader is not blind: it shows a small
combination non-empty in the command line's unprotected aggregate of a hand-made table."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from types import MappingProxyType

from hypothesis import example, given, settings
from hypothesis import strategies as st

from producers.simulate.population import generate
from schemas.rules import age_group
from tests.trust.synthesize.reader import Combination, Reader, combinations_of
from trust.release.aggregate import CountTable
from trust.release.streams import MULTIPLE, VICTIMS_BY_SEX_AGE_FORM
from trust.synthesize import Table
from trust.synthesize.aggregate import AggregateCount, companion_aggregate
from trust.synthesize.check import check_aggregate
from trust.synthesize.companion import protected_companion, protected_listing
from trust.synthesize.release import companion_table

DIMS = ("d0", "d1", "d2", "d3")
#: the synthetic table's column order, unlike the count table's
COLUMNS = ("d2", "d0", "d3", "d1")


def count_table(
    categories: tuple[tuple[str, ...], ...], rows: Sequence[tuple[str, ...]]
) -> CountTable:
    cells = Counter(rows)
    counts = {key: cells.get(key, 0) for key in itertools.product(*categories)}
    return CountTable("t", DIMS, categories, MappingProxyType(counts), len(rows), None, None)


@st.composite
def populations(draw: st.DrawFn) -> tuple[tuple[tuple[str, ...], ...], list[tuple[str, ...]]]:
    """A small population over four attributes of 2-4 categories, skewed so that rare
    combinations are common."""
    sizes = [draw(st.integers(2, 4)) for _ in DIMS]
    categories = tuple(tuple(f"v{i}" for i in range(n)) for n in sizes)
    n = draw(st.integers(0, 120))
    rng = random.Random(draw(st.integers(0, 2**32)))
    weights = [[rng.random() ** 2 for _ in c] for c in categories]
    rows = [
        tuple(rng.choices(c, w)[0] for c, w in zip(categories, weights, strict=True))
        for _ in range(n)
    ]
    return categories, rows


#: A population (columns d0, d1, d2, d3) where a count the protected table publishes, withheld
#: beside the records, follows from the listed ones to within one: (d2 v1, d0 v1) holds 35 and
#: reads as 34 … 35 from d2 v1 (60 … 62), d0 v1 (51 … 53) and their listed crossings. Hypothesis
#: found it; it is not hidden by the protection, so the width rule does not apply to it.
WITHHELD_FOLLOWS = (
    (('v0', 'v1'), ('v0', 'v1', 'v2', 'v3'), ('v0', 'v1'), ('v0', 'v1')),
    [row for row, n in {
    ('v0', 'v0', 'v0', 'v1'): 3,
    ('v0', 'v0', 'v1', 'v0'): 3,
    ('v0', 'v0', 'v1', 'v1'): 6,
    ('v0', 'v1', 'v0', 'v1'): 2,
    ('v0', 'v3', 'v0', 'v0'): 1,
    ('v0', 'v3', 'v0', 'v1'): 6,
    ('v0', 'v3', 'v1', 'v0'): 6,
    ('v0', 'v3', 'v1', 'v1'): 12,
    ('v1', 'v0', 'v0', 'v0'): 1,
    ('v1', 'v0', 'v0', 'v1'): 5,
    ('v1', 'v0', 'v1', 'v0'): 2,
    ('v1', 'v0', 'v1', 'v1'): 11,
    ('v1', 'v1', 'v0', 'v1'): 1,
    ('v1', 'v1', 'v1', 'v1'): 4,
    ('v1', 'v3', 'v0', 'v0'): 1,
    ('v1', 'v3', 'v0', 'v1'): 8,
    ('v1', 'v3', 'v1', 'v0'): 3,
    ('v1', 'v3', 'v1', 'v1'): 15,
    }.items() for _ in range(n)],
)  # fmt: skip


def as_combination(a: AggregateCount) -> Combination:
    return tuple(zip(a.columns, a.values, strict=True))


def read(
    columns: tuple[str, ...],
    domain: tuple[tuple[str, ...], ...],
    rows: Sequence[tuple[str, ...]],
    listed: Sequence[AggregateCount],
    k: int,
    *,
    records: bool = False,
) -> Reader:
    """The reader of ``listed``; with ``records``, also knowing the records' single counts and
    the count stream's cells of k or more (all a researcher may hold beside the companion)."""
    reader = Reader(columns, domain, Counter(rows), k)
    reader.read_companion(listed)
    if records:
        reader.read_record_singles()
        reader.read_exact_cells()
    return reader


def assert_nothing_small_shown(
    reader: Reader,
    listed: tuple[AggregateCount, ...],
    *,
    zeros: bool = True,
    hidden: bool = True,
    uppers: bool = True,
    withheld: frozenset[Combination] = frozenset(),
) -> int:
    """Every combination of 1 … all attributes held by fewer than k persons (with ``zeros``,
    those of none too): least count 0 and, with ``uppers``, a greatest of k more than its own
    (it cannot be told from k or more); with ``hidden``, every one of k or more the protection
    hid (unlisted, and not ``withheld``) not narrowed below k. Returns how many small ones were
    read. A withheld count is one the protected table publishes: withholding it serves only the
    reading beside the records, and its value may follow from the others."""
    k = reader.k
    shown = {as_combination(a) for a in listed} | withheld
    length = max((len(c) for c in shown), default=0)
    small = 0
    for c in combinations_of(reader.columns, reader.domain):
        true = int(reader.mask(c) @ reader.truth)
        if true < k and (true or zeros):
            small += 1
            assert reader.lower(c) == 0, f"a combination of {true} shown non-empty"
            if uppers:
                assert reader.upper(c, true + k) >= true + k, "a small combination narrowed"
        elif hidden and true >= k and len(c) <= length and c not in shown:
            lo = reader.lower(c)
            assert reader.upper(c, lo + k) - lo >= k, "a hidden combination narrowed below k"
    return small


@settings(max_examples=40, deadline=None)
@given(population=populations(), k=st.sampled_from([3, 5, 10]))
@example(population=WITHHELD_FOLLOWS, k=3)
def test_no_listed_count_lets_a_reader_show_a_small_combination(
    population: tuple[tuple[tuple[str, ...], ...], list[tuple[str, ...]]], k: int
) -> None:
    categories, rows = population
    counts = count_table(categories, rows)
    companion = protected_companion(counts, COLUMNS, k, 3)
    before, _ = protected_listing(counts, COLUMNS, k, 3)
    withheld = frozenset(as_combination(a) for a in before) - {
        as_combination(a) for a in companion.counts
    }
    assert len(withheld) == companion.withheld
    at = [DIMS.index(c) for c in COLUMNS]
    sensitive = [tuple(r[j] for j in at) for r in rows]
    domain = tuple(categories[j] for j in at)
    # the promise each count keeps alone, on the checker's own counting path
    verdict = check_aggregate(
        COLUMNS, sensitive, ((a.columns, a.values, a.count) for a in companion.counts), k, 3
    )
    assert verdict.ok and verdict.listed == len(companion.counts)
    assert all(a.count % k == 0 and a.count >= k for a in companion.counts)
    assert all(list(a.columns) == sorted(a.columns, key=COLUMNS.index) for a in companion.counts)
    # together, read as a linear programme
    reader = read(COLUMNS, domain, sensitive, companion.counts, k)
    assert_nothing_small_shown(reader, companion.counts, withheld=withheld)
    # beside the records' single counts and the count stream's cells: nothing they alone do
    # not show already
    alone = read(COLUMNS, domain, sensitive, [], k, records=True)
    both = read(COLUMNS, domain, sensitive, companion.counts, k, records=True)
    for c in combinations_of(COLUMNS, domain):
        true = int(both.mask(c) @ both.truth)
        if 1 <= true < k and both.lower(c) >= 1:
            assert alone.lower(c) >= 1, "the companion shows a small combination"


def shown_beside(
    columns: tuple[str, ...],
    domain: tuple[tuple[str, ...], ...],
    rows: list[tuple[str, ...]],
    listed: Sequence[AggregateCount],
    k: int,
) -> tuple[int, int]:
    """Combinations of 1 … k - 1 persons shown non-empty beside the records and the count
    stream's cells: (without the companion, with it but not without)."""
    alone = read(columns, domain, rows, [], k, records=True)
    both = read(columns, domain, rows, listed, k, records=True)
    before = added = 0
    for c in combinations_of(columns, domain):
        if 1 <= int(both.mask(c) @ both.truth) < k and both.lower(c) >= 1:
            if alone.lower(c) >= 1:
                before += 1
            else:
                added += 1
    return before, added


def test_the_reader_shows_what_unprotected_rounding_gives_away() -> None:
    """19 persons of (x, p) and one of (x, q), k = 10: rounded down, x is listed as 20 and
    (x, p) as 10, so (x, q) holds at least 20 - 19 = 1 — a lone person shown to exist. The
    protected companion of the same persons lists nothing that shows it."""
    rows = [("x", "p")] * 19 + [("x", "q")] + [("y", "p")] * 12
    columns, domain, k = ("a", "b"), (("x", "y"), ("p", "q")), 10
    unprotected = companion_aggregate(Table.from_rows(columns, rows), k, 2)
    reader = read(columns, domain, rows, unprotected, k)
    assert reader.lower((("a", "x"), ("b", "q"))) == 1
    assert reader.lower((("b", "q"),)) == 1

    categories = (("x", "y"), ("p", "q"), ("r",), ("s",))
    four = [(a, b, "r", "s") for a, b in rows]
    companion = protected_companion(count_table(categories, four), DIMS, k, 3)
    reader = read(DIMS, categories, four, companion.counts, k)
    assert reader.lower((("d0", "x"), ("d1", "q"))) == 0
    assert_nothing_small_shown(reader, companion.counts)


def simulated_rows(persons: int, seed: int) -> list[tuple[str, ...]]:
    """The simulator's population, one row per victim of each event, classified as the stream
    classifies persons (sex, age group, form, year)."""
    classes = {c.dimension: c for c in VICTIMS_BY_SEX_AGE_FORM.classifications()}
    population = generate(random.Random(f"{seed}:population"), persons)
    rows: list[tuple[str, ...]] = []
    for event in population.events:
        form = event.forms[0] if len(set(event.forms)) == 1 else MULTIPLE
        for v in event.victims:
            rows.append(
                (
                    classes["sex"].category_of(v.person.sex),
                    classes["age_group"].category_of(age_group(v.age)),
                    classes["form"].category_of(form),
                    str(event.year),
                )
            )
    return rows


def test_a_simulated_population_of_two_thousand() -> None:
    """The demo's population (2,069 victims over 7 years, the stream's every category): the
    protected companion lists counts of k or more only, rounded down, and the reader shows none
    of the 500-odd small combinations non-empty; beside the records and the count stream's cells
    it shows none they do not, though the table's counts before withholding do."""
    columns, k = ("sex", "age_group", "form", "year"), 10
    rows = simulated_rows(2000, 7)
    counts = companion_table(columns, rows)
    companion = protected_companion(counts, columns, k, 3)
    assert len(companion.counts) > 100 and companion.hidden > 0
    verdict = check_aggregate(
        columns, rows, ((a.columns, a.values, a.count) for a in companion.counts), k, 3
    )
    assert verdict.ok and verdict.unlisted > 0  # secondary suppression hid some of k or more
    domain = tuple(counts.categories[counts.dimensions.index(c)] for c in columns)
    reader = read(columns, domain, rows, companion.counts, k)
    assert assert_nothing_small_shown(reader, companion.counts, zeros=False, hidden=False) > 300
    # beside the records and the count stream's cells: what the protected table alone publishes
    # shows some small combinations; what the companion keeps of it shows none they do not
    unwithheld, _ = protected_listing(counts, columns, k, 3)
    assert shown_beside(columns, domain, rows, unwithheld, k)[1] > 0
    assert shown_beside(columns, domain, rows, companion.counts, k) == (0, 0)
    assert companion.withheld > 0


#: A population (columns d2, d0, d3, d1) where the records' single counts and the table's
#: protected counts together show a combination of three persons non-empty: the table hid the
#: margin d1 = v2 (17 persons), the records round it to 15, the table lists (d2 v1, d1 v2) as
#: 10 (at most 14), so (d2 v0, d1 v2) holds at least 15 - 14 = 1.
BESIDE_CELLS = {
    ("v1", "v1", "v1", "v2"): 2, ("v1", "v0", "v1", "v0"): 13, ("v0", "v0", "v0", "v0"): 3,
    ("v1", "v0", "v0", "v0"): 4, ("v0", "v0", "v1", "v0"): 3, ("v1", "v0", "v1", "v2"): 8,
    ("v1", "v1", "v2", "v0"): 1, ("v1", "v0", "v1", "v3"): 7, ("v1", "v1", "v1", "v3"): 1,
    ("v1", "v0", "v1", "v1"): 5, ("v0", "v0", "v1", "v3"): 3, ("v0", "v0", "v0", "v1"): 3,
    ("v1", "v0", "v0", "v2"): 3, ("v0", "v1", "v1", "v0"): 1, ("v0", "v0", "v2", "v2"): 1,
    ("v0", "v0", "v1", "v2"): 1, ("v1", "v0", "v0", "v1"): 4, ("v0", "v0", "v0", "v2"): 1,
    ("v1", "v1", "v0", "v2"): 1, ("v1", "v1", "v2", "v3"): 1, ("v1", "v0", "v0", "v3"): 5,
    ("v1", "v1", "v2", "v1"): 1, ("v0", "v0", "v1", "v1"): 3, ("v1", "v1", "v0", "v1"): 1,
    ("v0", "v1", "v0", "v1"): 1, ("v0", "v0", "v0", "v3"): 2, ("v1", "v0", "v2", "v1"): 1,
    ("v0", "v0", "v2", "v3"): 1,
}  # fmt: skip


def test_beside_the_records_a_count_that_would_show_a_small_combination_is_withheld() -> None:
    from trust.synthesize.beside import companion_beside_records

    k = 5
    sensitive = [cell for cell, n in BESIDE_CELLS.items() for _ in range(n)]
    domain = (("v0", "v1"), ("v0", "v1"), ("v0", "v1", "v2"), ("v0", "v1", "v2", "v3"))
    at = [COLUMNS.index(d) for d in DIMS]
    counts = count_table(tuple(domain[j] for j in at), [tuple(r[j] for j in at) for r in sensitive])
    small: Combination = (("d2", "v0"), ("d1", "v2"))
    telling = AggregateCount(("d2", "d1"), ("v1", "v2"), 10)
    # the reader: the records alone do not show it; with the listed count they do
    alone = read(COLUMNS, domain, sensitive, [], k, records=True)
    assert int(alone.mask(small) @ alone.truth) == 3 and alone.lower(small) == 0
    assert read(COLUMNS, domain, sensitive, [telling], k, records=True).lower(small) == 1
    # the trust's own reading withholds it (and what shares a value with the small one)
    other = AggregateCount(("d0",), ("v0",), 70)
    beside = companion_beside_records(counts, [other, telling], k)
    assert beside.counts == (other,) and beside.withheld == 1 and beside.lps > 0
    # the whole protected companion of that population keeps the rule
    companion = protected_companion(counts, COLUMNS, k, 3)
    both = read(COLUMNS, domain, sensitive, companion.counts, k, records=True)
    assert both.lower(small) == 0
