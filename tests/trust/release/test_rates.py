"""Rates per 100,000 from disclosure-controlled counts: suppressed counts give suppressed rates."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.keys import SigningKey
from schemas.release import Aggregate, Release, sign_release, verify_release
from trust.release.aggregate import PersonFacts, aggregate
from trust.release.disclosure.margins import protect_margins
from trust.release.population import Population, parse_population
from trust.release.publish import build_release
from trust.release.rates import (
    NotARateStream,
    implied_counts,
    rate_of,
    rate_release,
    rated_digest,
)
from trust.release.streams import SDG_16_2_2, VICTIMS_BY_YEAR_SEX, Rate, StreamSpec

SOURCE = "Statistics office, mid-year estimates"
DIMS = SDG_16_2_2.dimensions


def population() -> Population:
    rows = ["year,sex,age_group,population"]
    for year in (2022, 2023):
        for sex, base in (("Feminine", 200_000), ("Masculine", 100_000)):
            for i, age in enumerate(("0-11", "12-17", "18-24", "25-34", "35-44", "45+")):
                rows.append(f"{year},{sex},{age},{base * (i + 1)}")
    return parse_population("\n".join(rows).encode(), SOURCE)


def sdg_release(aggregates: tuple[Aggregate, ...]) -> Release:
    return Release(
        stream=SDG_16_2_2.name,
        release_id="r1",
        sequence=1,
        issued_at_ms=1_760_000_000_000,
        title=SDG_16_2_2.title,
        unit=SDG_16_2_2.unit,
        period_start=2022,
        period_end=2023,
        dimensions=DIMS,
        aggregates=aggregates,
        k=10,
        method="primary suppression",
        source_count=1,
        sources=(),
        metadata={"k": "10"},
    )


def agg(value: int | None, **key: str) -> Aggregate:
    dims = tuple(d for d in DIMS if d in key)
    return Aggregate(dims, tuple(key[d] for d in dims), value, value is not None)


def test_rates_per_100000_of_the_aggregates_population() -> None:
    release = sdg_release(
        (
            agg(20, year="2022", sex="Feminine", age_group="0-11", form="ForcedLabour"),
            agg(None, year="2022", sex="Feminine", age_group="12-17", form="ForcedLabour"),
            agg(30, year="2022", sex="Feminine", age_group="0-17"),  # a parent: 200k + 400k
            agg(45, year="2022", sex="Masculine"),  # every age: 2.1 million
            agg(90, year="2023"),  # every sex and age: 6.3 million
            agg(12, year="2022", sex="Unknown"),  # no population for sex not recorded
            agg(11, year="2022", sex="OtherGenderIdentity"),  # none given in the file
            agg(150, sex="Feminine"),  # a total over years: not a rate of any population
            agg(None),
        )
    )
    out = rate_release(release, SDG_16_2_2, population())
    by = {(a.dimensions, a.key): (a.value, a.exact) for a in out.aggregates}
    assert by == {
        (DIMS, ("2022", "Feminine", "0-11", "ForcedLabour")): (10.0, True),
        (DIMS, ("2022", "Feminine", "12-17", "ForcedLabour")): (None, False),
        (("year", "sex", "age_group"), ("2022", "Feminine", "0-17")): (5.0, True),
        (("year", "sex"), ("2022", "Masculine")): (pytest.approx(45 * 1e5 / 2_100_000), True),
        (("year",), ("2023",)): (pytest.approx(90 * 1e5 / 6_300_000), True),
    }
    assert all(isinstance(a.value, float) for a in out.aggregates if a.value is not None)
    assert out.metadata["population_source"] == SOURCE
    assert out.metadata["population_digest"] == population().digest
    assert out.metadata["rate_per"] == "100000" and "100,000" in out.metadata["rate_rule"]
    assert out.metadata["k"] == "10"  # what was there stays
    denominators = json.loads(out.metadata["population_denominators"])
    assert (
        denominators["2022|Feminine|0-17"] == 600_000 and "Total|Feminine|Total" not in denominators
    )
    # the counts the rates stand for (what the differencing rule must remember)
    assert implied_counts(out) == {
        (DIMS, ("2022", "Feminine", "0-11", "ForcedLabour")): 20,
        (("year", "sex", "age_group"), ("2022", "Feminine", "0-17")): 30,
        (("year", "sex"), ("2022", "Masculine")): 45,
        (("year",), ("2023",)): 90,
    }
    assert implied_counts(release)[(("year",), ("2023",))] == 90  # a count release: itself
    broken = dataclasses.replace(out, metadata={**out.metadata, "population_denominators": "x"})
    with pytest.raises(NotARateStream):
        implied_counts(broken)


def test_only_rate_streams_become_rates() -> None:
    release = dataclasses.replace(sdg_release(()), stream=VICTIMS_BY_YEAR_SEX.name)
    with pytest.raises(NotARateStream):
        rate_release(release, VICTIMS_BY_YEAR_SEX, population())
    with pytest.raises(NotARateStream):  # the release is not of the stream
        rate_release(release, SDG_16_2_2, population())
    with pytest.raises(ValueError):
        Rate(per=0)
    with pytest.raises(ValueError):
        Rate(population=("form",))  # no population by form
    with pytest.raises(ValueError):
        rate_of(1, 0, 100_000)


BY_YEAR_SEX_RATE = StreamSpec(
    "victims_rate_by_year_sex",
    "t",
    "detected victims per 100,000 population",
    ("year", "sex"),
    margins=True,
    rate=Rate(population=("year", "sex")),
)


def test_rates_come_from_the_protected_counts_end_to_end() -> None:
    persons = [
        *(PersonFacts((f"f{i}",), "Feminine", 30, ("ForcedLabour",), 2022) for i in range(30)),
        *(PersonFacts((f"m{i}",), "Masculine", 30, ("ForcedLabour",), 2022) for i in range(4)),
        *(PersonFacts((f"g{i}",), "Feminine", 30, ("ForcedLabour",), 2023) for i in range(25)),
    ]
    protected = protect_margins(aggregate(persons, BY_YEAR_SEX_RATE), 10).table
    counts = build_release(
        BY_YEAR_SEX_RATE,
        protected,
        counting_rule="one per person",
        sequence=1,
        sources=("src-a",),
        issued_at_ms=1_760_000_000_000,
        release_id="r1",
    )
    rates = rate_release(counts, BY_YEAR_SEX_RATE, population())
    count_of = {(a.dimensions, a.key): a.value for a in counts.aggregates}
    pop = population()
    for a in rates.aggregates:
        count = count_of[(a.dimensions, a.key)]
        assert (a.value is None) == (count is None)  # suppressed count: suppressed rate
        if count is not None:
            at = dict(zip(a.dimensions, a.key, strict=True))
            den = pop.denominator(at["year"], at.get("sex", "Total"), "Total")
            assert den is not None and a.value == pytest.approx(count * 1e5 / den)
    by = {(a.dimensions, a.key): a.value for a in rates.aggregates}
    assert by[(("year", "sex"), ("2022", "Masculine"))] is None  # 4 persons: below k
    assert sum(v is not None for v in by.values()) >= 2
    assert (("sex",), ("Feminine",)) not in by and ((), ()) not in by  # totals over years
    # the rate release is signed and verified like any other, doubles and all
    key = SigningKey.generate("trust")
    got = verify_release(sign_release(rates, key), {key.key_id: key.public})
    assert [a.value for a in got.aggregates] == [a.value for a in rates.aggregates]
    # what the consumer received stands for exactly the published counts
    assert implied_counts(got) == {
        k: v for k, v in implied_counts(counts).items() if k in implied_counts(got)
    }
    assert len(implied_counts(got)) >= 2


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10**7), st.integers(1, 10**10))
def test_a_rate_gives_back_its_count(count: int, denominator: int) -> None:
    rate = rate_of(count, denominator, 100_000)
    assert round(rate * denominator / 100_000) == count


def test_a_changed_population_changes_the_digest() -> None:
    first = population()
    other = parse_population(b"year,sex,age_group,population\n2022,Total,Total,5\n", SOURCE)
    assert rated_digest("abc", first) != rated_digest("abc", other)
    assert rated_digest("abc", first) == rated_digest("abc", population())
    assert rated_digest("abc", first) != rated_digest("abd", first)
