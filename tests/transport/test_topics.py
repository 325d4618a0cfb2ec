"""Topic names: one place, validated source ids and stream names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transport import topics

VALID = st.from_regex(r"[a-z][a-z0-9_-]{1,62}", fullmatch=True)


def test_names() -> None:
    assert topics.inbound("police") == "tip.inbound.police"
    assert topics.rejected("police") == "tip.rejected.police"
    assert topics.release("ministry", "monthly_counts") == "tip.release.ministry.monthly_counts"
    assert topics.inbound("police").startswith(topics.INBOUND_PREFIX)


@given(VALID)
def test_source_of_inbound_inverts_inbound(source: str) -> None:
    assert topics.source_of_inbound(topics.inbound(source)) == source


@pytest.mark.parametrize(
    "bad",
    ["", "a", "Police", "1police", "-x", "po.lice", "po lice", "x" * 64, "caf\u00e9", "p/x"],
)
def test_invalid_names_are_refused(bad: str) -> None:
    for make in (topics.inbound, topics.rejected, topics.validate_name):
        with pytest.raises(ValueError):
            make(bad)
    with pytest.raises(ValueError):
        topics.release(bad, "stream")
    with pytest.raises(ValueError):
        topics.release("ministry", bad)


def test_longest_valid_name() -> None:
    assert topics.validate_name("a" * 63) == "a" * 63


@pytest.mark.parametrize("topic", ["tip.rejected.police", "tip.inbound.", "tip.inbound.Bad", "x"])
def test_source_of_inbound_refuses_other_topics(topic: str) -> None:
    with pytest.raises(ValueError):
        topics.source_of_inbound(topic)
