"""Blocking: which pairs are worth comparing, as keyed hashes that reveal nothing in clear.

A blocking rule turns a prepared record into zero or more tuples of parts (a phonetic code of a
name part and the birth year; the full date of birth and sex; …). Two records are candidates when
they share a tuple under any rule. Tuples never leave this module in clear: :class:`KeyedHasher`
turns each into an HMAC-SHA256 digest under a secret key, with the rule's name and each part
length-prefixed (so no two different tuples can encode alike), truncated to 128 bits. An
incremental linker keeps ``digest -> record`` in an index table and erases a person's digests
with the person; without the key a digest cannot be tested against guessed names.

A key shared by many records (a common name and its birth year, a nationality and a common given
name) meets every namesake, and their number grows with the store. So each key of a rule also
comes *refined* (:class:`Refinement`): the same parts with the record's sex, nationality and year
of exploitation, or with its complete date of birth. An incremental linker files a record under
its keys and their refinements, and looks a key up alone only while its block is small
(``block_cap``); a larger block is looked up through the key's refinements instead (see
:mod:`trust.linkage.resolver`), so the records a new record meets stay about as many however
large the store grows.

:func:`candidate_pairs` is the batch form: an in-memory join of all records on their digests.
"""

from __future__ import annotations

import hmac
from array import array
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

import jellyfish
import numpy as np
import numpy.typing as npt

from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.normalise import romanisation_key
from trust.linkage.record import PreparedRecord

Index = npt.NDArray[np.intp]
Key = TypeVar("Key", bound=tuple[str, ...])  # a record's key in an index
MIN_KEY_BYTES = 16
DIGEST_HEX = 32  # 128 bits: collisions are negligible at any national or regional volume


# a name part's Soundex code, remembered for the latest distinct parts (names repeat)
_soundex = lru_cache(maxsize=1 << 16)(jellyfish.soundex)


class KeyedHasher:
    """HMAC-SHA256 under a secret key; the only way blocking and frequency keys are made."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise LinkageError(
                LinkageReason.BAD_KEY, f"a blocking key needs at least {MIN_KEY_BYTES} bytes"
            )
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "KeyedHasher(<secret>)"

    def for_run(self) -> RunHasher:
        """A hasher under the same key that remembers its digests while one run lasts."""
        return RunHasher(self._key)

    def digest(self, domain: str, parts: Sequence[str]) -> str:
        """The hex digest of ``parts`` in ``domain`` (a rule or column name)."""
        chunks = []
        for item in (domain, *parts):
            e = item.encode()
            chunks.append(len(e).to_bytes(4, "big"))
            chunks.append(e)
        # one-shot, in C (a record has some thirty keys)
        return hmac.digest(self._key, b"".join(chunks), "sha256").hex()[:DIGEST_HEX]


class RunHasher(KeyedHasher):
    """A :class:`KeyedHasher` that remembers each digest it made, for one batch run: a batch
    asks for the digests of the same parts many times over (records share names, years and
    dates of birth; a record's keys are asked for once per training rule and once to link).
    The digests are the same; the memory grows with the distinct parts (some hundreds of bytes
    each), so it lives as long as the run."""

    __slots__ = ("_made",)

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._made: dict[tuple[str, ...], str] = {}

    def __repr__(self) -> str:
        return "RunHasher(<secret>)"

    def digest(self, domain: str, parts: Sequence[str]) -> str:
        at = (domain, *parts)
        made = self._made.get(at)
        if made is None:
            made = self._made[at] = super().digest(domain, parts)
        return made


@dataclass(frozen=True, slots=True, order=True)
class BlockingKey:
    """One blocking key of a record: the rule that made it and its keyed digest; for a refined
    key (``rule`` reads ``<rule>+<refinement>``), ``refines`` is the digest of the key it narrows
    (empty for a rule's own key)."""

    rule: str
    digest: str
    refines: str = ""


class BlockingRule(Protocol):
    """A named rule: the part tuples a record shares with its candidates."""

    @property
    def name(self) -> str: ...

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]: ...


def _name_parts(record: PreparedRecord) -> list[str]:
    parts: list[str] = []
    for name in (record.given, record.surname):
        if name is not None:
            parts.extend(p for p in name.parts if len(p) >= 2)
    return parts


@dataclass(frozen=True, slots=True)
class NamePartWithBirthYear:
    """Each name part (given or surname, so swapped names still meet) by its Soundex code and
    by its romanisation key, with the year of birth."""

    name: str = "name_part_birth_year"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.birth is None:
            return
        year = str(record.birth.year)
        for part in _name_parts(record):
            yield ("soundex", _soundex(part), year)
            yield ("key", romanisation_key(part), year)


@dataclass(frozen=True, slots=True)
class BirthDateWithSex:
    """The complete date of birth and sex (sex left out where unknown)."""

    name: str = "birth_date_sex"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.birth is not None and record.birth.complete:
            yield (record.birth.digits(), record.sex)


@dataclass(frozen=True, slots=True)
class DocumentNumber:
    """The document number (four characters at least: shorter ones are not identifying)."""

    name: str = "document_number"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if len(record.document) >= 4:
            yield (record.document,)


@dataclass(frozen=True, slots=True)
class NationalityWithGivenPrefix:
    """Nationality and the first letters of the given name (both needed)."""

    prefix: int = 3
    name: str = "nationality_given_prefix"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.nationality and record.given is not None:
            yield (record.nationality, record.given.text.replace(" ", "")[: self.prefix])


@dataclass(frozen=True, slots=True)
class NamePartWithNationality:
    """Each name part (given or surname) by its romanisation key, with the nationality (both
    needed): the records that carry no year of birth (an age, or nothing) meet no one under
    :class:`NamePartWithBirthYear`, and a transliterated or mistyped given name differs in its
    first letters. At 2,000 simulated persons 14 of the 36 true persons left split had no key
    in common, most of them scored 0.9 or more (a surname, or a given name only, in another
    spelling). A common name's block within a nationality is large: the incremental lookup
    reads it through its refinements (sex, nationality and year of exploitation)."""

    name: str = "name_part_nationality"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if not record.nationality:
            return
        for part in _name_parts(record):
            yield (record.nationality, romanisation_key(part))


@dataclass(frozen=True, slots=True)
class FullNameSound:
    """The Soundex codes of the first given-name part and first surname part, in either order
    (catches a wrong date of birth)."""

    name: str = "full_name_sound"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.given is not None and record.surname is not None:
            a = _soundex(record.given.parts[0])
            b = _soundex(record.surname.parts[0])
            yield tuple(sorted((a, b)))


@dataclass(frozen=True, slots=True)
class PostcodeWithNameInitials:
    """Postcode with the initials of given name and surname (where the address is known)."""

    name: str = "postcode_initials"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.postcode and record.given is not None and record.surname is not None:
            yield (record.postcode, record.given.text[0], record.surname.text[0])


@dataclass(frozen=True, slots=True)
class BirthDate:
    """The complete date of birth alone (a training rule: see :mod:`trust.linkage.linker`)."""

    name: str = "birth_date"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.birth is not None and record.birth.complete:
            yield (record.birth.digits(),)


@dataclass(frozen=True, slots=True)
class FullNameKey:
    """The romanisation keys of given name and surname, in either order (a training rule)."""

    name: str = "full_name_key"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.given is not None and record.surname is not None:
            yield tuple(sorted((record.given.key, record.surname.key)))


@dataclass(frozen=True, slots=True)
class AddressText:
    """The whole address as folded text (where there is one of some length)."""

    name: str = "address"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if len(record.address) >= 6:
            yield (record.address,)


@dataclass(frozen=True, slots=True)
class PostcodeWithStreet:
    """Postcode with the first letters of the street (the address's first word of letters)."""

    prefix: int = 4
    name: str = "postcode_street"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        words = [w for w in record.address.split() if w.isalpha()]
        if record.postcode and words:
            yield (record.postcode, words[0][: self.prefix])


class Refinement(Protocol):
    """What narrows a rule's key whose block grew too large: parts added to the key's own."""

    @property
    def name(self) -> str: ...

    def applies_to(self, rule: str) -> bool: ...

    def parts(self, record: PreparedRecord) -> tuple[str, ...] | None: ...


@dataclass(frozen=True, slots=True)
class GroupAndEventYear:
    """Sex, nationality and year of exploitation (nothing when all three are unknown): the
    records of one person mostly describe one event, and a name is shared by far fewer within
    one sex, nationality and year than overall."""

    name: str = "group_event_year"

    def applies_to(self, rule: str) -> bool:
        return True

    def parts(self, record: PreparedRecord) -> tuple[str, ...] | None:
        year = str(record.event_year) if record.event_year >= 0 else ""
        if not (record.sex or record.nationality or year):
            return None
        return (record.sex, record.nationality, year)


@dataclass(frozen=True, slots=True)
class CompleteBirthDate:
    """The complete date of birth (for rules that do not already hold it): the namesakes of a
    common name born on the same day are few. Not for ``name_part_nationality`` either: a name
    part with a complete date of birth is already looked up (with its year) under
    ``name_part_birth_year`` and that rule's refinement; that rule serves records without one."""

    name: str = "birth_date"
    holds_it: frozenset[str] = frozenset({"birth_date_sex", "birth_date", "name_part_nationality"})

    def applies_to(self, rule: str) -> bool:
        return rule not in self.holds_it

    def parts(self, record: PreparedRecord) -> tuple[str, ...] | None:
        if record.birth is None or not record.birth.complete:
            return None
        return (record.birth.digits(),)


def default_refinements() -> tuple[Refinement, ...]:
    return (GroupAndEventYear(), CompleteBirthDate())


def default_rules() -> tuple[BlockingRule, ...]:
    return (
        NamePartWithBirthYear(),
        BirthDateWithSex(),
        DocumentNumber(),
        NationalityWithGivenPrefix(),
        NamePartWithNationality(),
        FullNameSound(),
        PostcodeWithNameInitials(),
        AddressText(),
        PostcodeWithStreet(),
    )


def blocking_keys(
    record: PreparedRecord,
    rules: Sequence[BlockingRule],
    hasher: KeyedHasher,
    refinements: Sequence[Refinement] = (),
) -> tuple[BlockingKey, ...]:
    """A record's distinct blocking keys under ``rules``, sorted; with ``refinements``, each
    rule's key also refined by each refinement that applies (and has parts for the record)."""
    extra = [(f, f.parts(record)) for f in refinements]
    keys: set[BlockingKey] = set()
    for rule in rules:
        narrowing = [(f.name, p) for f, p in extra if p is not None and f.applies_to(rule.name)]
        for parts in rule.parts(record):
            digest = hasher.digest(rule.name, parts)
            keys.add(BlockingKey(rule.name, digest))
            for name, more in narrowing:
                refined = f"{rule.name}+{name}"
                keys.add(BlockingKey(refined, hasher.digest(refined, (*parts, *more)), digest))
    return tuple(sorted(keys, key=lambda k: (k.rule, k.digest, k.refines)))


@dataclass(frozen=True, slots=True)
class Lookup:
    """How an incremental linker looks a record's candidates up: each of its keys (digests) with
    the refined keys to use instead when the key's block is larger than the cap."""

    keys: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, keys: Sequence[BlockingKey]) -> Lookup:
        refined: dict[str, list[str]] = {}
        for k in keys:
            if k.refines:
                refined.setdefault(k.refines, []).append(k.digest)
        return cls(
            tuple(
                (k.digest, tuple(sorted(refined.get(k.digest, ())))) for k in keys if not k.refines
            )
        )

    def digests(self) -> tuple[str, ...]:
        """Every digest a record is filed under (its keys and their refinements)."""
        return tuple(d for key, narrow in self.keys for d in (key, *narrow))


def rank_candidates(hits: Mapping[Key, int], limit: int, first: Collection[Key] = ()) -> list[Key]:
    """At most ``limit`` candidates: those in ``first`` (sharing an identifier) before others,
    then those found under the most keys, then by key — a cheap score from the index alone, so
    a bounded, deterministic choice among many candidates."""
    return sorted(hits, key=lambda k: (k not in first, -hits[k], k))[:limit]


@dataclass(frozen=True, slots=True)
class CandidatePairs:
    """Pairs to compare (``left[k] < right[k]``, each pair once) and the blocks left out for
    being larger than the limit (a key shared by too many records identifies no one)."""

    left: Index
    right: Index
    oversized_blocks: int


def candidate_pairs(
    keys: Sequence[Sequence[BlockingKey]],
    *,
    groups: Sequence[int] | None = None,
    within_groups: bool = True,
    max_block_size: int = 1000,
    block_cap: int | None = None,
) -> CandidatePairs:
    """All pairs of records sharing a key: the batch form of an index lookup per record.

    ``groups`` gives each record's input; with ``within_groups=False`` only pairs across inputs
    are made (linking without deduplication). With ``block_cap``, as the incremental lookup: a
    rule's key whose block holds more than ``block_cap`` records is joined through its refined
    keys instead (those within the cap), so the pairs grow with the records, not their square;
    without it, refined keys are ignored and blocks over ``max_block_size`` are left out.
    """
    import pandas as pd  # here: only batch linkage joins blocks (pandas costs every command ~0.2 s)

    n = len(keys)
    if block_cap is None:
        keys = [[k for k in ks if not k.refines] for ks in keys]
    rec = np.fromiter((i for i, ks in enumerate(keys) for _ in ks), np.intp)
    digests = [k.digest for ks in keys for k in ks]
    if not digests:
        empty = np.zeros(0, dtype=np.intp)
        return CandidatePairs(empty, empty, 0)
    if block_cap is None:
        codes, _ = pd.factorize(pd.Series(digests, dtype=object))
        frame = pd.DataFrame({"k": codes, "i": rec}).drop_duplicates()
        sizes = frame.groupby("k")["i"].transform("size")
        oversized = int(frame.loc[sizes > max_block_size, "k"].nunique())
        frame = frame[(sizes > 1) & (sizes <= max_block_size)]
    else:
        parents = [k.refines for ks in keys for k in ks]
        codes, uniques = pd.factorize(pd.Series([*digests, *parents], dtype=object))
        frame = pd.DataFrame(
            {"k": codes[: len(digests)], "p": codes[len(digests) :], "i": rec}
        ).drop_duplicates(["k", "i"])
        empty_parent = uniques.get_loc("") if "" in uniques else -1
        count = frame.groupby("k")["i"].size()
        sizes = frame["k"].map(count)
        parent_sizes = frame["p"].map(count).fillna(0)
        own = frame["p"] == empty_parent
        # a key within the cap is used; over it, its refinements within the cap are
        use = np.where(own, sizes <= block_cap, (parent_sizes > block_cap) & (sizes <= block_cap))
        oversized = int(
            frame.loc[(sizes > block_cap) & (own | (parent_sizes > block_cap)), "k"].nunique()
        )
        frame = frame[use & (sizes > 1)][["k", "i"]]
    g = None if groups is None or within_groups else np.asarray(groups, dtype=np.intp)
    codes_lr = _distinct(
        _block_pairs(frame["k"].to_numpy(np.int64), frame["i"].to_numpy(np.int64), n, g)
    )
    return CandidatePairs(
        (codes_lr // n).astype(np.intp), (codes_lr % n).astype(np.intp), oversized
    )


# _block_pairs makes the pairs of this many blocks' records at a time, at most
PAIRS_PER_STEP = 1 << 22


def _block_pairs(
    block: npt.NDArray[np.int64],
    record: npt.NDArray[np.int64],
    n: int,
    groups: Index | None,
    chance: float | None = None,
    rng: np.random.Generator | None = None,
) -> list[npt.NDArray[np.int64]]:
    """Every pair of records within each block (records distinct within a block), as codes
    ``left * n + right`` with ``left < right``; with ``groups``, only pairs across groups.
    Blocks of one size are paired at once (an upper triangle of indices over a block matrix).
    With ``chance`` (and ``rng``), each pair is kept with that chance as it is made."""
    if len(block) == 0:
        return []
    order = np.lexsort((record, block))
    block, record = block[order], record[order]
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    sizes = np.diff(np.r_[starts, len(block)])
    out: list[npt.NDArray[np.int64]] = []
    for size in np.unique(sizes[sizes > 1]).tolist():
        first = starts[sizes == size]
        a, b = np.triu_indices(size, 1)
        step = max(1, PAIRS_PER_STEP // len(a))
        for at in range(0, len(first), step):
            members = record[first[at : at + step, None] + np.arange(size)]
            left, right = members[:, a].ravel(), members[:, b].ravel()  # sorted: left < right
            if chance is not None and rng is not None:
                kept = rng.random(len(left)) < chance
                left, right = left[kept], right[kept]
            if groups is not None:
                across = groups[left] != groups[right]
                left, right = left[across], right[across]
            out.append(left * n + right)
    return out


def _distinct(parts: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    """The distinct codes of ``parts``, sorted (as ``np.unique``, by sorting)."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    codes = np.concatenate(parts)
    if len(codes) == 0:
        return codes
    codes.sort()
    return codes[np.r_[True, codes[1:] != codes[:-1]]]


@dataclass(frozen=True, slots=True)
class BlockCodes:
    """The blocking keys of many records as integer codes, for a batch join that never needs
    the digests themselves: row ``j`` says record ``record[j]`` holds key ``key[j]``, which
    refines key ``parent[j]`` (-1 for a rule's own key). Two records hold the same code exactly
    when :func:`blocking_keys` gives them the same digest (the code stands for the domain and
    parts a digest is made of), so a join on codes pairs the same records as a join on digests
    — without a keyed hash, a :class:`BlockingKey` or a sorted tuple per key of each record."""

    record: npt.NDArray[np.int64]
    key: npt.NDArray[np.int64]
    parent: npt.NDArray[np.int64]
    keys: int  # codes run 0 .. keys - 1

    def per_record(self, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """CSR form: record ``i``'s codes are ``codes[pointers[i]:pointers[i + 1]]``."""
        order = np.argsort(self.record, kind="stable")
        pointers = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.record, minlength=n), out=pointers[1:])
        return pointers, self.key[order]


def block_codes(
    records: Sequence[PreparedRecord],
    rules: Sequence[BlockingRule],
    refinements: Sequence[Refinement] = (),
) -> BlockCodes:
    """:func:`blocking_keys` of every record as :class:`BlockCodes` (the batch form).

    A rule's key is coded by its domain and parts, as its digest is made; a refined key by its
    rule's key, the refinement and the refinement's parts — the same thing whenever a
    refinement's parts have one length (its digest joins the rule's parts and the refinement's
    into one sequence, and only then could two splits of one sequence meet). Where a refinement
    gives parts of several lengths, its keys are coded by the joined sequence itself.
    """
    import pandas as pd  # as candidate_pairs

    codes: dict[tuple[str, ...], int] = {}
    # machine integers (8 bytes each, where a list holds a 36-byte object per key of a record)
    record = array("q")
    key = array("q")
    # per record and refinement: the code of its parts (-1: none), for the refined keys below
    extra_codes: list[dict[tuple[str, ...], int]] = [{} for _ in refinements]
    extra = [array("q") for _ in refinements]
    lengths: list[set[int]] = [set() for _ in refinements]
    applies = [[f.applies_to(rule.name) for f in refinements] for rule in rules]
    names = [rule.name for rule in rules]
    for i, r in enumerate(records):
        for f, refinement in enumerate(refinements):
            more = refinement.parts(r)
            if more is None:
                extra[f].append(-1)
            else:
                lengths[f].add(len(more))
                extra[f].append(extra_codes[f].setdefault(more, len(extra_codes[f])))
        for rule, name in zip(rules, names, strict=True):
            for parts in rule.parts(r):
                record.append(i)
                key.append(codes.setdefault((name, *parts), len(codes)))
    rec = np.frombuffer(record, dtype=np.int64) if record else np.zeros(0, dtype=np.int64)
    own = np.frombuffer(key, dtype=np.int64) if key else np.zeros(0, dtype=np.int64)
    parent = np.full(len(own), -1, dtype=np.int64)
    if not refinements or len(own) == 0:
        return BlockCodes(rec, own, parent, len(codes))
    # a key's rule: codes were handed out in order, so look the rule up per distinct key
    rule_of = np.empty(len(codes), dtype=np.int64)
    index = {name: j for j, name in enumerate(names)}
    for parts, code in codes.items():
        rule_of[code] = index[parts[0]]
    allowed = np.asarray(applies, dtype=np.bool_)  # rule x refinement
    out_rec, out_key, out_parent = [rec], [own], [parent]
    total = len(codes)
    for f, refinement in enumerate(refinements):
        narrowing = np.frombuffer(extra[f], dtype=np.int64)[rec]
        take = (narrowing >= 0) & allowed[rule_of[own], f]
        if not take.any():
            continue
        base, narrow = own[take], narrowing[take]
        if len(lengths[f]) <= 1:
            refined, _ = pd.factorize(base * max(len(extra_codes[f]), 1) + narrow)
        else:
            refined = _joined_codes(codes, extra_codes[f], refinement.name, base, narrow)
        refined = refined.reshape(-1).astype(np.int64)
        out_rec.append(rec[take])
        out_key.append(refined + total)
        out_parent.append(base)
        total += int(refined.max()) + 1
    return BlockCodes(
        np.concatenate(out_rec), np.concatenate(out_key), np.concatenate(out_parent), total
    )


def _joined_codes(
    codes: Mapping[tuple[str, ...], int],
    extra_codes: Mapping[tuple[str, ...], int],
    refinement: str,
    base: npt.NDArray[np.int64],
    narrow: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Codes of refined keys by their digest's own input (the refined domain and the rule's
    parts joined to the refinement's), for a refinement whose parts vary in length."""
    keys: list[tuple[str, ...]] = [()] * len(codes)
    for parts, code in codes.items():
        keys[code] = parts
    mores: list[tuple[str, ...]] = [()] * len(extra_codes)
    for parts, code in extra_codes.items():
        mores[code] = parts
    seen: dict[tuple[str, ...], int] = {}
    out = np.empty(len(base), dtype=np.int64)
    for j, (b, m) in enumerate(zip(base.tolist(), narrow.tolist(), strict=True)):
        parts = keys[b]
        joined = (f"{parts[0]}+{refinement}", *parts[1:], *mores[m])
        out[j] = seen.setdefault(joined, len(seen))
    return out


def candidate_pairs_of(
    codes: BlockCodes,
    n: int,
    *,
    groups: Index | None = None,
    within_groups: bool = True,
    max_block_size: int = 1000,
    block_cap: int | None = None,
    sample: tuple[int, np.random.Generator] | None = None,
) -> tuple[CandidatePairs, float]:
    """:func:`candidate_pairs` over :class:`BlockCodes` of ``n`` records: the same pairs, by
    array operations alone.

    With ``sample=(limit, rng)``, when the blocks' pairs number more than ``limit``, each pair
    is kept with the chance ``limit / pairs`` (drawn from ``rng``) as it is made, so the pairs
    of a large batch are never all held at once; the chance is returned with the pairs (1.0
    when all are kept). A uniform sample: every pair has the same chance.
    """
    import pandas as pd  # as candidate_pairs

    empty = np.zeros(0, dtype=np.intp)
    if len(codes.key) == 0 or n == 0:
        return CandidatePairs(empty, empty, 0), 1.0
    key, parent = codes.key, codes.parent
    if block_cap is None:
        own_rows = parent < 0
        key, rec = key[own_rows], codes.record[own_rows]
        parent = parent[own_rows]
    else:
        rec = codes.record
    parent_of = np.full(codes.keys, -1, dtype=np.int64)
    parent_of[key] = parent
    if np.array_equal(parent_of[key], parent):
        # each (key, record) once (in no order: the pairs are made block by block, sorted)
        held = pd.unique(key * n + rec)
        key, rec = held // n, held % n
        p = parent_of[key]
    else:
        # a refined key made from two keys (a refinement's parts of several lengths): each
        # record's use of it is judged by the key it refines there
        held, first = np.unique(key * n + rec, return_index=True)
        key, rec, p = held // n, held % n, parent[first]
    count = np.bincount(key, minlength=codes.keys)
    size = count[key]
    if block_cap is None:
        oversized = int(np.count_nonzero(count > max_block_size))
        use = (size > 1) & (size <= max_block_size)
    else:
        own = p < 0
        parent_size = np.where(own, 0, count[np.maximum(p, 0)])
        use = np.where(own, size <= block_cap, (parent_size > block_cap) & (size <= block_cap))
        over = (size > block_cap) & (own | (parent_size > block_cap))
        oversized = len(np.unique(key[over]))
        use &= size > 1
    key, rec = key[use], rec[use]
    g = None if groups is None or within_groups else np.asarray(groups, dtype=np.intp)
    chance = 1.0
    rng = None
    if sample is not None:
        limit, rng = sample
        sizes = np.bincount(key).astype(np.float64)
        pairs = float((sizes * (sizes - 1) / 2).sum())
        chance = min(1.0, limit / pairs) if pairs > 0 else 1.0
    out = _distinct(_block_pairs(key, rec, n, g, chance if chance < 1.0 else None, rng))
    return (
        CandidatePairs((out // n).astype(np.intp), (out % n).astype(np.intp), oversized),
        chance,
    )
