"""Blocking: which pairs are worth comparing, as keyed hashes that reveal nothing in clear.

A blocking rule turns a prepared record into zero or more tuples of parts (a phonetic code of a
name part and the birth year; the full date of birth and sex; …). Two records are candidates when
they share a tuple under any rule. Tuples never leave this module in clear: :class:`KeyedHasher`
turns each into an HMAC-SHA256 digest under a secret key, with the rule's name and each part
length-prefixed (so no two different tuples can encode alike), truncated to 128 bits. An
incremental linker keeps ``digest -> record`` in an index table and erases a person's digests
with the person; without the key a digest cannot be tested against guessed names.

:func:`candidate_pairs` is the batch form: an in-memory join of all records on their digests.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import jellyfish
import numpy as np
import numpy.typing as npt

from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.normalise import romanisation_key
from trust.linkage.record import PreparedRecord

Index = npt.NDArray[np.intp]
MIN_KEY_BYTES = 16
DIGEST_HEX = 32  # 128 bits: collisions are negligible at any national or regional volume


class KeyedHasher:
    """HMAC-SHA256 under a secret key; the only way blocking and frequency keys are made."""

    __slots__ = ("_mac",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise LinkageError(
                LinkageReason.BAD_KEY, f"a blocking key needs at least {MIN_KEY_BYTES} bytes"
            )
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "KeyedHasher(<secret>)"

    def digest(self, domain: str, parts: Sequence[str]) -> str:
        """The hex digest of ``parts`` in ``domain`` (a rule or column name)."""
        mac = self._mac.copy()
        encoded = [item.encode() for item in (domain, *parts)]
        mac.update(b"".join(len(e).to_bytes(4, "big") + e for e in encoded))
        return mac.hexdigest()[:DIGEST_HEX]


@dataclass(frozen=True, slots=True, order=True)
class BlockingKey:
    """One blocking key of a record: the rule that made it and its keyed digest."""

    rule: str
    digest: str


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
            yield ("soundex", jellyfish.soundex(part), year)
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
class FullNameSound:
    """The Soundex codes of the first given-name part and first surname part, in either order
    (catches a wrong date of birth)."""

    name: str = "full_name_sound"

    def parts(self, record: PreparedRecord) -> Iterable[tuple[str, ...]]:
        if record.given is not None and record.surname is not None:
            a = jellyfish.soundex(record.given.parts[0])
            b = jellyfish.soundex(record.surname.parts[0])
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


def default_rules() -> tuple[BlockingRule, ...]:
    return (
        NamePartWithBirthYear(),
        BirthDateWithSex(),
        DocumentNumber(),
        NationalityWithGivenPrefix(),
        FullNameSound(),
        PostcodeWithNameInitials(),
        AddressText(),
        PostcodeWithStreet(),
    )


def blocking_keys(
    record: PreparedRecord, rules: Sequence[BlockingRule], hasher: KeyedHasher
) -> tuple[BlockingKey, ...]:
    """A record's distinct blocking keys under ``rules``, sorted."""
    keys = {
        BlockingKey(rule.name, hasher.digest(rule.name, parts))
        for rule in rules
        for parts in rule.parts(record)
    }
    return tuple(sorted(keys))


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
) -> CandidatePairs:
    """All pairs of records sharing a key: the batch form of an index lookup per record.

    ``groups`` gives each record's input; with ``within_groups=False`` only pairs across inputs
    are made (linking without deduplication).
    """
    import pandas as pd  # here: only batch linkage joins blocks (pandas costs every command ~0.2 s)

    n = len(keys)
    rec = np.fromiter((i for i, ks in enumerate(keys) for _ in ks), np.intp)
    digests = [k.digest for ks in keys for k in ks]
    if not digests:
        empty = np.zeros(0, dtype=np.intp)
        return CandidatePairs(empty, empty, 0)
    codes, _ = pd.factorize(pd.Series(digests, dtype=object))
    frame = pd.DataFrame({"k": codes, "i": rec}).drop_duplicates()
    sizes = frame.groupby("k")["i"].transform("size")
    oversized = int(frame.loc[sizes > max_block_size, "k"].nunique())
    frame = frame[(sizes > 1) & (sizes <= max_block_size)]
    joined = frame.merge(frame, on="k", suffixes=("_l", "_r"))
    left = joined["i_l"].to_numpy(np.intp)
    right = joined["i_r"].to_numpy(np.intp)
    keep = left < right
    if groups is not None and not within_groups:
        g = np.asarray(groups, dtype=np.intp)
        keep &= g[left] != g[right]
    codes_lr = np.unique(left[keep].astype(np.int64) * n + right[keep])
    return CandidatePairs(
        (codes_lr // n).astype(np.intp), (codes_lr % n).astype(np.intp), oversized
    )
