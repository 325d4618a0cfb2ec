"""Batch linkage of CSV files: read, check, block, estimate, score, cluster.

The batch format: a header with ``id, given_name, surname, date_of_birth, sex, nationality,
document_number`` and optionally ``address, postcode``; any value but the id may be empty; dates
ISO (missing parts allowed); ids unique across all inputs. Errors name the input, the data row
(1-based, header not counted) and the column — never a value.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from trust.linkage.blocking import RunHasher
from trust.linkage.cluster import Clustering, ScoredPair, cluster
from trust.linkage.comparison import ComparisonVectors
from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.linker import Linker, train
from trust.linkage.model import Estimation
from trust.linkage.record import FIELDS, LinkRecord, PreparedRecord, RecordTable, prepare
from trust.linkage.settings import LinkageSettings

Index = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "id",
    "given_name",
    "surname",
    "date_of_birth",
    "sex",
    "nationality",
    "document_number",
)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "address",
    "postcode",
    "age",
    "age_year",
    "event_year",
    "forms",
)


@dataclass(frozen=True, slots=True)
class BatchInput:
    """One input's records with their data-row numbers; ``name`` is how errors refer to it."""

    name: str
    records: tuple[LinkRecord, ...]
    rows: tuple[int, ...]


def read_batch_csv(path: str | Path, name: str | None = None) -> BatchInput:
    """Read one batch CSV file (UTF-8, a byte-order mark allowed).

    Raises :class:`LinkageError` for a missing or unknown column, a row with more cells than the
    header, a missing or repeated id, or a file that is not UTF-8 CSV.
    """
    p = Path(path)
    label = name or p.name
    records: list[LinkRecord] = []
    rows: list[int] = []
    seen: dict[str, int] = {}
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise LinkageError(LinkageReason.MISSING_COLUMN, "empty file, expected a header")
            columns = [h.strip() for h in header]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise LinkageError(
                    LinkageReason.MISSING_COLUMN, f"missing column(s): {', '.join(missing)}"
                )
            unknown = [c for c in columns if c not in FIELDS]
            if unknown:
                raise LinkageError(
                    LinkageReason.UNKNOWN_COLUMN,
                    f"unknown column(s): {', '.join(unknown)}; expected "
                    f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}",
                )
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            if repeated:
                raise LinkageError(
                    LinkageReason.UNKNOWN_COLUMN, f"repeated column(s): {', '.join(repeated)}"
                )
            for number, cells in enumerate(reader, start=1):
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) > len(columns):
                    raise LinkageError(
                        LinkageReason.UNREADABLE,
                        f"{len(cells)} cells, expected at most {len(columns)}",
                        where=f"row {number}",
                    )
                values = dict(zip(columns, (c.strip() for c in cells), strict=False))
                record_id = values.get("id", "")
                if not record_id:
                    raise LinkageError(
                        LinkageReason.MISSING_ID, "column id is empty", where=f"row {number}"
                    )
                if record_id in seen:
                    raise LinkageError(
                        LinkageReason.DUPLICATE_ID,
                        f"column id repeats the id of row {seen[record_id]}",
                        where=f"row {number}",
                    )
                seen[record_id] = number
                records.append(LinkRecord(**values))
                rows.append(number)
    except LinkageError as exc:
        raise exc.at(label) from None
    except UnicodeDecodeError:
        raise LinkageError(LinkageReason.UNREADABLE, "not UTF-8 text", where=label) from None
    except csv.Error:
        raise LinkageError(
            LinkageReason.UNREADABLE, f"not valid CSV near row {len(rows) + 1}", where=label
        ) from None
    except OSError as exc:
        reason = exc.strerror or "cannot be read"
        raise LinkageError(LinkageReason.UNREADABLE, reason.lower(), where=label) from None
    return BatchInput(label, tuple(records), tuple(rows))


def check_unique_ids(inputs: Sequence[BatchInput]) -> None:
    """Raise ``DUPLICATE_ID`` naming both places (input and row) of the first repeated id."""
    first: dict[str, tuple[str, int]] = {}
    for batch in inputs:
        for record, row in zip(batch.records, batch.rows, strict=True):
            if record.id in first:
                name, at = first[record.id]
                raise LinkageError(
                    LinkageReason.DUPLICATE_ID,
                    f"column id repeats the id of {name} row {at}",
                    where=f"{batch.name} row {row}",
                )
            first[record.id] = (batch.name, row)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Same-person pairs and review pairs (``id_l < id_r``), the persons, and how they were
    found: the model (with its version), the EM run, the number of candidate pairs."""

    clustering: Clustering
    linker: Linker
    estimation: Estimation
    candidate_pairs: int
    oversized_blocks: int

    @property
    def pairs(self) -> tuple[ScoredPair, ...]:
        return self.clustering.pairs

    @property
    def review(self) -> tuple[ScoredPair, ...]:
        return self.clustering.review


Progress = Callable[[str], None]


def link_batch(
    inputs: Sequence[BatchInput],
    *,
    dedupe: bool,
    settings: LinkageSettings | None = None,
    key: bytes | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Link the records of ``inputs``.

    With ``dedupe``, pairs within an input are linked too; otherwise (several inputs) only pairs
    across inputs are compared and reported. The blocking key defaults to a fresh random secret:
    in batch mode the keyed digests never outlive the run.
    """
    settings = settings or LinkageSettings()
    if not inputs:
        raise LinkageError(LinkageReason.BAD_MODE, "at least one input is needed")
    if len(inputs) == 1 and not dedupe:
        raise LinkageError(
            LinkageReason.BAD_MODE, "one input can only be deduplicated: add --dedupe"
        )
    check_unique_ids(inputs)
    step = progress or (lambda _stage: None)
    step("prepare")
    prepared: list[PreparedRecord] = []
    groups: list[int] = []
    for g, batch in enumerate(inputs):
        for record, row in zip(batch.records, batch.rows, strict=True):
            try:
                prepared.append(prepare(record))
            except LinkageError as exc:
                raise exc.at(f"{batch.name} row {row}") from None
            groups.append(g)
    hasher = RunHasher(key if key is not None else os.urandom(32))
    step("block, compare and estimate")
    training = train(settings, prepared, hasher, groups=groups, within_groups=dedupe)
    step("score")
    vectors = training.vectors
    probabilities = np.round(score_in_parts(training.linker, training.table, vectors), 12)
    step("cluster")
    ids = training.table.ids
    keep = clustering_pairs(
        len(ids), vectors.left, vectors.right, probabilities, settings.lower, settings.upper
    )
    left = vectors.left[keep].tolist()
    right = vectors.right[keep].tolist()
    pairs = (
        ScoredPair.of(ids[a], ids[b], p)
        for a, b, p in zip(left, right, probabilities[keep].tolist(), strict=True)
    )
    group_of = dict(zip(ids, groups, strict=True))

    def across(a: str, b: str) -> bool:
        return group_of[a] != group_of[b]

    clustering = cluster(
        ids,
        pairs,
        upper=settings.upper,
        lower=settings.lower,
        keep=None if dedupe else across,
        conflict=settings.conflict,
    )
    return BatchResult(
        clustering,
        training.linker,
        training.estimation,
        len(vectors),
        training.oversized_blocks,
    )


# score_in_parts scores this many pairs at a time: a pair's score is its own, and the scores of
# all pairs at once hold a float per pair and comparison (2.4 GB for 25M pairs at 10^6 records)
SCORE_PAIRS = 1 << 22


def score_in_parts(linker: Linker, table: RecordTable, vectors: ComparisonVectors) -> Floats:
    """``linker.score_vectors(table, vectors).probability``, :data:`SCORE_PAIRS` pairs at a
    time (the same probabilities: each pair is scored from its own levels and records)."""
    out = np.empty(len(vectors), dtype=np.float64)
    for start in range(0, len(vectors), SCORE_PAIRS):
        end = min(start + SCORE_PAIRS, len(vectors))
        part = ComparisonVectors(
            vectors.names,
            vectors.left[start:end],
            vectors.right[start:end],
            vectors.levels[start:end],
            vectors.swapped[start:end],
        )
        out[start:end] = linker.score_vectors(table, part).probability
    return out


def clustering_pairs(
    n: int, left: Index, right: Index, probability: Floats, lower: float, upper: float
) -> Mask:
    """Which scored pairs :func:`trust.linkage.cluster.cluster` can use: those at or above
    ``lower`` (links and reviews) and those whose records are joined by a chain of links (at or
    above ``upper``), whatever their probability — such a pair is reported with its own
    probability if its records end in one person, and counts in the conflict check of a link
    between their groups. A pair whose records no chain of links joins is in neither case: its
    records can never be in one person, nor in the two groups of one link. Leaving those out
    (almost all pairs of a large batch) leaves the persons, pairs and reviews unchanged."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    links = probability >= upper
    if n == 0 or not links.any():
        return probability >= lower
    graph = coo_matrix(
        (np.ones(int(links.sum()), dtype=np.int8), (left[links], right[links])), shape=(n, n)
    )
    _, component = connected_components(graph, directed=False)
    keep: Mask = (probability >= lower) | (component[left] == component[right])
    return keep


def write_pairs(path: str | Path, pairs: Sequence[ScoredPair]) -> None:
    """``id_l,id_r,probability`` with probabilities to six decimals."""
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id_l", "id_r", "probability"])
        for pair in pairs:
            writer.writerow([pair.id_l, pair.id_r, f"{pair.probability:.6f}"])
