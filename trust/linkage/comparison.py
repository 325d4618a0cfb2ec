"""Comparisons: for each pair of records, one level per compared field, from a named library.

Each comparison is a small frozen object named for *what* it compares and *how*
(``NameComparison("given_name")``, ``DateComparison("date_of_birth")``,
``EditDistanceComparison("document_number", (1, 2))``). Its levels run from the strongest
agreement to ``other``; level 0 is reserved for "no data" (either side empty), which carries no
weight. String similarity comes from ``rapidfuzz`` (Jaro-Winkler, optimal string alignment,
token sets) evaluated over arrays of pairs — there is no hand-written string metric here.

:func:`compare_pairs` evaluates all comparisons for arrays of pairs and returns a
:class:`ComparisonVectors` (a level per pair and comparison); scoring one record against its
candidates uses the same function with one left record, so batch and incremental agree exactly.
Many pairs (a batch) are compared a million at a time, text columns as codes of one
:class:`Vocabulary` and each string metric once per distinct pair of values: the same levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.process import cpdist

from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.record import RecordTable, Strings

Levels = npt.NDArray[np.int8]
Mask = npt.NDArray[np.bool_]
Index = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]

NameField = Literal["given_name", "surname"]
_NAME_ATTRS: dict[str, tuple[str, str, str, str, str]] = {
    "given_name": ("given", "given_key", "given_ordered", "given_multi", "given_key_long"),
    "surname": ("surname", "surname_key", "surname_ordered", "surname_multi", "surname_key_long"),
}
_SWAPPABLE = {
    "given": "surname",
    "surname": "given",
    "given_key": "surname_key",
    "surname_key": "given_key",
    "given_ordered": "surname_ordered",
    "surname_ordered": "given_ordered",
    "given_multi": "surname_multi",
    "surname_multi": "given_multi",
    "given_key_long": "surname_key_long",
    "surname_key_long": "given_key_long",
}
_COLUMNS = {
    "date_of_birth": "birth_digits",
    "sex": "sex",
    "nationality": "nationality",
    "document_number": "document",
    "address": "address",
    "postcode": "postcode",
}
# Both cross comparisons must be this close before a pair is read as given name and surname
# swapped, and the swapped reading must beat the recorded one by this margin.
SWAP_SIMILARITY = 0.9
SWAP_MARGIN = 0.2


# From this many pairs a string metric is computed once per distinct pair of values and spread
# back: blocks of namesakes repeat the same few values, and the per-pair cost is in the metric.
DISTINCT_FROM = 4096
# compare_pairs compares at most this many pairs at a time (the gathered columns of each batch
# of pairs are freed before the next), so memory stays bounded however many pairs are compared.
CHUNK_PAIRS = 1 << 20


class Vocabulary:
    """One code per distinct text value of a table's columns (a code space shared by all of
    them, so a swapped name column compares in it too), and string metrics evaluated once per
    distinct pair of codes. Made once per :func:`compare_pairs` call and shared by its batches."""

    def __init__(self, table: RecordTable) -> None:
        self.table = table
        self._index: dict[str, int] = {}
        self._values: list[str] = []
        self._columns: dict[str, npt.NDArray[np.int64]] = {}

    def codes(self, column: str) -> npt.NDArray[np.int64]:
        if column not in self._columns:
            index, values = self._index, self._values

            def code(value: str) -> int:
                found = index.get(value)
                if found is None:
                    found = index[value] = len(values)
                    values.append(value)
                return found

            column_values = getattr(self.table, column).tolist()
            self._columns[column] = np.fromiter(
                (code(v) for v in column_values), np.int64, len(column_values)
            )
        return self._columns[column]

    def code_of(self, value: str) -> int:
        """The code of ``value`` (-1 if no column coded so far holds it)."""
        return self._index.get(value, -1)

    def metric(
        self,
        scorer: Any,
        left: npt.NDArray[np.int64],
        right: npt.NDArray[np.int64],
        **kwargs: Any,
    ) -> npt.NDArray[Any]:
        """``cpdist`` of the values coded ``left[k]`` and ``right[k]``, evaluated once per
        distinct pair of values (the same result: a metric is a function of its two values)."""
        import pandas as pd  # here: only large comparisons need it

        width = max(len(self._values), 1)
        index, distinct = pd.factorize(left * width + right)
        values = _object_array(self._values)
        scores = np.asarray(
            cpdist(values[distinct // width], values[distinct % width], scorer=scorer, **kwargs)
        )
        out: npt.NDArray[Any] = scores[index]
        return out


def _object_array(values: Sequence[str]) -> Strings:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _jaro_winkler(left: Strings, right: Strings) -> Floats:
    return np.asarray(cpdist(left, right, scorer=JaroWinkler.normalized_similarity))


class PairView:
    """Two sides of many pairs over one :class:`RecordTable`: ``left(c)[k]`` is column ``c`` of
    the left record of pair ``k``. Name columns of the right side are read swapped where the
    pair's given name and surname are swapped (``swapped[k]``)."""

    def __init__(
        self, table: RecordTable, left: Index, right: Index, vocabulary: Vocabulary | None = None
    ) -> None:
        self.table = table
        self.left_index = left
        self.right_index = right
        self._left: dict[str, Strings] = {}
        self._right: dict[str, Strings] = {}
        self._vocabulary = vocabulary
        self._codes: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        self.swapped = self._swaps()

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(self.table)
        return self._vocabulary

    def metric(self, scorer: Any, column: str, **kwargs: Any) -> npt.NDArray[Any]:
        """``scorer`` (a rapidfuzz metric) of column ``column`` over the pairs, the right side
        read swapped as :meth:`right`; many pairs are scored once per distinct pair of values."""
        if len(self) < DISTINCT_FROM:
            return np.asarray(
                cpdist(self.left(column), self.right(column), scorer=scorer, **kwargs)
            )
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(self.table)
        left, right = self._sides(column)
        return self._vocabulary.metric(scorer, left, right, **kwargs)

    def _sides(self, column: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Both sides of ``column`` as :meth:`left` and :meth:`right`, or as their codes in the
        vocabulary (equal where the values are) when there is one."""
        if self._vocabulary is None:
            return self.left(column), self.right(column)
        if column not in self._codes:
            v = self._vocabulary
            right = v.codes(column)[self.right_index]
            other = _SWAPPABLE.get(column)
            if other is not None and self.swapped.any():
                right = np.where(self.swapped, v.codes(other)[self.right_index], right)
            self._codes[column] = (v.codes(column)[self.left_index], right)
        return self._codes[column]

    def _blank(self) -> Any:
        return "" if self._vocabulary is None else self._vocabulary.code_of("")

    def equal(self, column: str) -> Mask:
        """Whether the two sides of ``column`` hold the same value."""
        left, right = self._sides(column)
        return np.asarray(left == right, dtype=np.bool_)

    def blank(self, column: str) -> Mask:
        """Whether either side of ``column`` is empty."""
        left, right = self._sides(column)
        empty = self._blank()
        return np.asarray((left == empty) | (right == empty), dtype=np.bool_)

    def _similarity(self, left: str, left_rows: Index, right: str, right_rows: Index) -> Floats:
        """Jaro-Winkler of column ``left`` at ``left_rows`` against ``right`` at ``right_rows``."""
        scorer = JaroWinkler.normalized_similarity
        if len(left_rows) < DISTINCT_FROM:
            t = self.table
            return _jaro_winkler(getattr(t, left)[left_rows], getattr(t, right)[right_rows])
        v = self.vocabulary
        return v.metric(scorer, v.codes(left)[left_rows], v.codes(right)[right_rows])

    def __len__(self) -> int:
        return len(self.left_index)

    def left(self, column: str) -> Strings:
        if column not in self._left:
            self._left[column] = getattr(self.table, column)[self.left_index]
        return self._left[column]

    def right(self, column: str) -> Strings:
        if column not in self._right:
            values = getattr(self.table, column)[self.right_index]
            other = _SWAPPABLE.get(column)
            if other is not None and self.swapped.any():
                values = np.where(
                    self.swapped, getattr(self.table, other)[self.right_index], values
                )
            self._right[column] = values
        return self._right[column]

    def left_mask(self, column: str) -> Mask:
        return np.asarray(getattr(self.table, column)[self.left_index], dtype=np.bool_)

    def right_mask(self, column: str) -> Mask:
        values = getattr(self.table, column)[self.right_index]
        other = _SWAPPABLE.get(column)
        if other is not None and self.swapped.any():
            values = np.where(self.swapped, getattr(self.table, other)[self.right_index], values)
        return np.asarray(values, dtype=np.bool_)

    def left_ints(self, column: str) -> npt.NDArray[np.int32]:
        return np.asarray(getattr(self.table, column)[self.left_index])

    def right_ints(self, column: str) -> npt.NDArray[np.int32]:
        return np.asarray(getattr(self.table, column)[self.right_index])

    def _swaps(self) -> Mask:
        t, li, ri = self.table, self.left_index, self.right_index
        given: npt.NDArray[Any]
        surname: npt.NDArray[Any]
        empty: object
        if self._vocabulary is None:
            given, surname, empty = t.given, t.surname, ""
        else:
            given = self._vocabulary.codes("given")
            surname = self._vocabulary.codes("surname")
            empty = self._vocabulary.code_of("")
        gl, sl, gr, sr = given[li], surname[li], given[ri], surname[ri]
        known = (gl != empty) & (sl != empty) & (gr != empty) & (sr != empty)
        swapped = np.zeros(len(li), dtype=np.bool_)
        candidates = np.flatnonzero(known & (gl != gr))
        if len(candidates) == 0:
            return swapped
        lc, rc = li[candidates], ri[candidates]
        cross_a = self._similarity("given", lc, "surname", rc)
        cross_b = self._similarity("surname", lc, "given", rc)
        straight = self._similarity("given", lc, "given", rc)
        straight = straight + self._similarity("surname", lc, "surname", rc)
        swapped[candidates] = (
            (cross_a >= SWAP_SIMILARITY)
            & (cross_b >= SWAP_SIMILARITY)
            & (cross_a + cross_b >= straight + SWAP_MARGIN)
        )
        return swapped


class Comparison(Protocol):
    """One field compared: ``levels`` labels levels 1.. (strongest first, ``other`` last)."""

    @property
    def name(self) -> str: ...

    @property
    def levels(self) -> tuple[str, ...]: ...

    @property
    def term_frequency_column(self) -> str | None:
        """The table column whose value frequency adjusts the ``exact`` level (level 1)."""
        ...

    @property
    def penalty_only(self) -> bool:
        """Its levels are read given the other comparisons (``u`` is 1 at every level), so it
        can only lower a weight by ``log2 m``: name order matters only once names agree."""
        ...

    def compare(self, pairs: PairView) -> Levels: ...


def _assign(n: int, null: Mask, conditions: Sequence[Mask]) -> Levels:
    """Level 0 where ``null``, else the first condition that holds (1-based), else the last
    level (``other``)."""
    out = np.full(n, len(conditions) + 1, dtype=np.int8)
    decided = null.copy()
    out[null] = 0
    for level, cond in enumerate(conditions, start=1):
        take = cond & ~decided
        out[take] = level
        decided |= take
    return out


@dataclass(frozen=True, slots=True)
class _FullWeight:
    """No term-frequency adjustment and full weight, unless a subclass says otherwise."""

    @property
    def term_frequency_column(self) -> str | None:
        return None

    @property
    def penalty_only(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class _OneField(_FullWeight):
    """A comparison of one field, named after it."""

    field_name: str

    @property
    def name(self) -> str:
        return self.field_name


@dataclass(frozen=True, slots=True)
class NameComparison(_OneField):
    """A name field: exact, romanisation variant (same key, or same parts in another order),
    one a part of the other (compound names), then Jaro-Winkler thresholds."""

    field_name: NameField
    jaro_winkler: tuple[float, ...] = (0.92, 0.80)
    term_frequency: bool = True

    @property
    def levels(self) -> tuple[str, ...]:
        jw = tuple(f"jaro_winkler>={t:.2f}" for t in self.jaro_winkler)
        return ("exact", "romanisation_variant", "compound_part", *jw, "other")

    @property
    def term_frequency_column(self) -> str | None:
        return _NAME_ATTRS[self.field_name][0] if self.term_frequency else None

    def compare(self, pairs: PairView) -> Levels:
        text, key, ordered, multi_part, long_key = _NAME_ATTRS[self.field_name]
        null = pairs.blank(text)
        jw = pairs.metric(JaroWinkler.normalized_similarity, text)
        long_enough = pairs.left_mask(long_key)
        same_key = pairs.equal(key) | pairs.equal(ordered)
        variant = same_key & (long_enough | (jw >= 0.75))
        compound = pairs.metric(fuzz.token_set_ratio, text) >= 100.0
        multi = pairs.left_mask(multi_part) | pairs.right_mask(multi_part)
        conditions = [pairs.equal(text), variant, compound & multi]
        conditions += [jw >= t for t in self.jaro_winkler]
        return _assign(len(pairs), null, conditions)


@dataclass(frozen=True, slots=True)
class NameOrderComparison:
    """Whether given name and surname were read as recorded or swapped (see :class:`PairView`)."""

    @property
    def name(self) -> str:
        return "name_order"

    @property
    def levels(self) -> tuple[str, ...]:
        return ("as_recorded", "swapped")

    @property
    def term_frequency_column(self) -> str | None:
        return None

    @property
    def penalty_only(self) -> bool:
        return True

    def compare(self, pairs: PairView) -> Levels:
        t, li, ri = pairs.table, pairs.left_index, pairs.right_index
        null = (t.given[li] == "") | (t.surname[li] == "") | (t.given[ri] == "")
        null |= t.surname[ri] == ""
        return _assign(len(pairs), null, [~pairs.swapped])


@dataclass(frozen=True, slots=True)
class DateComparison(_OneField):
    """A date of birth: exact; agreeing wherever both are known (missing parts); day and month
    swapped; one or two digits keyed wrongly (optimal string alignment on ``YYYYMMDD``); other."""

    field_name: str = "date_of_birth"

    @property
    def levels(self) -> tuple[str, ...]:
        return (
            "exact",
            "agrees_where_known",
            "day_month_swapped",
            "one_edit",
            "two_edits",
            "other",
        )

    def compare(self, pairs: PairView) -> Levels:
        yl, yr = pairs.left_ints("birth_year"), pairs.right_ints("birth_year")
        ml, mr = pairs.left_ints("birth_month"), pairs.right_ints("birth_month")
        dl, dr = pairs.left_ints("birth_day"), pairs.right_ints("birth_day")
        null = (yl < 0) | (yr < 0)
        complete = (ml > 0) & (mr > 0) & (dl > 0) & (dr > 0)
        same_year = yl == yr
        exact = complete & same_year & (ml == mr) & (dl == dr)
        where_known = (
            ~complete
            & same_year
            & ((ml < 0) | (mr < 0) | (ml == mr))
            & ((dl < 0) | (dr < 0) | (dl == dr))
        )
        swapped = complete & same_year & (ml == dr) & (dl == mr) & (ml != dl)
        edits = pairs.metric(OSA.distance, "birth_digits", dtype=np.int32)
        conditions = [exact, where_known, swapped, complete & (edits <= 1), complete & (edits <= 2)]
        return _assign(len(pairs), null, conditions)


@dataclass(frozen=True, slots=True)
class ExactComparison(_OneField):
    """A code compared exactly: sex, nationality."""

    @property
    def levels(self) -> tuple[str, ...]:
        return ("exact", "other")

    def compare(self, pairs: PairView) -> Levels:
        column = _COLUMNS[self.field_name]
        return _assign(len(pairs), pairs.blank(column), [pairs.equal(column)])


@dataclass(frozen=True, slots=True)
class EditDistanceComparison(_OneField):
    """An identifier keyed by hand (document number, postcode): exact, then within each number
    of edits (optimal string alignment: a transposition counts once)."""

    field_name: str
    edits: tuple[int, ...] = (1,)

    @property
    def levels(self) -> tuple[str, ...]:
        return ("exact", *(f"edits<={e}" for e in self.edits), "other")

    def compare(self, pairs: PairView) -> Levels:
        column = _COLUMNS[self.field_name]
        distance = pairs.metric(OSA.distance, column, dtype=np.int32)
        exact = pairs.equal(column)
        return _assign(
            len(pairs), pairs.blank(column), [exact, *(distance <= e for e in self.edits)]
        )


@dataclass(frozen=True, slots=True)
class TextSimilarityComparison(_OneField):
    """Free text such as an address: exact, then Jaro-Winkler thresholds."""

    field_name: str
    jaro_winkler: tuple[float, ...] = (0.90, 0.75)

    @property
    def levels(self) -> tuple[str, ...]:
        return ("exact", *(f"jaro_winkler>={t:.2f}" for t in self.jaro_winkler), "other")

    def compare(self, pairs: PairView) -> Levels:
        column = _COLUMNS[self.field_name]
        jw = pairs.metric(JaroWinkler.normalized_similarity, column)
        exact = pairs.equal(column)
        return _assign(
            len(pairs), pairs.blank(column), [exact, *(jw >= t for t in self.jaro_winkler)]
        )


@dataclass(frozen=True, slots=True)
class _Context(_FullWeight):
    """A comparison of the record's context (a fixed name and levels)."""

    name: str
    levels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BirthYearEstimateComparison(_Context):
    """The year of birth where at least one record knows it only from an age: within a year
    (an age is a year of birth give or take one), within three, other. No data where both
    records have a date of birth (the date comparison weighs those) or either has neither."""

    name: str = "age"
    levels: tuple[str, ...] = ("within_1_year", "within_3_years", "other")

    def compare(self, pairs: PairView) -> Levels:
        yl, yr = pairs.left_ints("birth_estimate"), pairs.right_ints("birth_estimate")
        from_age = pairs.left_mask("birth_from_age") | pairs.right_mask("birth_from_age")
        null = (yl < 0) | (yr < 0) | ~from_age
        gap = np.abs(yl - yr)
        return _assign(len(pairs), null, [gap <= 1, gap <= 3])


@dataclass(frozen=True, slots=True)
class EventYearComparison(_Context):
    """The year of exploitation: the same, a year apart, other (the same person in separate
    events is a repeat victim: the model learns how often matches differ)."""

    name: str = "event_year"
    levels: tuple[str, ...] = ("exact", "one_year_apart", "other")

    def compare(self, pairs: PairView) -> Levels:
        yl, yr = pairs.left_ints("event_year"), pairs.right_ints("event_year")
        null = (yl < 0) | (yr < 0)
        gap = np.abs(yl - yr)
        return _assign(len(pairs), null, [gap == 0, gap == 1])


@dataclass(frozen=True, slots=True)
class FormsComparison(_Context):
    """The forms of exploitation: the same set, overlapping sets, disjoint sets — within one
    year of exploitation only. Where the years differ the records most likely describe two
    events (a repeat victim's, or two persons'), and the forms of one event say nothing about
    the other's: no weight (level 0). Weighing them too counted "another event" twice — once
    by the year, once by the forms — and kept repeat victims with the same name and date of
    birth apart."""

    name: str = "forms"
    levels: tuple[str, ...] = ("same", "overlap", "other")

    def compare(self, pairs: PairView) -> Levels:
        fl = np.asarray(pairs.table.forms[pairs.left_index])
        fr = np.asarray(pairs.table.forms[pairs.right_index])
        yl, yr = pairs.left_ints("event_year"), pairs.right_ints("event_year")
        other_event = (yl >= 0) & (yr >= 0) & (yl != yr)
        null = (fl == 0) | (fr == 0) | other_event
        return _assign(len(pairs), null, [fl == fr, (fl & fr) != 0])


def default_comparisons() -> tuple[Comparison, ...]:
    """The comparisons of the batch format's columns (address, postcode and the context columns
    only weigh when both records have them)."""
    return (
        NameComparison("given_name"),
        NameComparison("surname"),
        NameOrderComparison(),
        DateComparison(),
        ExactComparison("sex"),
        ExactComparison("nationality"),
        EditDistanceComparison("document_number", (1, 2)),
        TextSimilarityComparison("address"),
        EditDistanceComparison("postcode", (1,)),
        BirthYearEstimateComparison(),
        EventYearComparison(),
        FormsComparison(),
    )


@dataclass(frozen=True, slots=True)
class ComparisonVectors:
    """The outcome of comparing pairs: ``levels[k, c]`` is pair ``k``'s level on comparison
    ``c`` (0 = no data). ``left``/``right`` index the :class:`RecordTable` compared."""

    names: tuple[str, ...]
    left: Index
    right: Index
    levels: npt.NDArray[np.int8]
    swapped: Mask = field(repr=False)

    def __len__(self) -> int:
        return len(self.left)


def compare_pairs(
    comparisons: Sequence[Comparison], table: RecordTable, left: Index, right: Index
) -> ComparisonVectors:
    """Every comparison over the pairs ``(left[k], right[k])`` of ``table``."""
    if len(left) != len(right):
        raise LinkageError(LinkageReason.BAD_SETTINGS, "left and right pair indexes differ")
    left = np.asarray(left, dtype=np.intp)
    right = np.asarray(right, dtype=np.intp)
    n = len(left)
    levels = np.zeros((n, len(comparisons)), dtype=np.int8)
    swapped = np.zeros(n, dtype=np.bool_)
    vocabulary = Vocabulary(table) if n >= DISTINCT_FROM else None
    # pairs are compared independently: a batch at a time gives the same levels as all at once
    for start in range(0, n, CHUNK_PAIRS):
        end = min(start + CHUNK_PAIRS, n)
        view = PairView(table, left[start:end], right[start:end], vocabulary)
        for c, comparison in enumerate(comparisons):
            levels[start:end, c] = comparison.compare(view)
        swapped[start:end] = view.swapped
    return ComparisonVectors(
        names=tuple(c.name for c in comparisons),
        left=left,
        right=right,
        levels=levels,
        swapped=swapped,
    )
