"""Signed releases: the one kind of data that leaves the trust.

A release holds every **aggregate** of a table of persons — each cell, each margin and the total
(``dimensions`` names what an aggregate is broken down by; the cells have all the stream's
dimensions, a margin fewer, the total none) — with what each number is: ``value`` a count (an
Avro ``long``) or, for a stream published as a rate (``sdg_16_2_2``), a rate (a ``double``), null
when suppressed, ``exact`` false when suppressed, rounded or perturbed; the hierarchies of the
categories (``{"age_group": {"0-17": ["0-11", "12-17"]}}``: an aggregate whose key holds a parent
is the sum over its children) and their labels.

The trust encodes a release (Avro ``aggregate_release.avsc``) with an empty signature, signs a
context string and those bytes with its Ed25519 release key, and publishes the bytes ``0x00
0x02`` (release format 2) followed by the release with the signature filled in. A consumer
re-encodes with the signature emptied and verifies with the trust's public release key: any change
to a number, the metadata or the key id fails. Releases of format 1 (tiptrust 0.1: cells and a
total, ``release.avsc``, no prefix — its first byte, a stream name's length, is never 0) are still
read and verified, as aggregates.

The ``value`` union's ``double`` branch (rates) was added after ``null`` and ``long``: Avro
writes a union's branch index, so a release of counts is the same bytes, and verifies the same,
under either schema; only a release holding a rate needs a reader that knows the branch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from schemas import signed
from schemas.codec import AVRO_DIR, WireSchema, epoch_millis, load_schema_file
from schemas.errors import ContractError, ReasonCode
from schemas.keys import SigningKey, VerifyKey

FORMAT = 2
"""The release format the trust publishes."""

RELEASE_SCHEMA = load_schema_file(AVRO_DIR / "aggregate_release.avsc")
LEGACY_RELEASE_SCHEMA = load_schema_file(AVRO_DIR / "release.avsc")  # format 1, read only
_SCHEMAS: Mapping[int, WireSchema] = {1: LEGACY_RELEASE_SCHEMA, 2: RELEASE_SCHEMA}
_CONTEXTS: Mapping[int, bytes] = {1: b"tiptrust/release/v1\x00", 2: b"tiptrust/release/v2\x00"}
_FRAME = b"\x00\x02"

CAVEAT = (
    "Counts of detected victims recorded by the contributing agencies, not estimates of "
    "prevalence: a change may reflect detection and recording effort rather than trafficking."
)


class ReleaseRejected(ContractError):
    """A release that a consumer must not use: unsigned, altered, or signed by an unknown key."""

    code = ReasonCode.BAD_SIGNATURE


@dataclass(frozen=True)
class Aggregate:
    """One published number: a cell (every dimension), a margin (some) or the total (none)."""

    dimensions: tuple[str, ...]
    key: tuple[str, ...]
    value: int | float | None
    exact: bool

    def __post_init__(self) -> None:
        if len(self.dimensions) != len(self.key):
            raise ValueError("an aggregate has one category per dimension it is broken down by")
        if self.value is None and self.exact:
            raise ValueError("a suppressed aggregate is not exact")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float | None):
            raise ValueError("an aggregate's value is a count, a rate or null")
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise ValueError("a rate is a finite number")

    @property
    def suppressed(self) -> bool:
        return self.value is None


Hierarchies = Mapping[str, Mapping[str, Sequence[str]]]
Labels = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Release:
    stream: str
    release_id: str
    sequence: int
    issued_at_ms: int
    title: str
    unit: str
    period_start: int | None
    period_end: int | None
    dimensions: tuple[str, ...]
    aggregates: tuple[Aggregate, ...]
    k: int
    method: str
    source_count: int
    sources: tuple[str, ...]
    hierarchies: Hierarchies = field(default_factory=dict)
    labels: Labels = field(default_factory=dict)
    caveat: str = CAVEAT
    metadata: dict[str, str] = field(default_factory=dict)
    signing_key_id: str = ""
    signature: bytes = b""
    format: int = FORMAT

    @property
    def total(self) -> int | float | None:
        """The published total (None when suppressed or not published)."""
        for a in self.aggregates:
            if not a.dimensions:
                return a.value
        return None

    def cells(self) -> tuple[Aggregate, ...]:
        """The aggregates broken down by every dimension of the stream."""
        return tuple(a for a in self.aggregates if a.dimensions == self.dimensions)

    def to_avro(self) -> dict[str, Any]:
        """The release's Avro dict form in its own format."""
        common = {
            "stream": self.stream,
            "release_id": self.release_id,
            "sequence": self.sequence,
            "issued_at": self.issued_at_ms,
            "title": self.title,
            "unit": self.unit,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "dimensions": list(self.dimensions),
            "k": self.k,
            "method": self.method,
            "source_count": self.source_count,
            "sources": list(self.sources),
            "caveat": self.caveat,
            "metadata": dict(self.metadata),
            "signing_key_id": self.signing_key_id,
            "signature": self.signature,
        }
        if self.format == 1:
            return {
                **common,
                "cells": [
                    {"key": list(a.key), "count": a.value, "suppressed": a.value is None}
                    for a in self.cells()
                ],
                "total_persons": self.total,
            }
        return {
            **common,
            "aggregates": [
                {
                    "dimensions": list(a.dimensions),
                    "key": list(a.key),
                    "value": a.value,
                    "exact": a.exact,
                }
                for a in self.aggregates
            ],
            "hierarchies": {
                d: {p: list(children) for p, children in parents.items()}
                for d, parents in self.hierarchies.items()
            },
            "labels": {d: dict(codes) for d, codes in self.labels.items()},
        }

    @classmethod
    def from_avro(cls, d: Mapping[str, Any], format: int = FORMAT) -> Release:
        dims = tuple(d["dimensions"])
        if format == 1:
            total = d["total_persons"]
            aggregates = (
                *(
                    Aggregate(dims, tuple(c["key"]), c["count"], c["count"] is not None)
                    for c in d["cells"]
                ),
                Aggregate((), (), total, total is not None),
            )
            hierarchies: dict[str, dict[str, tuple[str, ...]]] = {}
            labels: dict[str, dict[str, str]] = {}
        else:
            aggregates = tuple(
                Aggregate(tuple(a["dimensions"]), tuple(a["key"]), a["value"], a["exact"])
                for a in d["aggregates"]
            )
            hierarchies = {
                dim: {p: tuple(children) for p, children in parents.items()}
                for dim, parents in d["hierarchies"].items()
            }
            labels = {dim: dict(codes) for dim, codes in d["labels"].items()}
        return cls(
            stream=d["stream"],
            release_id=d["release_id"],
            sequence=d["sequence"],
            issued_at_ms=epoch_millis(d["issued_at"]),
            title=d["title"],
            unit=d["unit"],
            period_start=d["period_start"],
            period_end=d["period_end"],
            dimensions=dims,
            aggregates=aggregates,
            k=d["k"],
            method=d["method"],
            source_count=d["source_count"],
            sources=tuple(d["sources"]),
            hierarchies=hierarchies,
            labels=labels,
            caveat=d["caveat"],
            metadata=dict(d["metadata"]),
            signing_key_id=d["signing_key_id"],
            signature=d["signature"],
            format=format,
        )

    def encoded(self) -> bytes:
        """The release's bytes as published (signature included)."""
        body = _SCHEMAS[self.format].encode(self.to_avro())
        return _FRAME + body if self.format == 2 else body


def sign_release(release: Release, key: SigningKey) -> bytes:
    """The release, signed, as the bytes to publish (always the current format)."""
    return signed_release(release, key)[1]


def signed_release(release: Release, key: SigningKey) -> tuple[Release, bytes]:
    """The release with its key id and signature filled in, and the bytes to publish."""
    if release.format != FORMAT:
        raise ValueError(f"the trust signs releases of format {FORMAT} only")
    signature, body = signed.signed_bytes(RELEASE_SCHEMA, _CONTEXTS[FORMAT], release.to_avro(), key)
    return replace(release, signing_key_id=key.key_id, signature=signature), _FRAME + body


def decode_release(raw: bytes) -> Release:
    """A published release, decoded but NOT verified (see :func:`verify_release`).

    Raises:
        ReleaseRejected: not a release of a format this code reads.
    """
    if raw[:2] == _FRAME:
        version, body = 2, raw[2:]
    elif raw[:1] == b"\x00":
        raise ReleaseRejected("a release format this consumer does not read: upgrade tiptrust")
    else:
        version, body = 1, raw
    try:
        return Release.from_avro(_SCHEMAS[version].decode(body), version)
    except (ContractError, ValueError, KeyError, TypeError):
        raise ReleaseRejected("message is not a release") from None


def verify_release(raw: bytes, keys: dict[str, VerifyKey]) -> Release:
    """Decode and verify a published release; raise :class:`ReleaseRejected` if it must not be used."""
    release = decode_release(raw)
    try:
        signed.verify(_SCHEMAS[release.format], _CONTEXTS[release.format], release.to_avro(), keys)
    except signed.SignatureRefused as exc:
        raise ReleaseRejected(f"release refused: {exc}") from None
    return release
