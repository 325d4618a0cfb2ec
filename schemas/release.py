"""Signed releases: the one kind of data that leaves the trust.

The trust encodes a release (Avro ``release.avsc``) with an empty signature, signs those bytes
with its Ed25519 release key, and publishes the release with the signature filled in. A consumer
re-encodes with the signature emptied and verifies with the trust's public release key: any change
to a cell, the metadata or the key id fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import signed
from schemas.codec import AVRO_DIR, epoch_millis, load_schema_file
from schemas.errors import ContractError, ReasonCode
from schemas.keys import SigningKey, VerifyKey

RELEASE_SCHEMA = load_schema_file(AVRO_DIR / "release.avsc")
_CONTEXT = b"tiptrust/release/v1\x00"

CAVEAT = (
    "Counts of detected victims recorded by the contributing agencies, not estimates of "
    "prevalence: a change may reflect detection and recording effort rather than trafficking."
)


class ReleaseRejected(ContractError):
    """A release that a consumer must not use: unsigned, altered, or signed by an unknown key."""

    code = ReasonCode.BAD_SIGNATURE


@dataclass(frozen=True)
class Cell:
    key: tuple[str, ...]
    count: int | None
    suppressed: bool


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
    cells: tuple[Cell, ...]
    k: int
    method: str
    source_count: int
    sources: tuple[str, ...]
    total_persons: int | None
    caveat: str = CAVEAT
    metadata: dict[str, str] = field(default_factory=dict)
    signing_key_id: str = ""
    signature: bytes = b""

    def to_avro(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "release_id": self.release_id,
            "sequence": self.sequence,
            "issued_at": self.issued_at_ms,
            "title": self.title,
            "unit": self.unit,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "dimensions": list(self.dimensions),
            "cells": [
                {"key": list(c.key), "count": c.count, "suppressed": c.suppressed}
                for c in self.cells
            ],
            "k": self.k,
            "method": self.method,
            "source_count": self.source_count,
            "sources": list(self.sources),
            "total_persons": self.total_persons,
            "caveat": self.caveat,
            "metadata": dict(self.metadata),
            "signing_key_id": self.signing_key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Release:
        issued = d["issued_at"]
        ms = epoch_millis(issued)
        return cls(
            stream=d["stream"],
            release_id=d["release_id"],
            sequence=d["sequence"],
            issued_at_ms=ms,
            title=d["title"],
            unit=d["unit"],
            period_start=d["period_start"],
            period_end=d["period_end"],
            dimensions=tuple(d["dimensions"]),
            cells=tuple(Cell(tuple(c["key"]), c["count"], c["suppressed"]) for c in d["cells"]),
            k=d["k"],
            method=d["method"],
            source_count=d["source_count"],
            sources=tuple(d["sources"]),
            total_persons=d["total_persons"],
            caveat=d["caveat"],
            metadata=dict(d["metadata"]),
            signing_key_id=d["signing_key_id"],
            signature=d["signature"],
        )


def sign_release(release: Release, key: SigningKey) -> bytes:
    """The release, signed, as the bytes to publish."""
    return signed.sign(RELEASE_SCHEMA, _CONTEXT, release.to_avro(), key)


def verify_release(raw: bytes, keys: dict[str, VerifyKey]) -> Release:
    """Decode and verify a published release; raise :class:`ReleaseRejected` if it must not be used."""
    try:
        datum = RELEASE_SCHEMA.decode(raw)
        release = Release.from_avro(datum)
    except ContractError:
        raise ReleaseRejected("message is not a release") from None
    try:
        signed.verify(RELEASE_SCHEMA, _CONTEXT, release.to_avro(), keys)
    except signed.SignatureRefused as exc:
        raise ReleaseRejected(f"release refused: {exc}") from None
    return release
