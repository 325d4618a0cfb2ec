"""Continual release of a cumulative series: OpenDP's b-ary tree, every node drawn once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trust.release.disclosure.continual import ContinualCounter, TreeShape
from trust.release.disclosure.dp import PrivacyCost, load_opendp

shapes = st.sampled_from([TreeShape(8, 2), TreeShape(16, 2), TreeShape(9, 3), TreeShape(16, 4)])


@settings(max_examples=20, deadline=None)  # the first example loads OpenDP
@given(shapes, st.data())
def test_the_node_layout_is_opendps(shape: TreeShape, data: st.DataObject) -> None:
    leaves = data.draw(st.lists(st.integers(0, 50), min_size=shape.leaves, max_size=shape.leaves))
    dp = load_opendp()
    tree = dp.t.make_b_ary_tree(
        dp.vector_domain(dp.atom_domain(T="i64")),
        dp.l1_distance(T="i64"),
        shape.leaves,
        shape.branching,
    )
    nodes = tree(leaves)
    assert len(nodes) == shape.size and tree.map(1) == shape.levels
    for node in range(shape.size):
        start, end = shape.span(node)
        assert nodes[node] == sum(leaves[start:end])


@given(shapes, st.data())
def test_a_prefix_is_covered_by_few_complete_nodes(shape: TreeShape, data: st.DataObject) -> None:
    months = data.draw(st.integers(0, shape.leaves))
    cover = shape.cover(months)
    spans = sorted(shape.span(n) for n in cover)
    starts, ends = [s for s, _ in spans], [e for _, e in spans]
    assert starts == [0, *ends[:-1]][: len(starts)]  # contiguous from month 0
    assert (ends[-1] if ends else 0) == months
    assert len(cover) <= (shape.branching - 1) * shape.levels


def test_every_node_is_drawn_once_and_published_values_never_change() -> None:
    counter = ContinualCounter(TreeShape.for_horizon(12), PrivacyCost(1.0))
    assert counter.noise_scale == 5.0  # 16 leaves: a person is in 5 nodes, scale 5 / epsilon
    months: list[int] = []
    published: dict[int, int] = {}
    for month in range(12):
        months.append(20 + month)
        before = dict(counter.drawn)
        new = counter.advance(months)
        assert not set(new) & set(before)  # no node drawn twice
        assert {n: counter.drawn[n] for n in before} == before  # earlier draws kept as they were
        assert counter.advance(months) == {}  # nothing new to draw: no fresh noise to average
        published[month + 1] = counter.cumulative(month + 1)
        # every earlier month's cumulative value is still what was published then
        assert all(counter.cumulative(t) == v for t, v in published.items())
    assert len(counter.drawn) == sum(1 for n in range(31) if counter.shape.span(n)[1] <= 12)
