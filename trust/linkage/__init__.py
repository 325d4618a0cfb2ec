"""Record linkage: which records are the same person.

The engine is pure and independent of the store: normalisation (:mod:`.normalise`), comparisons
(:mod:`.comparison`), Fellegi-Sunter model and EM (:mod:`.model`), keyed blocking
(:mod:`.blocking`), clustering (:mod:`.cluster`), the linker (:mod:`.linker`) and batch linkage of
CSV files (:mod:`.batch`). Two modules put it to work in the trust (they import the store, so they
are not imported here): :mod:`.resolver`, the follower that places every victim record in a
person as events, and :mod:`.review`, the operator's queue, decisions and explanations. See
``METHOD.md``.
"""

from trust.linkage.blocking import BlockingKey, KeyedHasher
from trust.linkage.cluster import Clustering, ScoredPair, cluster
from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.linker import Decision, Linker, PairScore, Training, train
from trust.linkage.model import MatchModel, PairExplanation, TermFrequencies
from trust.linkage.record import LinkRecord, PreparedRecord, prepare
from trust.linkage.settings import LinkageSettings

__all__ = [
    "BlockingKey",
    "Clustering",
    "Decision",
    "KeyedHasher",
    "LinkRecord",
    "LinkageError",
    "LinkageReason",
    "LinkageSettings",
    "Linker",
    "MatchModel",
    "PairExplanation",
    "PairScore",
    "PreparedRecord",
    "ScoredPair",
    "TermFrequencies",
    "Training",
    "cluster",
    "prepare",
    "train",
]
