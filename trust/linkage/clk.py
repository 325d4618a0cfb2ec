"""Privacy-preserving linkage: records that carry CLKs (keyed Bloom filters, :mod:`schemas.clk`)
instead of names and dates of birth, compared by the Dice coefficient in the same Fellegi-Sunter
framework as plain records.

- :class:`ClkRecord` is the boundary type (the ids, the encodings, sex and nationality as codes);
  :func:`prepare_clk` turns it into a :class:`ClkPreparedRecord` — a :class:`PreparedRecord` with
  no name or date, so every plain comparison and blocking rule sees "no data" — and
  :class:`ClkTable` adds the encodings to a :class:`RecordTable` as bit matrices.
- :class:`DiceComparison` puts a pair in a level by the Dice coefficient of one field's
  encodings (identical, then thresholds); its ``m`` and ``u`` are estimated by EM like any other
  comparison's, and exact agreement is adjusted for the encoding's frequency.
- Blocking without values: :class:`ClkExact` (a keyed digest of whole encodings, e.g. the date of
  birth with sex) and :class:`ClkMinHash` (locality-sensitive hashing: bands of MinHash values
  over the set bits, so similar encodings share a band's digest with high probability).
- :func:`clk_settings` is the configuration of a CLK-only run; :func:`train_clk`,
  :class:`ClkLinker` and :func:`link_clk_batch` are :func:`~trust.linkage.linker.train`,
  :class:`~trust.linkage.linker.Linker` and :func:`~trust.linkage.batch.link_batch` over
  :class:`ClkTable` (they differ only in the table they build).

See ``CLK.md`` for the attack surface, key handling and measured quality.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from schemas.clk import CLK_FIELDS, ClkEncoder
from trust.linkage.batch import BatchResult
from trust.linkage.blocking import BlockingRule, KeyedHasher
from trust.linkage.cluster import ScoredPair, cluster
from trust.linkage.comparison import (
    Comparison,
    ExactComparison,
    Levels,
    PairView,
    _assign,
    _OneField,
)
from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.linker import Linker, Training, train
from trust.linkage.model import MatchModel
from trust.linkage.normalise import normalise_code, normalise_sex
from trust.linkage.record import LinkRecord, PreparedRecord, RecordTable, Strings
from trust.linkage.settings import LinkageSettings, TrainingRule

Bits = npt.NDArray[np.uint64]
Index = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
_PAIR_CHUNK = 200_000  # pairs per vectorised Dice pass (bounds memory)

# The table's columns per encoded field: the bit matrix, and a hex form of each encoding (what
# exact-agreement frequencies are counted on, as keyed digests like the plain names').
_BITS = {f: f"clk_{f}" for f in CLK_FIELDS}
_HEX = {f: f"clk_{f}_hex" for f in CLK_FIELDS}


@dataclass(frozen=True, slots=True)
class ClkRecord:
    """One record as a CLK source sends it: encodings (``b""`` = unknown), sex and nationality
    as codes, and the id of the parameters the encodings were made with."""

    id: str
    given_name: bytes = b""
    surname: bytes = b""
    date_of_birth: bytes = b""
    birth_day_month_unordered: bytes = b""
    document_number: bytes = b""
    sex: str = ""
    nationality: str = ""
    parameters: str = ""


def encode_record(encoder: ClkEncoder, record: LinkRecord) -> ClkRecord:
    """A plain record as a CLK source would send it (names, date of birth and document number
    encoded; address and postcode left out). The trust, which holds the key, can encode its plain records
    this way to compare them with encoded ones."""
    encoding = encoder.encode(
        given_name=record.given_name,
        surname=record.surname,
        date_of_birth=record.date_of_birth,
        document_number=record.document_number,
    )
    return ClkRecord(
        id=record.id,
        given_name=encoding.fields["given_name"],
        surname=encoding.fields["surname"],
        date_of_birth=encoding.fields["date_of_birth"],
        birth_day_month_unordered=encoding.fields["birth_day_month_unordered"],
        document_number=encoding.fields["document_number"],
        sex=record.sex,
        nationality=record.nationality,
        parameters=encoding.parameters,
    )


@dataclass(frozen=True, slots=True)
class ClkPreparedRecord(PreparedRecord):
    """A prepared record without names or date (plain comparisons see no data) and with the
    encodings of those fields."""

    clk_parameters: str = ""
    clk_given_name: bytes = b""
    clk_surname: bytes = b""
    clk_date_of_birth: bytes = b""
    clk_birth_day_month_unordered: bytes = b""
    clk_document_number: bytes = b""

    def encoding(self, field: str) -> bytes:
        value: bytes = getattr(self, _BITS[field])
        return value


def prepare_clk(record: ClkRecord) -> ClkPreparedRecord:
    return ClkPreparedRecord(
        id=record.id,
        given=None,
        surname=None,
        birth=None,
        sex=normalise_sex(record.sex),
        nationality=normalise_code(record.nationality),
        document="",
        address="",
        postcode="",
        clk_parameters=record.parameters,
        clk_given_name=record.given_name,
        clk_surname=record.surname,
        clk_date_of_birth=record.date_of_birth,
        clk_birth_day_month_unordered=record.birth_day_month_unordered,
        clk_document_number=record.document_number,
    )


def _bit_matrix(values: Sequence[bytes]) -> Bits:
    """Encodings as rows of 64-bit words (empty encodings as zero rows)."""
    width = max((len(v) for v in values), default=0)
    if any(v and len(v) != width for v in values):
        raise LinkageError(LinkageReason.BAD_SETTINGS, "CLK encodings of different lengths")
    words = -(-width // 8)
    raw = np.zeros((len(values), words * 8), dtype=np.uint8)
    for i, v in enumerate(values):
        if v:
            raw[i, : len(v)] = np.frombuffer(v, dtype=np.uint8)
    return raw.view(np.uint64).reshape(len(values), words)


def _hex(values: Sequence[bytes]) -> Strings:
    out = np.empty(len(values), dtype=object)
    out[:] = [v.hex() if any(v) else "" for v in values]
    return out


@dataclass(frozen=True, slots=True)
class ClkTable(RecordTable):
    """A :class:`RecordTable` with each encoded field as a bit matrix (``clk_<field>``, one row
    per record), its rows' bit counts and a hex form for frequencies."""

    clk_given_name: Bits
    clk_surname: Bits
    clk_date_of_birth: Bits
    clk_birth_day_month_unordered: Bits
    clk_document_number: Bits
    clk_given_name_count: npt.NDArray[np.int64]
    clk_surname_count: npt.NDArray[np.int64]
    clk_date_of_birth_count: npt.NDArray[np.int64]
    clk_birth_day_month_unordered_count: npt.NDArray[np.int64]
    clk_document_number_count: npt.NDArray[np.int64]
    clk_given_name_hex: Strings
    clk_surname_hex: Strings
    clk_date_of_birth_hex: Strings
    clk_birth_day_month_unordered_hex: Strings
    clk_document_number_hex: Strings

    @classmethod
    def of(cls, records: Sequence[PreparedRecord]) -> ClkTable:
        """Records without encodings (plain ones) get empty rows; encodings made under different
        parameters are refused."""
        base = RecordTable.of(records)
        params = {r.clk_parameters for r in records if isinstance(r, ClkPreparedRecord)}
        if len(params) > 1:
            raise LinkageError(
                LinkageReason.BAD_SETTINGS, "CLK encodings made under different parameters"
            )
        columns: dict[str, object] = {f.name: getattr(base, f.name) for f in fields(RecordTable)}
        for field in CLK_FIELDS:
            values = [
                r.encoding(field) if isinstance(r, ClkPreparedRecord) else b"" for r in records
            ]
            bits = _bit_matrix(values)
            columns[_BITS[field]] = bits
            columns[f"{_BITS[field]}_count"] = np.bitwise_count(bits).sum(axis=1, dtype=np.int64)
            columns[_HEX[field]] = _hex(values)
        return cls(**columns)  # type: ignore[arg-type]


def dice(table: RecordTable, field: str, left: Index, right: Index) -> Floats:
    """The Dice coefficient of ``field``'s encodings over pairs of ``table`` (0 where either is
    empty)."""
    bits: Bits = getattr(table, _BITS[field])
    counts: npt.NDArray[np.int64] = getattr(table, f"{_BITS[field]}_count")
    out = np.zeros(len(left), dtype=np.float64)
    for start in range(0, len(left), _PAIR_CHUNK):
        li, ri = left[start : start + _PAIR_CHUNK], right[start : start + _PAIR_CHUNK]
        both = np.bitwise_count(bits[li] & bits[ri]).sum(axis=1, dtype=np.int64)
        total = counts[li] + counts[ri]
        out[start : start + len(li)] = np.divide(
            2.0 * both, total, out=np.zeros(len(li)), where=total > 0
        )
    return out


@dataclass(frozen=True, slots=True)
class DiceComparison(_OneField):
    """One encoded field: identical encodings, then Dice coefficient thresholds, then other.
    Level 0 (no data) where either record has no encoding of the field."""

    field_name: str
    thresholds: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5)
    term_frequency: bool = True

    @property
    def levels(self) -> tuple[str, ...]:
        return ("identical", *(f"dice>={t:.2f}" for t in self.thresholds), "other")

    @property
    def term_frequency_column(self) -> str | None:
        return _HEX[self.field_name] if self.term_frequency else None

    def compare(self, pairs: PairView) -> Levels:
        table = pairs.table
        if not isinstance(table, ClkTable):
            return np.zeros(len(pairs), dtype=np.int8)
        counts: npt.NDArray[np.int64] = getattr(table, f"{_BITS[self.field_name]}_count")
        li, ri = pairs.left_index, pairs.right_index
        null = (counts[li] == 0) | (counts[ri] == 0)
        d = dice(table, self.field_name, li, ri)
        identical = pairs.left(_HEX[self.field_name]) == pairs.right(_HEX[self.field_name])
        return _assign(len(pairs), null, [identical, *(d >= t for t in self.thresholds)])


@dataclass(frozen=True, slots=True)
class BirthDateDiceComparison(_OneField):
    """The date of birth's encodings: identical; day and month swapped (the unordered encodings
    identical, the ordered ones not); Dice thresholds on the ordered encodings; other."""

    field_name: str = "date_of_birth"
    thresholds: tuple[float, ...] = (0.8, 0.6)

    @property
    def levels(self) -> tuple[str, ...]:
        return (
            "identical",
            "day_month_swapped",
            *(f"dice>={t:.2f}" for t in self.thresholds),
            "other",
        )

    def compare(self, pairs: PairView) -> Levels:
        table = pairs.table
        if not isinstance(table, ClkTable):
            return np.zeros(len(pairs), dtype=np.int8)
        field, swap = "date_of_birth", "birth_day_month_unordered"
        counts: npt.NDArray[np.int64] = getattr(table, f"{_BITS[field]}_count")
        swap_counts: npt.NDArray[np.int64] = getattr(table, f"{_BITS[swap]}_count")
        li, ri = pairs.left_index, pairs.right_index
        null = (counts[li] == 0) | (counts[ri] == 0)
        identical = pairs.left(_HEX[field]) == pairs.right(_HEX[field])
        swapped = (swap_counts[li] > 0) & (pairs.left(_HEX[swap]) == pairs.right(_HEX[swap]))
        d = dice(table, field, li, ri)
        conditions = [identical, swapped, *(d >= t for t in self.thresholds)]
        return _assign(len(pairs), null, conditions)


# --- blocking ------------------------------------------------------------------------------


def _encodings(record: PreparedRecord, names: Sequence[str]) -> list[bytes] | None:
    if not isinstance(record, ClkPreparedRecord):
        return None
    return [record.encoding(f) for f in names]


@dataclass(frozen=True, slots=True)
class ClkExact:
    """Records whose encodings of ``fields`` are identical (all of them known), optionally with
    the same sex (left out where unknown)."""

    fields: tuple[str, ...]
    with_sex: bool = False
    name: str = "clk_exact"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        values = _encodings(record, self.fields)
        if values is None or not all(any(v) for v in values):
            return
        parts = tuple(v.hex() for v in values)
        yield (*parts, record.sex) if self.with_sex else parts


@dataclass(frozen=True, slots=True)
class ClkMinHash:
    """Locality-sensitive blocking: ``bands`` keys per record, each the MinHash values of the
    record's set bits (over ``fields`` side by side) under ``rows`` fixed random permutations.
    Two encodings with Jaccard similarity ``s`` share at least one band with probability
    ``1 - (1 - s^rows)^bands``. The permutations are public (seeded); the keys are HMAC digests
    like every blocking key, so they reveal nothing without the blocking key."""

    fields: tuple[str, ...]
    bands: int = 8
    rows: int = 3
    seed: int = 0
    name: str = "clk_minhash"

    def _permutations(self, width: int) -> npt.NDArray[np.int32]:
        return _PERMUTATIONS.get((self.seed, self.bands * self.rows, width))

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        values = _encodings(record, self.fields)
        if values is None or not all(any(v) for v in values):
            return
        bits = np.unpackbits(np.frombuffer(b"".join(values), dtype=np.uint8), bitorder="little")
        positions = np.flatnonzero(bits)
        signature = self._permutations(len(bits))[:, positions].min(axis=1)
        for band, row in enumerate(signature.reshape(self.bands, self.rows).tolist()):
            yield (str(band), *(str(v) for v in row))


class _PermutationCache:
    """Random permutations by (seed, count, width), made once per process."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, int], npt.NDArray[np.int32]] = {}

    def get(self, key: tuple[int, int, int]) -> npt.NDArray[np.int32]:
        if key not in self._cache:
            seed, count, width = key
            rng = np.random.default_rng(seed)
            self._cache[key] = np.stack(
                [rng.permutation(width).astype(np.int32) for _ in range(count)]
            )
        return self._cache[key]


_PERMUTATIONS = _PermutationCache()


# --- settings ------------------------------------------------------------------------------


def clk_comparisons() -> tuple[Comparison, ...]:
    return (
        DiceComparison("given_name"),
        DiceComparison("surname"),
        BirthDateDiceComparison(),
        DiceComparison("document_number", term_frequency=False),
        ExactComparison("sex"),
        ExactComparison("nationality"),
    )


def clk_blocking_rules() -> tuple[BlockingRule, ...]:
    return (
        ClkExact(("date_of_birth",), with_sex=True, name="clk_birth_date_sex"),
        ClkExact(("document_number",), name="clk_document_number"),
        ClkMinHash(("given_name", "surname"), name="clk_minhash_names"),
        ClkMinHash(("given_name", "surname", "date_of_birth"), name="clk_minhash_record"),
    )


def clk_training_rules() -> tuple[TrainingRule, ...]:
    """As the plain ones: pairs with the same date of birth learn everything but the date; pairs
    with the same names learn the date (names, sex and nationality fixed)."""
    return (
        TrainingRule(ClkExact(("date_of_birth",), name="clk_birth_date"), ("date_of_birth",)),
        TrainingRule(
            ClkExact(("given_name", "surname"), name="clk_full_name"),
            ("given_name", "surname", "sex", "nationality"),
        ),
    )


def clk_settings(**overrides: object) -> LinkageSettings:
    """The settings of a CLK-only run (thresholds and limits as the plain defaults')."""
    values: dict[str, object] = {
        "comparisons": clk_comparisons(),
        "blocking_rules": clk_blocking_rules(),
        "training_rules": clk_training_rules(),
        **overrides,
    }
    return LinkageSettings(**values)  # type: ignore[arg-type]


# --- linker, training, batch (as linker.py and batch.py, over a ClkTable) --------------------


class ClkLinker(Linker):
    """A :class:`Linker` whose tables carry encodings: scores a :class:`ClkPreparedRecord`
    against candidates (plain records compare as "no data" on the encoded fields)."""

    table = ClkTable


def train_clk(
    settings: LinkageSettings,
    records: Sequence[PreparedRecord],
    hasher: KeyedHasher,
    *,
    groups: Sequence[int] | None = None,
    within_groups: bool = True,
    seed_model: MatchModel | None = None,
) -> Training:
    """:func:`trust.linkage.linker.train` over a :class:`ClkTable` (the same steps: ``u`` from
    random pairs, ``m`` by EM per training rule with ``u`` fixed, the prior from the sessions)."""
    return train(
        settings,
        records,
        hasher,
        groups=groups,
        within_groups=within_groups,
        seed_model=seed_model,
        linker_class=ClkLinker,
    )


def link_clk_batch(
    inputs: Sequence[Sequence[ClkRecord]],
    *,
    dedupe: bool,
    settings: LinkageSettings | None = None,
    key: bytes | None = None,
) -> BatchResult:
    """:func:`trust.linkage.batch.link_batch` for encoded records: ``inputs`` are the sources'
    records (ids unique across them); with ``dedupe`` pairs within a source are linked too. The
    blocking ``key`` (not the CLK key: the trust never needs that to link) defaults to a fresh
    random secret."""
    settings = settings or clk_settings()
    if not inputs or (len(inputs) == 1 and not dedupe):
        raise LinkageError(LinkageReason.BAD_MODE, "one input can only be deduplicated")
    prepared = [prepare_clk(r) for batch in inputs for r in batch]
    groups = [g for g, batch in enumerate(inputs) for _ in batch]
    if len({r.id for r in prepared}) != len(prepared):
        raise LinkageError(LinkageReason.DUPLICATE_ID, "ids repeat across the inputs")
    hasher = KeyedHasher(key if key is not None else os.urandom(32))
    training = train_clk(settings, prepared, hasher, groups=groups, within_groups=dedupe)
    scored = training.linker.score_vectors(training.table, training.vectors)
    ids = training.table.ids
    probabilities = np.round(scored.probability, 12).tolist()
    pairs = (
        ScoredPair.of(ids[a], ids[b], p)
        for a, b, p in zip(
            scored.vectors.left.tolist(), scored.vectors.right.tolist(), probabilities, strict=True
        )
    )
    group_of = dict(zip(ids, groups, strict=True))
    clustering = cluster(
        ids,
        pairs,
        upper=settings.upper,
        lower=settings.lower,
        keep=None if dedupe else (lambda a, b: group_of[a] != group_of[b]),
        conflict=settings.conflict,
    )
    return BatchResult(
        clustering,
        training.linker,
        training.estimation,
        len(scored.vectors.left),
        training.oversized_blocks,
    )
