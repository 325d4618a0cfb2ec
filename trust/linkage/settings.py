"""What a linkage run is configured by, fixed and checked once at construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from trust.linkage.blocking import (
    BirthDate,
    BlockingRule,
    FullNameKey,
    Refinement,
    default_refinements,
    default_rules,
)
from trust.linkage.comparison import Comparison, default_comparisons
from trust.linkage.errors import LinkageError, LinkageReason


@dataclass(frozen=True, slots=True)
class TrainingRule:
    """A blocking rule whose pairs train ``m`` by EM, and the comparisons it fixes (those the
    rule makes agree by construction, so the session cannot learn their ``m``).

    ``leaves_out``: comparisons the session neither learns nor weighs, because its pairs would
    teach them wrongly — pairs that share a name are mostly different persons with a common
    name, and weighing the context (year and forms of exploitation, shared by many victims of
    one operation) would count such pairs as matches and teach that matches disagree on dates
    of birth. Each comparison left out is learnt by the other sessions.
    """

    rule: BlockingRule
    fixes: tuple[str, ...]
    leaves_out: tuple[str, ...] = ()


def default_training_rules() -> tuple[TrainingRule, ...]:
    return (
        TrainingRule(BirthDate(), ("date_of_birth",)),
        # names go with sex and nationality (name pools differ by country and sex): a session
        # of same-name pairs cannot learn how often matches agree on those either
        TrainingRule(
            FullNameKey(),
            ("given_name", "surname", "name_order", "sex", "nationality"),
            leaves_out=("event_year", "forms"),
        ),
    )


@dataclass(frozen=True, slots=True)
class LinkageSettings:
    """Comparisons, blocking rules, decision thresholds and estimation limits.

    A pair whose match probability is at least ``upper`` is joined (the records are the same
    person); at least ``lower`` but below ``upper``, it goes to review; below ``lower``, the
    records stay apart. The batch linker and the incremental linker share one settings object.

    The incremental linker places one record among the persons it meets, and it is at most one
    of them: a person's ``share`` is its odds over one plus all candidates' odds (a new person
    counting one). The record joins the person whose share is at least ``join_share`` (more
    likely than every alternative together); a person with a share of at least
    ``review_share`` otherwise opens a review.

    The incremental linker's lookup is bounded: a key whose block holds more than ``block_cap``
    records is looked up through its ``refinements`` instead (a refined block larger than the cap
    is not used either), and of the records found, the ``max_candidates`` found under the most
    keys are compared (with every record of their persons). Batch linkage joins on the rules'
    keys alone and leaves out blocks over ``max_block_size`` records — or, with
    ``batch_block_cap``, joins a key's block over that cap through its refinements, as the
    incremental lookup does (the pairs then grow with the records, not their square).
    """

    comparisons: tuple[Comparison, ...] = field(default_factory=default_comparisons)
    blocking_rules: tuple[BlockingRule, ...] = field(default_factory=default_rules)
    training_rules: tuple[TrainingRule, ...] = field(default_factory=default_training_rules)
    upper: float = 0.9
    lower: float = 0.5
    conflict: float = 0.3
    join_share: float = 0.5
    review_share: float = 0.45
    refinements: tuple[Refinement, ...] = field(default_factory=default_refinements)
    block_cap: int = 50
    max_candidates: int = 100
    max_block_size: int = 1000
    batch_block_cap: int | None = None
    em_max_iterations: int = 200
    em_tolerance: float = 1e-6
    u_sample_pairs: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.lower <= self.upper < 1.0:
            problems.append("thresholds need 0 < lower <= upper < 1")
        if not 0.0 < self.review_share <= self.join_share < 1.0:
            problems.append("shares need 0 < review_share <= join_share < 1")
        if not 0.0 <= self.conflict < self.lower:
            problems.append("the conflict threshold needs 0 <= conflict < lower")
        if not self.comparisons:
            problems.append("at least one comparison is needed")
        if not self.blocking_rules:
            problems.append("at least one blocking rule is needed")
        names = [c.name for c in self.comparisons]
        if len(set(names)) != len(names):
            problems.append("comparison names must be distinct")
        rules = [r.name for r in self.blocking_rules]
        if len(set(rules)) != len(rules):
            problems.append("blocking rule names must be distinct")
        known = set(names)
        if any(f not in known for t in self.training_rules for f in (*t.fixes, *t.leaves_out)):
            problems.append("a training rule fixes a comparison the settings do not have")
        if self.max_block_size < 2:
            problems.append("max_block_size must be at least 2")
        if self.batch_block_cap is not None and self.batch_block_cap < 2:
            problems.append("batch_block_cap must be at least 2")
        if not 1 <= self.block_cap <= self.max_block_size or self.max_candidates < 1:
            problems.append("block_cap needs 1 <= block_cap <= max_block_size, max_candidates >= 1")
        refined = [f.name for f in self.refinements]
        if len(set(refined)) != len(refined):
            problems.append("refinement names must be distinct")
        if self.em_max_iterations < 1 or self.u_sample_pairs < 0:
            problems.append("em_max_iterations must be >= 1 and u_sample_pairs >= 0")
        if problems:
            raise LinkageError(LinkageReason.BAD_SETTINGS, "; ".join(problems))
