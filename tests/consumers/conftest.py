"""Helpers for the consumer tests: hand-made signed releases (the consumer must take any release
the trust signs, so these tests do not go through the trust's code), the embedded log, files."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

import transport
from consumers.subscriber import Subscriber
from consumers.writers import ReleaseWriter
from schemas.keys import SigningKey
from schemas.release import Aggregate, Release, sign_release, verify_release
from transport import EventLog, topics

STREAM = "victims_by_sex_age_form"
DIMENSIONS = ("year", "sex", "age_group", "form")
T0 = 1_760_000_000_000
KEY = SigningKey.generate("trust")
KEYS = {KEY.key_id: KEY.public}


def make_release(
    sequence: int,
    counts: tuple[int | None, ...] = (12, None),
    *,
    issued_at_ms: int = T0,
    title: str = "Detected victims by sex, age group and form of exploitation",
    metadata: dict[str, str] | None = None,
    stream: str = STREAM,
) -> Release:
    """An unsigned release with one cell per count (``None``: suppressed), year 2020 onwards."""
    cells = tuple(
        Aggregate(
            DIMENSIONS, (str(2020 + i), "Feminine", "25-34", "ForcedLabour"), c, c is not None
        )
        for i, c in enumerate(counts)
    )
    total = Aggregate((), (), sum(c for c in counts if c is not None), True)
    return Release(
        stream=stream,
        release_id=f"r-{sequence}-{issued_at_ms}",
        sequence=sequence,
        issued_at_ms=issued_at_ms,
        title=title,
        unit="persons",
        period_start=2020,
        period_end=2020 + len(counts) - 1,
        dimensions=DIMENSIONS,
        aggregates=(*cells, total),
        k=10,
        method="primary suppression",
        source_count=2,
        sources=("src-a", "src-b"),
        labels={"sex": {"Feminine": "Feminine"}, "form": {"ForcedLabour": "Forced labour"}},
        metadata=metadata if metadata is not None else {"form_rule": "first listed form"},
    )


def signed(release: Release, key: SigningKey = KEY) -> bytes:
    """The release as the trust publishes it: signed Avro bytes."""
    return sign_release(release, key)


def verified(raw: bytes) -> Release:
    return verify_release(raw, KEYS)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and modification time (ns)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def publish(log: EventLog, *raws: bytes, consumer: str = "ministry") -> None:
    """Append messages to a subscription's topic, as the trust's publisher does."""
    for raw in raws:
        log.append(topics.release(consumer, STREAM), raw)
    log.flush()


def subscriber(log: EventLog, out: Path, group: str = "ministry") -> Subscriber:
    return Subscriber(log, STREAM, group, KEYS, ReleaseWriter(out))


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    """The real embedded SQLite log, in this test's folder."""
    with transport.open_log("sqlite:///" + str(tmp_path / "log.db")) as opened:
        yield opened


def release_with_margins(
    dimensions: tuple[str, ...],
    counts: Mapping[tuple[str, ...], int],
    *,
    sequence: int = 1,
    k: int = 10,
    hierarchies: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    labels: dict[str, dict[str, str]] | None = None,
    unit: str = "persons (detected victims)",
    inexact: frozenset[tuple[str, ...]] = frozenset(),
    stream: str = "victims_by_year_sex",
    title: str = "Detected victims by year of exploitation and sex",
) -> Release:
    """An unsigned release of ``counts`` (cells by leaf category) with every margin and the
    total, each parent of ``hierarchies`` as the sum of its children, and every value below k
    suppressed (primary suppression only: enough for a consumer, which takes what is signed).
    ``inexact``: keys (of cells) published as not exact."""
    hierarchies = hierarchies or {}
    leaves = [list(counts_order(counts, i)) for i in range(len(dimensions))]
    nodes = [[*leaves[i], *hierarchies.get(d, {})] for i, d in enumerate(dimensions)]

    def members(i: int, node: str) -> set[str]:
        return set(hierarchies.get(dimensions[i], {}).get(node, (node,)))

    aggregates = []
    for size in range(len(dimensions), -1, -1):
        for subset in itertools.combinations(range(len(dimensions)), size):
            for key in itertools.product(*(nodes[i] for i in subset)):
                value = sum(
                    n
                    for cell, n in counts.items()
                    if all(cell[i] in members(i, c) for i, c in zip(subset, key, strict=True))
                )
                shown = None if value < k else value
                exact = shown is not None and key not in inexact
                aggregates.append(
                    Aggregate(tuple(dimensions[i] for i in subset), key, shown, exact)
                )
    years = sorted(int(c) for c in leaves[0] if c.isdigit()) if dimensions[0] == "year" else []
    return Release(
        stream=stream,
        release_id=f"m-{sequence}",
        sequence=sequence,
        issued_at_ms=T0,
        title=title,
        unit=unit,
        period_start=years[0] if years else None,
        period_end=years[-1] if years else None,
        dimensions=dimensions,
        aggregates=tuple(aggregates),
        k=k,
        method="primary suppression below k",
        source_count=2,
        sources=("src-a", "src-b"),
        hierarchies=hierarchies,
        labels=labels or {},
        metadata={"counting_rule": "one count per person", "protection_level": str(k)},
    )


def counts_order(counts: Mapping[tuple[str, ...], int], i: int) -> dict[str, None]:
    """The categories of dimension ``i`` in the order the counts name them."""
    return {key[i]: None for key in counts}
