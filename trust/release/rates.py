"""Rates per population from a release's disclosure-controlled counts (``sdg_16_2_2``).

A rate stream is counted and protected exactly like a count stream: the table of persons goes
through primary and secondary suppression and the audit, and only then does
:func:`rate_release` turn each published aggregate into a rate — persons per ``per`` (100,000)
population of the aggregate's year, sex and age group (``Total`` where the aggregate is not
broken down by one; a form of exploitation has no population of its own, so a rate by form is
per the population of its year, sex and age group). So:

- a suppressed count gives a suppressed rate (``value`` null); a rate is ``exact`` when its count
  was published exactly, and it is never more precise about the persons than the count was
  (the population is public: a rate and its denominator give back the published count);
- an aggregate without a denominator is not published: one not broken down by year (a total
  over years is not a rate of any population), or whose sex or age group has no population
  (``Unknown``, or a category the operator's file does not give). The release's metadata says so;
- the rate of a parent category (``0-17``) is the rate of the sum of its children's counts over
  the sum of their populations, not the sum of their rates.

The population's source, digest and the denominators used are in the release's metadata (the
population is public: a reader can check every rate); :func:`rated_digest` makes a changed
population file a changed release. A rate and its denominator publish the count, so the
differencing rule must remember the count: :func:`implied_counts` reads it back from a release.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace

from schemas.release import Aggregate, Release
from trust.release.categories import TOTAL
from trust.release.errors import ReleaseError
from trust.release.population import Population
from trust.release.streams import StreamSpec

RATE_RULE = (
    "Each value is detected victims per {per} population of the aggregate's year, sex and "
    "age group, from the population file named in population_source; a rate by form of "
    "exploitation is per the population of its year, sex and age group. Counts are protected "
    "before they become rates: a suppressed count gives a null rate. Aggregates without a "
    "population (sex or age not recorded, or totals over years) are not published. The rate of "
    "a parent category is its count over its population, not the sum of its children's rates."
)


class NotARateStream(ReleaseError):
    """A release of a stream that is not declared as a rate was passed to the rate step."""

    code = "not_a_rate_stream"


def rate_of(count: float, population: int, per: int) -> float:
    """``count`` persons per ``per`` of ``population``."""
    if population < 1:
        raise ValueError("a population is at least one person")
    return count * per / population


def rate_release(release: Release, spec: StreamSpec, population: Population) -> Release:
    """The unsigned ``release`` of ``spec`` (a rate stream) with every aggregate's count
    replaced by its rate (module doc), and the rate's rule, population source and digest in
    its metadata.

    Raises:
        NotARateStream: ``spec`` declares no rate, or the release is not of ``spec``.
    """
    rate = spec.rate
    if rate is None or release.stream != spec.name or release.dimensions != spec.dimensions:
        raise NotARateStream(f"stream {release.stream} is not published as a rate")
    aggregates = []
    denominators: dict[str, int] = {}
    for a in release.aggregates:
        at = dict(zip(a.dimensions, a.key, strict=True))
        nodes = tuple(at.get(d, TOTAL) for d in rate.population)
        if "year" in rate.population and nodes[rate.population.index("year")] == TOTAL:
            continue
        denominator = population.denominator(*_year_sex_age(rate.population, nodes))
        if denominator is None:
            continue
        value = None if a.value is None else rate_of(a.value, denominator, rate.per)
        aggregates.append(Aggregate(a.dimensions, a.key, value, a.exact and value is not None))
        denominators[_node_key(nodes)] = denominator
    metadata = {
        **release.metadata,
        "rate_per": str(rate.per),
        "rate_rule": RATE_RULE.format(per=f"{rate.per:,}"),
        "population_source": population.source,
        "population_digest": population.digest,
        "population_dimensions": json.dumps(list(rate.population)),
        # the public denominators used, so a reader can check every rate (and the trust's own
        # differencing history can read the counts back: implied_counts)
        "population_denominators": json.dumps(denominators, sort_keys=True, separators=(",", ":")),
    }
    return replace(release, aggregates=tuple(aggregates), metadata=metadata)


def _node_key(nodes: tuple[str, ...]) -> str:
    return "|".join(nodes)


def implied_counts(release: Release) -> Mapping[tuple[tuple[str, ...], tuple[str, ...]], int]:
    """The counts a rate release's published rates stand for, per aggregate (dimensions, key):
    each rate times its denominator (in the release's metadata) over ``per``. A release that is
    not a rate release implies its own values. For the differencing rule: a rate and its public
    denominator publish the count, so the trust must remember the count.

    Raises:
        NotARateStream: a release that says it holds rates but lacks its denominators.
    """
    if "rate_per" not in release.metadata:
        return {
            (a.dimensions, a.key): int(a.value) for a in release.aggregates if a.value is not None
        }
    try:
        per = int(release.metadata["rate_per"])
        dims = tuple(json.loads(release.metadata["population_dimensions"]))
        denominators = json.loads(release.metadata["population_denominators"])
    except (KeyError, ValueError) as exc:
        raise NotARateStream("a rate release without its denominators") from exc
    out = {}
    for a in release.aggregates:
        if a.value is None:
            continue
        at = dict(zip(a.dimensions, a.key, strict=True))
        denominator = denominators.get(_node_key(tuple(at.get(d, TOTAL) for d in dims)))
        if not isinstance(denominator, int) or denominator < 1:
            raise NotARateStream("a rate release without the denominator of a published rate")
        out[(a.dimensions, a.key)] = round(a.value * denominator / per)
    return out


def _year_sex_age(dimensions: tuple[str, ...], nodes: tuple[str, ...]) -> tuple[str, str, str]:
    at = dict(zip(dimensions, nodes, strict=True))
    return at.get("year", TOTAL), at.get("sex", TOTAL), at.get("age_group", TOTAL)


def rated_digest(table_digest: str, population: Population) -> str:
    """The digest of a rate release's figures: its counts' digest and its population's, so a
    corrected population file makes a new release even when no count changed."""
    return hashlib.sha256(f"{table_digest}\x00{population.digest}".encode("ascii")).hexdigest()
