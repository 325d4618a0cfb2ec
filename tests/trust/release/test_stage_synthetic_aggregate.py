"""The companion aggregate of the ``synthetic_microdata`` stream: in the same signed release as
the records, the combinations of up to the reporting length that the protected table of the
persons publishes, each count rounded down to a multiple of k, nothing rarer, and nothing a
linear-programme reader of the release can use to show a rarer one non-empty; checked before
signing; written by the consumer beside the synthetic CSV; and two releases never differ by less
than k in a count."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from consumers.writers import (
    SYNTHETIC_AGGREGATE,
    ReleaseWriter,
    companion_counts,
    release_metadata,
)
from schemas.release import Release
from tests.trust.store.builders import accepted
from tests.trust.synthesize.reader import Reader, combinations_of
from trust.release.stage import ReleaseStage
from trust.stewardship.policy import ReleasePlan, Subscription
from trust.store.eventstore import EventStore, Position
from trust.synthesize import release as synthetic_release
from trust.synthesize.aggregate import AggregateCount

from .test_noise_stage import DAY0, opened, recorded
from .test_stage_synthetic import SPEC, policy, stage, subscribe

K = SPEC.k  # 5
LENGTH = SPEC.synthetic.length if SPEC.synthetic else 0
_offset = itertools.count(10_000)

Person = tuple[str, int, str, int]  # sex, age, form, year
Combination = tuple[tuple[str, str], ...]

# common kinds, and rare ones: one child of 12-17, three men of 35-44 (fewer than k = 5 each)
PERSONS: list[tuple[Person, int]] = [
    (("Feminine", 23, "SexualExploitation", 2022), 23),
    (("Masculine", 30, "ForcedLabour", 2023), 12),
    (("Feminine", 30, "ForcedLabour", 2023), 7),
    (("Feminine", 23, "ForcedLabour", 2022), 6),
    (("Masculine", 41, "ForcedCriminality", 2022), 3),
    (("Feminine", 15, "SexualExploitation", 2023), 1),
]


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def add(store: EventStore, people: list[tuple[Person, int]], source: str = "police") -> None:
    events = [
        accepted(
            source_id=source,
            case_id=f"{source}-{next(_offset)}",
            victims=(("v1", sex, age),),
            year=year,
            forms=(form,),
        )
        for (sex, age, form, year), n in people
        for _ in range(n)
    ]
    store.append_batch([([ev], Position("t", 0, next(_offset))) for ev in events], "ingest")


def plan() -> ReleasePlan:
    return policy().plan(
        Subscription("uni", SPEC.name, "research"), SPEC, ["police"], int(DAY0 * 1000)
    )


def truth(store: EventStore) -> Counter[Combination]:
    """Every combination of up to the reporting length over the plan's persons, counted here."""
    counts: Counter[Combination] = Counter()
    for row in synthetic_release.sensitive_rows(store, plan()):
        cells = tuple(zip(SPEC.dimensions, row, strict=True))
        for n in range(1, LENGTH + 1):
            counts.update(itertools.combinations(cells, n))
    return counts


def published(release: Release) -> dict[Combination, int]:
    out: dict[Combination, int] = {}
    for columns, values, count in companion_counts(release):
        key = tuple(zip(columns, values, strict=True))
        assert key not in out
        out[key] = count
    return out


def companion(release: Release) -> list[AggregateCount]:
    return [AggregateCount(c, v, n) for c, v, n in companion_counts(release)]


def true_of(reader: Reader, combination: Combination) -> int:
    return int(reader.mask(combination) @ reader.truth)


def released(store: EventStore, s: ReleaseStage | None = None) -> Release:
    (made,) = (s or stage(store)).release_once()
    release: Release = opened(made.raw_bytes)
    return release


def test_the_release_carries_protected_counts_rounded_down(store: EventStore) -> None:
    add(store, PERSONS)
    subscribe(store)
    release = released(store)
    counts, true = published(release), truth(store)
    assert counts and release.metadata["synthesis_companion_combinations"] == str(len(counts))
    assert release.metadata["synthesis_reporting_length"] == str(LENGTH) == "3"
    for combination, count in counts.items():
        assert count % K == 0 and count >= K
        assert true[combination] - K < count <= true[combination]
        assert 1 <= len(combination) <= LENGTH
    # a subset of the combinations of k or more: secondary suppression hid some of them
    frequent = {c for c, n in true.items() if n >= K}
    assert set(counts) < frequent
    # e.g. women: 37 persons, published as 35; labour: 25 persons, exactly 25
    assert counts[(("sex", "Feminine"),)] == 35
    assert counts[(("form", "ForcedLabour"),)] == 25
    # the leak test: no combination held by fewer than k persons appears, at any length
    rare = {"12-17", "35-44", "ForcedCriminality"}
    assert not any(v in rare for c in counts for _, v in c)
    # nor can a reader of the whole release show one non-empty (an LP over every listed count)
    rows = synthetic_release.sensitive_rows(store, plan())
    table = synthetic_release.companion_table(SPEC.dimensions, rows)
    domain = tuple(table.categories[table.dimensions.index(d)] for d in SPEC.dimensions)
    reader = Reader(SPEC.dimensions, domain, Counter(rows), K)
    reader.read_companion(companion(release))
    small = [c for c in combinations_of(SPEC.dimensions, domain) if 1 <= true_of(reader, c) < K]
    assert len(small) > 10
    assert all(reader.lower(c) == 0 for c in small)
    # the signed release's digest covers the counts: they are part of what is signed
    assert release.metadata[SYNTHETIC_AGGREGATE].startswith('[[["sex"],["Feminine"],')


def test_a_companion_count_of_a_rare_combination_is_never_signed(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the aggregate ever to list a combination of fewer than k persons (here 3 men of
    35-44, listed at k), the checker's own count refuses the release; likewise a count that is
    not the true one rounded down."""
    import trust.synthesize.companion as companion_module

    made = companion_module.protected_companion

    def leaky(counts, columns, k, length):  # type: ignore[no-untyped-def]
        out = made(counts, columns, k, length)
        extra = AggregateCount(("age_group",), ("35-44",), k)
        return dataclasses.replace(out, counts=(*out.counts, extra))

    monkeypatch.setattr(companion_module, "protected_companion", leaky)
    add(store, PERSONS)
    subscribe(store)
    s = stage(store)
    assert s.release_once() == []
    assert [x.code for x in s.skipped] == ["leak"]
    assert recorded(store) == []

    def rounded_up(counts, columns, k, length):  # type: ignore[no-untyped-def]
        out = made(counts, columns, k, length)
        up = tuple(AggregateCount(a.columns, a.values, a.count + k) for a in out.counts)
        return dataclasses.replace(out, counts=up)

    monkeypatch.setattr(companion_module, "protected_companion", rounded_up)
    s = stage(store)
    assert s.release_once() == [] and [x.code for x in s.skipped] == ["aggregate_wrong"]


def test_the_consumer_writes_the_counts_beside_the_synthetic_csv(
    store: EventStore, tmp_path: Path
) -> None:
    add(store, PERSONS)
    subscribe(store)
    release = released(store)
    writer = ReleaseWriter(tmp_path)
    written = writer.write(release)
    folder = tmp_path / SPEC.name
    path = folder / "000001.aggregate.csv"
    assert path in written.paths
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "combination,sex,age_group,form,year,count"
    counts = published(release)
    assert len(lines) - 1 == len(counts)
    assert "sex:Feminine,Feminine,Total,Total,Total,35" in lines
    assert "form:ForcedLabour,Total,Total,ForcedLabour,Total,25" in lines
    # the synthetic CSV is unchanged: one row per record, the stream's columns
    assert (folder / "000001.csv").read_text().splitlines()[0] == ",".join(SPEC.dimensions)
    readme = (folder / "README.txt").read_text(encoding="utf-8")
    assert "Counts beside the records (NNNNNN.aggregate.csv)" in readme
    assert "rounded down to a multiple of 5" in readme and "never read a missing row as 0" in readme
    assert "or by more but hidden" in readme
    described = json.loads((folder / "000001.metadata.json").read_text(encoding="utf-8"))
    assert "000001.aggregate.csv" in described["describes"]
    assert described["companion_aggregate"]["combinations"] == len(counts)
    assert set(described["companion_aggregate"]["columns"]) == {
        "combination",
        *SPEC.dimensions,
        "count",
    }
    assert SYNTHETIC_AGGREGATE not in described["release_metadata"]
    assert release_metadata(release)["companion_aggregate"]["file"] == "000001.aggregate.csv"
    # a re-send completes a missing aggregate file and rewrites nothing else
    path.unlink()
    again = writer.write(release)
    assert again.duplicate and path in again.paths and path.read_text().splitlines() == lines
    # the trust and the consumer name the metadata entry alike
    assert SYNTHETIC_AGGREGATE == synthetic_release.COMPANION_AGGREGATE
    # a synthetic release without the aggregate (made before it existed): no aggregate file
    older = dataclasses.replace(
        release,
        sequence=2,
        metadata={k: v for k, v in release.metadata.items() if k != SYNTHETIC_AGGREGATE},
    )
    assert companion_counts(older) == []
    assert not any(p.name.endswith(".aggregate.csv") for p in writer.write(older).paths)
    assert "NNNNNN.aggregate.csv" not in (folder / "README.txt").read_text(encoding="utf-8")


def test_two_releases_never_differ_by_less_than_k_in_a_count(store: EventStore) -> None:
    """Between two releases a listed count moves by a multiple of k; so the changes a consumer
    can tell apart always include 0 or one of k or more, even where 1 … k-1 persons joined."""
    add(store, PERSONS)
    subscribe(store)
    s = stage(store)
    first, true_first = released(store, s), truth(store)
    add(store, [(("Feminine", 23, "SexualExploitation", 2022), 2)])  # 23 -> 25 of that kind
    second, true_second = released(store, s), truth(store)
    before, after = published(first), published(second)
    moved = [c for c in before if c in after and before[c] != after[c]]
    assert moved, "the two added persons move some rounded count"
    for c in set(before) | set(after):
        a, b = before.get(c), after.get(c)
        if a is None or b is None:  # listed in one release only: it crossed k
            continue
        assert (b - a) % K == 0
        possible = {y - x for x in range(a, a + K) for y in range(b, b + K)}
        assert 0 in possible or any(abs(d) >= K for d in possible)
    # the true change of what moved was 2 persons: the release shows a step of k, not the 2
    for c in moved:
        assert true_second[c] - true_first[c] == 2 and after[c] - before[c] == K
