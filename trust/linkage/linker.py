"""The linker: one record's blocking keys, the score of a pair with its explanation, the decision
— and the training of its model on a set of records.

An incremental linker (a follower of the trust's store) calls, per new record::

    keys = linker.candidates_keys(record)            # look these digests up in its index table
    scores = linker.score_candidates(record, found)  # PairScore per candidate, best first
    decision = scores[0].decision if scores else Decision.DISTINCT

and re-estimates the model on demand with :func:`train`. Batch linkage
(:mod:`trust.linkage.batch`) uses the same comparisons, model and thresholds over a blocking join.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from trust.linkage.blocking import (
    BlockingKey,
    KeyedHasher,
    block_codes,
    blocking_keys,
    candidate_pairs_of,
)
from trust.linkage.comparison import Comparison, ComparisonVectors, compare_pairs
from trust.linkage.model import (
    Estimation,
    MatchModel,
    PairExplanation,
    SessionFit,
    TermFrequencies,
    combine,
    em_session,
    explain,
    measure_u,
    probability,
    table_groups,
)
from trust.linkage.record import LinkRecord, PreparedRecord, RecordTable, prepare
from trust.linkage.settings import LinkageSettings, TrainingRule

Floats = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]


class Decision(StrEnum):
    """What a pair's probability means under the settings' thresholds."""

    JOIN = "join"  # >= upper: the same person
    REVIEW = "review"  # between the thresholds: an operator decides
    DISTINCT = "distinct"  # < lower: not the same person (a new person if nothing else joins)


@dataclass(frozen=True, slots=True)
class PairScore:
    """The score of one pair of records: weight in bits, probability, decision, explanation."""

    id_l: str
    id_r: str
    match_weight: float
    probability: float
    decision: Decision
    explanation: PairExplanation


@dataclass(frozen=True, slots=True)
class ScoredPairs:
    """Many pairs scored at once (the batch form): comparison vectors, weights, probabilities."""

    vectors: ComparisonVectors
    match_weight: Floats
    probability: Floats


def _as_prepared(record: LinkRecord | PreparedRecord) -> PreparedRecord:
    return record if isinstance(record, PreparedRecord) else prepare(record)


class Linker:
    """Scores pairs of records under one model; pure (no store), so it can run anywhere.

    ``table`` is the record table its records are laid out in: a subclass whose records carry
    more (encodings) names a richer table, and scoring and training use it unchanged.
    """

    table: type[RecordTable] = RecordTable

    def __init__(
        self,
        settings: LinkageSettings,
        model: MatchModel,
        hasher: KeyedHasher,
        frequencies: TermFrequencies | None = None,
    ) -> None:
        model.check_fits(settings.comparisons)
        self.settings = settings
        self.model = model
        self.hasher = hasher
        self.frequencies = frequencies

    @property
    def model_version(self) -> str:
        return self.model.version

    def prepare(self, record: LinkRecord | PreparedRecord) -> PreparedRecord:
        return _as_prepared(record)

    def candidates_keys(
        self, record: LinkRecord | PreparedRecord, hasher: KeyedHasher | None = None
    ) -> tuple[BlockingKey, ...]:
        """The keyed blocking digests under which to store ``record`` and look up candidates:
        the rules' keys and their refinements (:class:`trust.linkage.blocking.Lookup` says which
        to look up). ``hasher``: one under the same key that remembers its digests for a run."""
        return blocking_keys(
            _as_prepared(record),
            self.settings.blocking_rules,
            self.hasher if hasher is None else hasher,
            self.settings.refinements,
        )

    def decide(self, p: float) -> Decision:
        if p >= self.settings.upper:
            return Decision.JOIN
        if p >= self.settings.lower:
            return Decision.REVIEW
        return Decision.DISTINCT

    def score(self, a: LinkRecord | PreparedRecord, b: LinkRecord | PreparedRecord) -> PairScore:
        """The score of the pair ``(a, b)``, with its explanation."""
        return self.score_candidates(a, [b])[0]

    def score_candidates(
        self,
        record: LinkRecord | PreparedRecord,
        candidates: Sequence[LinkRecord | PreparedRecord],
    ) -> tuple[PairScore, ...]:
        """``record`` against each candidate, in one vectorised pass; highest probability
        first (ties in candidate order)."""
        rows = [_as_prepared(record), *(_as_prepared(c) for c in candidates)]
        table = self.table.of(rows)
        n = len(candidates)
        scored = self.score_table(
            table, np.zeros(n, dtype=np.intp), np.arange(1, n + 1, dtype=np.intp)
        )
        adjustments = self._adjustment_terms(table, scored.vectors)
        out = []
        for k in range(n):
            explanation = explain(self.model, scored.vectors.levels[k], adjustments[k])
            p = float(scored.probability[k])
            out.append(
                PairScore(
                    table.ids[0],
                    table.ids[k + 1],
                    float(scored.match_weight[k]),
                    p,
                    self.decide(p),
                    explanation,
                )
            )
        order = sorted(range(n), key=lambda k: -out[k].probability)
        return tuple(out[k] for k in order)

    def score_table(self, table: RecordTable, left: Index, right: Index) -> ScoredPairs:
        """Score the pairs ``(left[k], right[k])`` of ``table``."""
        vectors = compare_pairs(self.settings.comparisons, table, left, right)
        return self.score_vectors(table, vectors)

    def score_vectors(self, table: RecordTable, vectors: ComparisonVectors) -> ScoredPairs:
        adjustment = self._adjustment_terms(table, vectors).sum(axis=1)
        weight = self.model.match_weights(vectors.levels, adjustment)
        return ScoredPairs(vectors, weight, probability(weight))

    def _adjustment_terms(self, table: RecordTable, vectors: ComparisonVectors) -> Floats:
        """Per pair and comparison, the term-frequency bits of an exact agreement."""
        out = np.zeros(vectors.levels.shape, dtype=np.float64)
        if self.frequencies is None or len(vectors) == 0:
            return out
        groups = None
        group_codes = np.zeros(0, dtype=np.intp)
        for c, comparison in enumerate(self.settings.comparisons):
            column = comparison.term_frequency_column
            if column is None:
                continue
            exact = vectors.levels[:, c] == 1
            if exact.any():
                left, right = vectors.left[exact], vectors.right[exact]
                # the adjustment is the left record's value's (rows: the distinct left records)
                rows = np.flatnonzero(np.bincount(left, minlength=len(table))).tolist()
                per_row = self.frequencies.adjustments(table, column, self.hasher, rows)
                if groups is None:
                    groups = np.array(table_groups(table), dtype=object)
                    group_codes = _codes(groups)
                within = self.frequencies.adjustments_within(
                    table, column, self.hasher, groups, rows
                )
                # a pair of one name group: the name's frequency within it (-1: no group)
                same = (group_codes[left] == group_codes[right]) & (group_codes[left] >= 0)
                same &= ~np.isnan(within[left])
                out[exact, c] = np.where(same, within[left], per_row[left])
        return out


def _codes(values: npt.NDArray[np.object_]) -> Index:
    """A code per distinct value (the order of first appearance); -1 for the empty string."""
    seen: dict[str, int] = {"": -1}
    return np.fromiter(
        (seen.setdefault(v, len(seen) - 1) for v in values.tolist()), np.intp, len(values)
    )


@dataclass(frozen=True, slots=True)
class Training:
    """A model fitted to a set of records, with what it was fitted on (kept for batch scoring)."""

    linker: Linker
    estimation: Estimation
    table: RecordTable
    vectors: ComparisonVectors
    oversized_blocks: int


def _random_pairs(
    n: int, count: int, rng: np.random.Generator, groups: Index | None, within: bool
) -> tuple[Index, Index]:
    if n < 2 or count == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    left = rng.integers(0, n, size=count, dtype=np.intp)
    right = rng.integers(0, n, size=count, dtype=np.intp)
    keep = left != right
    if groups is not None and not within:
        keep &= groups[left] != groups[right]
    return left[keep], right[keep]


def _all_pairs(n: int, groups: Index | None, within: bool) -> float:
    """How many pairs the run could compare: all of them, or only those across inputs."""
    if groups is None or within:
        return n * (n - 1) / 2
    sizes = np.bincount(groups).astype(np.float64)
    return float((sizes.sum() ** 2 - (sizes**2).sum()) / 2)


def _shares_codes(
    pointers: npt.NDArray[np.int64], codes: npt.NDArray[np.int64], left: Index, right: Index
) -> Floats:
    """1.0 where records ``left[k]`` and ``right[k]`` have a key in common, else 0.0, for keys
    given as codes per record (CSR: record ``i``'s are
    ``codes[pointers[i]:pointers[i + 1]]``): the pair's row of a record-by-key incidence matrix
    times the other's, summed."""
    from scipy.sparse import csr_matrix  # here: only training needs it

    if len(left) == 0:
        return np.zeros(0, dtype=np.float64)
    n = len(pointers) - 1
    width = int(codes.max()) + 1 if len(codes) else 1
    incidence = csr_matrix((np.ones(len(codes), dtype=np.int32), codes, pointers), shape=(n, width))
    shared = incidence[left].multiply(incidence[right]).sum(axis=1)
    return (np.asarray(shared).ravel() > 0).astype(np.float64)


def frequency_columns(comparisons: Sequence[Comparison]) -> list[str]:
    """The record-table columns whose value frequencies adjust exact agreements."""
    return sorted({c.term_frequency_column for c in comparisons if c.term_frequency_column})


def train(
    settings: LinkageSettings,
    records: Sequence[PreparedRecord],
    hasher: KeyedHasher,
    *,
    groups: Sequence[int] | None = None,
    within_groups: bool = True,
    seed_model: MatchModel | None = None,
    linker_class: type[Linker] = Linker,
) -> Training:
    """Estimate a model on ``records`` and compare their candidate pairs with it.

    1. ``u`` from random pairs, unless ``seed_model`` gives it — without the matches among them
       (:func:`~trust.linkage.model.measure_u`): steps 2 and 3 run once with ``u`` counted over
       all random pairs, then again, from the same start, with the matches they found taken out;
    2. ``m`` by EM, ``u`` fixed, once per training rule over the pairs sharing its key, each
       session learning only the comparisons its rule does not fix; ``m`` is their mean;
    3. the prior (chance that two records match) from how many matches each session found,
       divided by the share of all matches that session's rule can see (estimated from the
       other sessions' matches), over the number of pairs the run could compare.

    Scores then do not depend on which blocking rule found a pair: an incremental linker gets the
    same probability for a pair as batch linkage does. ``linker_class`` is the linker made (its
    ``table`` lays the records out).
    """
    table = linker_class.table.of(records)
    n = len(table)
    g = None if groups is None else np.asarray(groups, dtype=np.intp)
    comparisons = settings.comparisons
    total = _all_pairs(n, g, within_groups)
    sessions: list[_Session] | None = None
    if seed_model is None:
        rng = np.random.default_rng(settings.seed)
        sample = int(min(settings.u_sample_pairs, total))
        rl, rr = _random_pairs(n, sample, rng, g, within_groups)
        random_levels = compare_pairs(comparisons, table, rl, rr).levels
        u = measure_u(comparisons, random_levels) if len(rl) else {}
        seed_model = MatchModel.seed(
            comparisons,
            prior=min(0.5, DEFAULT_MATCHES_PER_RECORD / max(n - 1, 1)),
            u={k: v.tolist() for k, v in u.items()},
        )
        if len(rl):
            # ``u`` again without the matches among the random pairs (``measure_u``), from
            # a first estimate of ``m`` and the prior; then those again with it, from the
            # same start
            sessions = _sessions(settings, records, table, g, within_groups)
            first, _ = _estimate(settings, sessions, seed_model, n, total)
            u = measure_u(comparisons, random_levels, first)
            seed_model = MatchModel.seed(
                comparisons, prior=seed_model.prior, u={k: v.tolist() for k, v in u.items()}
            )
    else:
        seed_model.check_fits(comparisons)
    if sessions is None:
        sessions = _sessions(settings, records, table, g, within_groups)
    model, info = _estimate(settings, sessions, seed_model, n, total)
    del sessions
    cap = settings.batch_block_cap
    refine = settings.refinements if cap is not None else ()
    pairs, _ = candidate_pairs_of(
        block_codes(records, settings.blocking_rules, refine),
        n,
        groups=g,
        within_groups=within_groups,
        max_block_size=settings.max_block_size,
        block_cap=cap,
    )
    vectors = compare_pairs(comparisons, table, pairs.left, pairs.right)
    columns = frequency_columns(comparisons)
    frequencies = TermFrequencies.of(table, columns, hasher)
    linker = linker_class(settings, model, hasher, frequencies)
    return Training(linker, Estimation(model, info), table, vectors, pairs.oversized_blocks)


@dataclass(frozen=True, slots=True)
class _Session:
    """One training rule's pairs (a sample of them beyond :data:`TRAINING_PAIRS`) and their
    comparison levels: what its EM runs over, the same in both of :func:`train`'s estimates."""

    rule: TrainingRule
    pairs: _SessionPairs
    levels: npt.NDArray[np.int8]


def _sessions(
    settings: LinkageSettings,
    records: Sequence[PreparedRecord],
    table: RecordTable,
    g: npt.NDArray[np.intp] | None,
    within_groups: bool,
) -> list[_Session]:
    """Each training rule's pairs sharing its key, compared."""
    n = len(table)
    out = []
    sampling = np.random.default_rng((settings.seed, 1))  # not the random pairs' stream
    for training_rule in settings.training_rules:
        codes = block_codes(records, (training_rule.rule,))
        pairs, chance = candidate_pairs_of(
            codes,
            n,
            groups=g,
            within_groups=within_groups,
            max_block_size=settings.max_block_size,
            sample=(TRAINING_PAIRS, sampling),
        )
        levels = compare_pairs(settings.comparisons, table, pairs.left, pairs.right).levels
        kept = _SessionPairs(pairs.left, pairs.right, codes.per_record(n), chance)
        out.append(_Session(training_rule, kept, levels))
    return out


def _estimate(
    settings: LinkageSettings,
    sessions: Sequence[_Session],
    seed_model: MatchModel,
    n: int,
    total: float,
) -> tuple[MatchModel, tuple[tuple[str, int, int, bool], ...]]:
    """``m`` by EM (``u`` fixed) once per training session, and the prior from the matches
    found (:func:`train`'s steps 2 and 3); with each session's rule name, pairs, iterations and
    whether it converged."""
    fits: list[SessionFit] = []
    info: list[tuple[str, int, int, bool]] = []
    for session in sessions:
        rule = session.rule
        learn = [
            c.name not in rule.fixes and c.name not in rule.leaves_out for c in settings.comparisons
        ]
        fit = em_session(
            session.levels,
            seed_model,
            learn,
            max_iterations=settings.em_max_iterations,
            tolerance=settings.em_tolerance,
        )
        fits.append(fit)
        info.append((rule.rule.name, len(session.pairs.left), fit.iterations, fit.converged))
    pairs = [s.pairs for s in sessions]
    prior = _prior(fits, pairs, total, seed_model.prior)
    return replace(combine(seed_model, fits, prior), trained_on=max(n, 2)), tuple(info)


# A training session compares at most about this many of its rule's pairs: beyond it, a uniform
# sample of them (each pair kept with one chance). EM learns the share of the comparison vectors
# among the pairs, which a sample of millions gives as well as all of them; and at a million
# records a common name's or a date's blocks hold over a hundred million pairs (issue 15). A
# batch of 10^5 records stays under it (its sessions compare all their pairs, 4.0M at most).
TRAINING_PAIRS = 1 << 22


@dataclass(frozen=True, slots=True)
class _SessionPairs:
    """A training session's pairs, its rule's key codes per record (CSR: pointers, codes) and
    the chance each of the rule's pairs had to be among them (1.0: all were)."""

    left: Index
    right: Index
    keys: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
    chance: float


# Without enough matches to count, a record is assumed to match this many others: about what
# agencies' overlapping coverage gives (the same victim met by two of them).
DEFAULT_MATCHES_PER_RECORD = 0.5
MIN_MATCHES_TO_COUNT = 10.0


def _prior(
    fits: Sequence[SessionFit],
    pairs: Sequence[_SessionPairs],
    total_pairs: float,
    fallback: float,
) -> float:
    """Matches among all pairs: each session's expected matches over its rule's recall (the
    share of the other sessions' expected matches that share its key); the mean estimate. A
    session that compared a sample of its rule's pairs counts each pair for ``1 / chance``."""
    estimates = []
    for s, fit in enumerate(fits):
        found = float(fit.posterior.sum()) / pairs[s].chance
        if found < MIN_MATCHES_TO_COUNT:
            continue
        seen, total = 0.0, 0.0
        for o, other in enumerate(fits):
            if o == s or len(other.posterior) == 0:
                continue
            shares = _shares_codes(*pairs[s].keys, pairs[o].left, pairs[o].right)
            seen += float((other.posterior * shares).sum()) / pairs[o].chance
            total += float(other.posterior.sum()) / pairs[o].chance
        recall = seen / total if total >= 1.0 else 1.0
        estimates.append(found / max(recall, 0.05))
    if not estimates or total_pairs <= 0:
        return fallback
    return float(np.mean(estimates)) / total_pairs
