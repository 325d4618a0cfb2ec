"""Fellegi-Sunter match weights: m and u per comparison level, EM estimation, term-frequency
adjustment, a version id derived from the parameters, and the explanation of one pair's score.

For a comparison level ``l``, ``m`` is the chance that two records of the same person fall in it
and ``u`` the chance for two records of different persons among the candidate pairs; its weight
is ``log2(m/u)`` bits. A pair's match weight is the prior's weight ``log2(λ/(1-λ))`` (``λ``: the
share of candidate pairs that match) plus its levels' weights; the probability is
``2^w / (1 + 2^w)``. Level 0 ("no data") weighs nothing.

:func:`estimate` fits ``λ``, ``m`` and ``u`` by expectation-maximisation on the comparison
vectors of candidate pairs, seeded from :meth:`MatchModel.seed` (defaults, with ``u`` optionally
measured on random pairs). Exact agreement on a name is worth more for a rare name than a common
one: :class:`TermFrequencies` replaces the level's average chance agreement by the value's own
frequency (``log2(ū / f(value))`` added to the exact level's weight), keyed by HMAC digests so the
table holds no name in clear.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import isotonic_regression

from trust.linkage.blocking import KeyedHasher
from trust.linkage.comparison import Comparison
from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.record import RecordTable

Floats = npt.NDArray[np.float64]
EPSILON = 1e-6  # no level is ever certain or impossible: keeps weights finite
VERSION_PREFIX = "fs1-"


@dataclass(frozen=True, slots=True)
class ComparisonParameters:
    """``m`` and ``u`` of one comparison's levels 1.. (each sums to 1, except the ``u`` of a
    penalty-only comparison, which is 1 at every level)."""

    name: str
    levels: tuple[str, ...]
    m: tuple[float, ...]
    u: tuple[float, ...]

    def weights(self) -> tuple[float, ...]:
        return tuple(math.log2(m / u) for m, u in zip(self.m, self.u, strict=True))


def _normalised(values: Sequence[float]) -> tuple[float, ...]:
    clipped = [max(float(v), EPSILON) for v in values]
    total = sum(clipped)
    return tuple(v / total for v in clipped)


# Comparisons whose levels are graded by one distance, most alike first: a level further apart
# must not be more likely among matches, relative to non-matches, than a closer one — its
# weight ``log2(m/u)`` is at most the previous level's. EM keeps ``m`` so (:func:`ordered_m`).
# These are the context comparisons: their levels beyond the first are learnt from a handful of
# repeat victims, few enough for chance to order them the wrong way (issue 15: "a year apart"
# weighed -4.4 bits, "other year" -3.5 — on a simulator whose repeat victims' years are drawn
# independently, so that every gap says the same: another event). A comparison is ordered only
# with exactly these levels.
ORDERED_LEVELS: Mapping[str, tuple[str, ...]] = {
    "event_year": ("exact", "one_year_apart", "other"),
    "age": ("within_1_year", "within_3_years", "other"),
    "forms": ("same", "overlap", "other"),
}


def is_ordered(name: str, levels: Sequence[str]) -> bool:
    """Whether the comparison ``name`` with ``levels`` has its weights kept non-increasing."""
    return ORDERED_LEVELS.get(name) == tuple(levels)


def ordered_m(m: Floats, u: Floats) -> Floats:
    """``m`` (summing to 1) made to keep ``m/u`` non-increasing along the levels, ``u`` fixed.

    The ratios ``m/u`` go through a weighted isotonic regression (weights ``u``; SciPy's
    pool-adjacent-violators): adjacent levels that break the order are pooled, a pooled block's
    levels share the ratio ``Σm / Σu`` and so one weight, and each level keeps ``m = ratio * u``;
    the total stays 1. For expected match counts proportional to ``m`` this is the
    maximum-likelihood ``m`` under the order (Robertson, Wright & Dykstra 1988, on isotonic
    regression), so an EM step that applies it to its M-step estimate is still an EM step — of
    the model with ordered levels.
    """
    ratio = isotonic_regression(m / u, weights=u, increasing=False).x
    return np.asarray(ratio * u, dtype=np.float64)


def _seed_m(k: int) -> tuple[float, ...]:
    """Matches mostly agree exactly; the rest spread over the fuzzy levels, few in ``other``."""
    if k == 1:
        return (1.0,)
    rest = [0.1 / (k - 1)] * (k - 1)
    rest[-1] = 0.02
    return _normalised([0.88, *rest])


def _seed_u(k: int) -> tuple[float, ...]:
    """Non-matches mostly disagree."""
    if k == 1:
        return (1.0,)
    return _normalised([*(0.02 / (k - 1) for _ in range(k - 1)), 0.98])


@dataclass(frozen=True, slots=True)
class MatchModel:
    """Fellegi-Sunter parameters for a fixed list of comparisons; immutable and versioned."""

    prior: float
    comparisons: tuple[ComparisonParameters, ...]
    # how many records the prior was estimated over (None: unknown); not a parameter of the
    # scores themselves, so not part of the version
    trained_on: int | None = None
    # the version, computed once (every decision names it)
    _version: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.prior < 1.0:
            raise LinkageError(LinkageReason.BAD_MODEL, "the prior must be strictly in (0, 1)")
        if self.trained_on is not None and self.trained_on < 2:
            raise LinkageError(LinkageReason.BAD_MODEL, "a model is trained on at least 2 records")
        for c in self.comparisons:
            if not (len(c.m) == len(c.u) == len(c.levels)):
                raise LinkageError(LinkageReason.BAD_MODEL, f"{c.name}: m, u and levels differ")

    @classmethod
    def seed(
        cls,
        comparisons: Sequence[Comparison],
        *,
        prior: float = 0.05,
        u: Mapping[str, Sequence[float]] | None = None,
    ) -> MatchModel:
        """Default parameters to start EM from; ``u`` may be measured (see :func:`measure_u`)."""
        params = []
        for c in comparisons:
            k = len(c.levels)
            measured = None if u is None else u.get(c.name)
            if c.penalty_only:
                u_c: tuple[float, ...] = (1.0,) * k
            elif measured is not None:
                u_c = _normalised(measured)
            else:
                u_c = _seed_u(k)
            params.append(ComparisonParameters(c.name, tuple(c.levels), _seed_m(k), u_c))
        return cls(prior, tuple(params))

    @property
    def version(self) -> str:
        """A content hash of the parameters: equal models, equal versions; any change, a new one."""
        if self._version:
            return self._version
        body = {
            "prior": f"{self.prior:.12g}",
            "comparisons": [
                {
                    "name": c.name,
                    "levels": list(c.levels),
                    "m": [f"{v:.12g}" for v in c.m],
                    "u": [f"{v:.12g}" for v in c.u],
                }
                for c in self.comparisons
            ],
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        version = VERSION_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]
        object.__setattr__(self, "_version", version)
        return version

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1.0 - self.prior))

    def among(self, records: int) -> MatchModel:
        """The model for a record scored against a store of ``records`` records.

        ``prior`` is the chance that two records match, estimated over the ``trained_on``
        records: a record had ``prior * (trained_on - 1)`` matches among them. A person is met
        by about as many records however large the store grows, so among more records the
        chance per pair is smaller by as much: the prior is scaled down by
        ``(trained_on - 1) / (records - 1)``. It is never scaled *up* for a smaller store: a
        trust that has just started holds few of the records its new ones will match (they
        arrive later), and a larger prior there made every namesake look likely.
        """
        if self.trained_on is None or records <= self.trained_on:
            return self
        scaled = self.prior * (self.trained_on - 1) / (records - 1)
        return MatchModel(max(scaled, EPSILON * EPSILON), self.comparisons, self.trained_on)

    def check_fits(self, comparisons: Sequence[Comparison]) -> None:
        """Raise ``BAD_MODEL`` unless the model was made for exactly these comparisons."""
        mine = [(c.name, c.levels) for c in self.comparisons]
        theirs = [(c.name, tuple(c.levels)) for c in comparisons]
        if mine != theirs:
            raise LinkageError(
                LinkageReason.BAD_MODEL, "the model's comparisons differ from the settings'"
            )

    def weight_tables(self) -> list[Floats]:
        """Per comparison, the weight of each level, level 0 (no data) weighing 0."""
        return [np.array([0.0, *c.weights()]) for c in self.comparisons]

    def match_weights(
        self, levels: npt.NDArray[np.int8], adjustment: Floats | None = None
    ) -> Floats:
        """Each pair's match weight in bits (prior included), plus any term-frequency
        ``adjustment`` per pair."""
        total = np.full(levels.shape[0], self.prior_weight)
        for c, table in enumerate(self.weight_tables()):
            total += table[levels[:, c]]
        if adjustment is not None:
            total += adjustment
        return total

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "version": self.version,
            "prior": self.prior,
            "comparisons": [
                {"name": c.name, "levels": list(c.levels), "m": list(c.m), "u": list(c.u)}
                for c in self.comparisons
            ],
        }
        if self.trained_on is not None:
            out["trained_on_records"] = self.trained_on
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MatchModel:
        """The inverse of :meth:`to_dict`; a ``version`` that does not match the parameters is
        refused (``BAD_MODEL``)."""
        try:
            raw = data["comparisons"]
            assert isinstance(raw, list)
            model = cls(
                float(str(data["prior"])),
                tuple(
                    ComparisonParameters(
                        str(c["name"]),
                        tuple(str(x) for x in c["levels"]),
                        tuple(float(x) for x in c["m"]),
                        tuple(float(x) for x in c["u"]),
                    )
                    for c in raw
                ),
                _trained_on(data),
            )
        except (KeyError, TypeError, ValueError, AssertionError):
            raise LinkageError(LinkageReason.BAD_MODEL, "not a match model") from None
        if "version" in data and data["version"] != model.version:
            raise LinkageError(LinkageReason.BAD_MODEL, "the version does not fit the parameters")
        return model


def _trained_on(data: Mapping[str, object]) -> int | None:
    """The records a stored model was estimated over: ``trained_on_records``, or the shipped
    model's ``trained_on.records``; None when not said."""
    value = data.get("trained_on_records")
    if value is None:
        about = data.get("trained_on")
        value = about.get("records") if isinstance(about, Mapping) else None
    return None if value is None else int(str(value))


DEFAULT_MODEL_PATH = Path(__file__).with_name("default_model.json")
"""Linkage's starting model, estimated by EM on a synthetic population of the simulator (no real
data; ``scripts/train_linkage_model.py`` makes it). The trust links with it until a model
estimated on its own data is adopted."""


def default_model() -> MatchModel:
    """The shipped starting model (:data:`DEFAULT_MODEL_PATH`)."""
    return MatchModel.from_dict(json.loads(DEFAULT_MODEL_PATH.read_text(encoding="utf-8")))


def probability(weight: Floats) -> Floats:
    """Match probability from match weight in bits."""
    return 1.0 / (1.0 + np.exp2(-np.clip(weight, -60.0, 60.0)))


# How many pairs' worth of the defaults estimates start from: a handful of records cannot
# outvote them, thousands can.
U_PSEUDO_PAIRS = 2000.0
M_PSEUDO_MATCHES = 1.0


def measure_u(
    comparisons: Sequence[Comparison],
    levels: npt.NDArray[np.int8],
    matches: MatchModel | None = None,
) -> dict[str, Floats]:
    """``u`` per comparison from the levels of random pairs, shrunk towards the defaults by
    :data:`U_PSEUDO_PAIRS` pairs' worth (no zero ``u``, and a tiny input keeps sensible values).

    Random pairs are almost all non-matches, but not all: a share ``prior`` of them match, and
    nearly all of those agree. Where agreeing by chance is rarer still (a complete date of
    birth: one pair of different persons in several thousand), the matches among the random
    pairs are most of those that agree, and ``u`` counted over all of them is several times too
    large: evidence lost on every pair that agrees (about a bit on the shipped model's 5,469
    records, more on fewer), which a store many times larger than the sample needs, its prior
    being as many times smaller. With ``matches`` (a model of the same comparisons estimated
    with the first ``u``), the pairs expected to be matches (``prior * m`` of those with data)
    are taken out of the counts first."""
    if matches is not None:
        matches.check_fits(comparisons)
    out: dict[str, Floats] = {}
    for c, comparison in enumerate(comparisons):
        k = len(comparison.levels)
        counts = np.bincount(levels[:, c], minlength=k + 1)[1:].astype(np.float64)
        if matches is not None:
            expected = matches.prior * counts.sum() * np.asarray(matches.comparisons[c].m)
            counts = np.maximum(counts - expected, 0.0)
        default = np.array(_seed_u(k)) * U_PSEUDO_PAIRS
        out[comparison.name] = (counts + default) / (counts.sum() + U_PSEUDO_PAIRS)
    return out


@dataclass(frozen=True, slots=True)
class SessionFit:
    """One EM session over the pairs of one training blocking rule.

    ``m[c]`` is ``None`` for a comparison the session did not learn (the rule fixed it: pairs
    sharing a date of birth say nothing about how often matches share one). ``share`` is the
    fitted proportion of matches among the session's pairs, ``posterior`` each pair's match
    probability at the end.
    """

    m: tuple[Floats | None, ...]
    share: float
    posterior: Floats
    iterations: int
    converged: bool


def distinct_rows(
    levels: npt.NDArray[np.int8],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """``np.unique(levels, axis=0, return_inverse=True, return_counts=True)``: the distinct
    rows in lexicographic order, each row's index among them and their counts — with each row
    read as one integer (the columns' levels as digits, the first the most significant), which
    sorts as the rows do, instead of sorting rows (many times slower on millions of pairs)."""
    if levels.size and levels.min() >= 0:
        radix = levels.max(axis=0).astype(np.int64) + 1
        if float(np.prod(radix.astype(np.float64))) < 2.0**62:
            weights = np.cumprod(np.concatenate((radix[1:], [1]))[::-1])[::-1]
            codes = levels.astype(np.int64) @ weights
            _, first, inverse, counts = np.unique(
                codes, return_index=True, return_inverse=True, return_counts=True
            )
            return levels[first], inverse.reshape(-1), counts
    vectors, inverse, counts = np.unique(levels, axis=0, return_inverse=True, return_counts=True)
    return vectors, inverse.reshape(-1), counts


def em_session(
    levels: npt.NDArray[np.int8],
    seed: MatchModel,
    learn: Sequence[bool],
    *,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
) -> SessionFit:
    """Fit ``m`` of the learnt comparisons and the session's match share by EM, ``u`` fixed;
    ``m`` starts from :data:`M_PSEUDO_MATCHES` matches' worth of the seed's (maximum a posteriori).

    ``u`` stays at the seed's (measured on random pairs), so the non-match class cannot drift
    into "pairs that merely look alike" — the failure of free-``u`` EM on blocked pairs. EM runs
    over the distinct vectors with their counts, so its cost stops growing once vectors repeat.
    The levels of an ordered comparison (:data:`ORDERED_LEVELS`) keep non-increasing weights:
    each M-step's ``m`` goes through :func:`ordered_m`.
    """
    if levels.shape[0] == 0:
        return SessionFit(tuple(None for _ in learn), 0.0, np.zeros(0), 0, True)
    vectors, inverse, counts = distinct_rows(levels)
    counts = counts.astype(np.float64)
    ks = [len(c.levels) for c in seed.comparisons]
    m = [np.array(c.m) for c in seed.comparisons]
    pseudo = [np.array(c.m) * M_PSEUDO_MATCHES for c in seed.comparisons]
    log_u = [np.log(np.array(c.u)) for c in seed.comparisons]
    ordered = [is_ordered(c.name, c.levels) for c in seed.comparisons]
    share = 0.1
    converged = False
    iteration = 0
    post = np.zeros(len(vectors))
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - reported below
        w = np.full(len(vectors), math.log(share / (1 - share)))
        for c in range(len(ks)):
            if learn[c]:
                w += np.concatenate(([0.0], np.log(m[c]) - log_u[c]))[vectors[:, c]]
        post = 1.0 / (1.0 + np.exp(-np.clip(w, -700, 700)))
        matched = post * counts
        new_share = float(np.clip(matched.sum() / counts.sum(), EPSILON, 1 - EPSILON))
        change = abs(new_share - share)
        for c, k in enumerate(ks):
            if not learn[c]:
                continue
            mc = np.bincount(vectors[:, c], weights=matched, minlength=k + 1)[1:] + pseudo[c]
            new_m = mc / mc.sum()
            if ordered[c]:
                new_m = ordered_m(new_m, np.exp(log_u[c]))
            change = max(change, float(np.abs(new_m - m[c]).max()))
            m[c] = new_m
        share = new_share
        if change < tolerance:
            converged = True
            break
    # a comparison with (almost) no data in this session learnt nothing here
    matched_total = post * counts
    fitted = tuple(
        m[c] if learn[c] and matched_total[vectors[:, c] > 0].sum() >= 1.0 else None
        for c in range(len(ks))
    )
    return SessionFit(fitted, share, post[inverse], iteration, converged)


@dataclass(frozen=True, slots=True)
class Estimation:
    """A training's outcome: the model, and per session its pairs, EM iterations and whether it
    converged (for the method note and the benchmark, not for decisions)."""

    model: MatchModel
    sessions: tuple[tuple[str, int, int, bool], ...]  # (rule, pairs, iterations, converged)

    @property
    def iterations(self) -> int:
        return sum(s[2] for s in self.sessions)

    @property
    def converged(self) -> bool:
        return all(s[3] for s in self.sessions)


def combine(seed: MatchModel, fits: Sequence[SessionFit], prior: float) -> MatchModel:
    """The model whose ``m`` per comparison is the mean over the sessions that learnt it (the
    seed's where none did), ``u`` the seed's, and ``prior`` as given; an ordered comparison's
    levels (:data:`ORDERED_LEVELS`) keep non-increasing weights (a mean of ordered ``m`` is
    ordered; the seed's may not be)."""
    params = []
    for c, p in enumerate(seed.comparisons):
        learnt = [f.m[c] for f in fits if f.m[c] is not None]
        m = np.mean(np.stack([x for x in learnt if x is not None]), axis=0) if learnt else p.m
        m_c = _normalised(list(m))
        if is_ordered(p.name, p.levels):
            m_c = tuple(ordered_m(np.array(m_c), np.array(p.u)).tolist())
        params.append(ComparisonParameters(p.name, p.levels, m_c, p.u))
    return MatchModel(float(np.clip(prior, EPSILON, 1 - EPSILON)), tuple(params))


# A name's frequency is also counted within each nationality and sex: names are drawn from
# pools that differ by country (and given names by sex), so two persons of one nationality and
# sex share a name far more often than two random records do, and "same name" must weigh only
# what it says beyond "same nationality, same sex" (which weigh on their own).
MIN_GROUP_RECORDS = 20  # fewer records in a group: its names' overall frequency is used


def group_of(nationality: str, sex: str) -> str:
    """A record's name group (empty when either part is unknown: no group)."""
    return f"{nationality}\x1f{sex}" if nationality and sex else ""


def table_groups(table: RecordTable) -> list[str]:
    """Each row's name group (:func:`group_of`)."""
    return [group_of(n, s) for n, s in zip(table.nationality, table.sex, strict=True)]


def within_group(column: str) -> str:
    """The name of the counts of ``column``'s values within one name group."""
    return f"{column}@group"


def value_digest(hasher: KeyedHasher, column: str, value: str) -> str:
    return hasher.digest(f"tf:{column}", (value,))


def group_digests(hasher: KeyedHasher, column: str, group: str, value: str) -> tuple[str, str]:
    """The digests counting ``value`` within ``group``, and the group's records."""
    name = f"tf:{within_group(column)}"
    return hasher.digest(name, (group, value)), hasher.digest(name, (group,))


@dataclass(frozen=True, slots=True)
class TermFrequencies:
    """How often each value of a name column occurs, keyed by HMAC digest (no name in clear).

    ``counts[column][digest]`` and ``totals[column]``; ``average[column]`` is the chance that two
    random records agree exactly on that column (``Σ f²``), the ``u`` a value's own frequency
    replaces. ``counts[within_group(column)]`` counts each value within its record's name group
    (nationality and sex; and each group's records with a value), for pairs that share one.
    """

    counts: Mapping[str, Mapping[str, int]]
    totals: Mapping[str, int]
    average: Mapping[str, float]

    @classmethod
    def of(cls, table: RecordTable, columns: Sequence[str], hasher: KeyedHasher) -> TermFrequencies:
        counts: dict[str, dict[str, int]] = {}
        totals: dict[str, int] = {}
        average: dict[str, float] = {}
        groups = table_groups(table)
        for column in columns:
            values = [v for v in getattr(table, column) if v]
            counter = Counter(value_digest(hasher, column, v) for v in values)
            total = max(len(values), 1)
            counts[column] = dict(counter)
            totals[column] = total
            average[column] = sum((c / total) ** 2 for c in counter.values()) or 1.0 / total
            within: Counter[str] = Counter()
            for v, g in zip(getattr(table, column), groups, strict=True):
                if v and g:
                    within.update(group_digests(hasher, column, g, v))
            counts[within_group(column)] = dict(within)
        return cls(counts, totals, average)

    def adjustment(self, column: str, value: str, hasher: KeyedHasher) -> float:
        """Bits added to an exact agreement on ``value``: positive for rare values."""
        if not value:
            return 0.0
        return self.adjustment_of(column, value_digest(hasher, column, value))

    def adjustment_of(self, column: str, digest: str) -> float:
        """:meth:`adjustment` of the (non-empty) value whose :func:`value_digest` is ``digest``:
        for a caller that keeps its records' digests rather than making them again."""
        total = self.totals.get(column)
        if total is None:
            return 0.0
        count = self.counts[column].get(digest, 0)
        frequency = max(count, 1) / total
        return math.log2(self.average[column] / frequency)

    def adjustment_within(
        self, column: str, group: str, value: str, hasher: KeyedHasher
    ) -> float | None:
        """:meth:`adjustment` for a pair that also shares the name ``group`` (nationality and
        sex): the value's frequency among that group's records. None when too few of them are
        counted."""
        if not value or not group:
            return None
        return self.adjustment_within_of(column, *group_digests(hasher, column, group, value))

    def adjustment_within_of(self, column: str, pair: str, of_group: str) -> float | None:
        """:meth:`adjustment_within` of a value and group given by their
        :func:`group_digests` (``pair``: the value within the group; ``of_group``: the group's
        records)."""
        held = self.counts.get(within_group(column))
        if held is None or self.totals.get(column) is None:
            return None
        records = held.get(of_group, 0)
        if records < MIN_GROUP_RECORDS:
            return None
        frequency = max(held.get(pair, 0), 1) / records
        return math.log2(self.average[column] / frequency)

    def adjustments(
        self,
        table: RecordTable,
        column: str,
        hasher: KeyedHasher,
        rows: Sequence[int] | None = None,
    ) -> Floats:
        """:meth:`adjustment` for every row of ``table`` (or only ``rows``; the others 0)."""
        cache: dict[str, float] = {}
        out = np.zeros(len(table))
        values = getattr(table, column)
        for i in range(len(table)) if rows is None else rows:
            value = values[i]
            if value:
                if value not in cache:
                    cache[value] = self.adjustment(column, value, hasher)
                out[i] = cache[value]
        return out

    def adjustments_within(
        self,
        table: RecordTable,
        column: str,
        hasher: KeyedHasher,
        groups: Sequence[str] | npt.NDArray[np.object_],
        rows: Sequence[int] | None = None,
    ) -> Floats:
        """:meth:`adjustment_within` for every row of ``table`` (in its own name group,
        ``groups``; or only ``rows``); NaN where there is none."""
        cache: dict[tuple[str, str], float | None] = {}
        out = np.full(len(table), np.nan)
        values = getattr(table, column)
        for i in range(len(table)) if rows is None else rows:
            value, group = values[i], groups[i]
            if value and group:
                if (value, group) not in cache:
                    cache[(value, group)] = self.adjustment_within(column, group, value, hasher)
                found = cache[(value, group)]
                if found is not None:
                    out[i] = found
        return out


@dataclass(frozen=True, slots=True)
class ComparisonTerm:
    """One comparison's part in a pair's score: its level and the bits it added."""

    comparison: str
    level: str
    weight: float
    term_frequency_adjustment: float = 0.0


@dataclass(frozen=True, slots=True)
class PairExplanation:
    """Why two records scored as they did: the model version, the prior and each comparison's
    level and weight. Holds no value of either record."""

    model_version: str
    prior_weight: float
    terms: tuple[ComparisonTerm, ...]
    match_weight: float
    probability: float


def explain(
    model: MatchModel, levels: npt.NDArray[np.int8], adjustments: Sequence[float]
) -> PairExplanation:
    """The explanation of one pair from its levels and per-comparison frequency adjustments."""
    terms = []
    for c, params in enumerate(model.comparisons):
        level = int(levels[c])
        if level == 0:
            terms.append(ComparisonTerm(params.name, "no_data", 0.0))
            continue
        terms.append(
            ComparisonTerm(
                params.name,
                params.levels[level - 1],
                params.weights()[level - 1],
                float(adjustments[c]),
            )
        )
    total = model.prior_weight + sum(t.weight + t.term_frequency_adjustment for t in terms)
    return PairExplanation(
        model.version,
        model.prior_weight,
        tuple(terms),
        total,
        float(probability(np.array([total]))[0]),
    )
