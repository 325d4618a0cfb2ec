"""Record keys and cell keys of the persons a release counts (method note:
``disclosure/noise.md``).

A person's **record key** is an HMAC-SHA256 of their unit id — the stable person id linkage gives
them, or for a record linkage has not placed, the record's own unit id — under a secret of the
trust, cut to 32 bits. A merge keeps the surviving person's id, so the merged person keeps the
survivor's key; the absorbed person's key is no longer counted anywhere. The secret is derived
from the vault's (:func:`record_key_secret`), so it never changes with a KEK rotation and no one
without the vault can compute a key.

An aggregate's **cell key** is the sum of its persons' record keys modulo 2^32
(:func:`cell_keys`, read-only from the release stage's ``release_person_cells``), counting the
persons exactly as :func:`trust.release.counts.cell_counts` counts them for the plan's sources.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from trust.release import counts as release_counts
from trust.release.aggregate import cell_of
from trust.release.disclosure.cellkey import KEY_MODULUS, roll_up
from trust.release.history import AggregateKey
from trust.release.streams import StreamSpec
from trust.store.tables import release_person_cells as _cells

if TYPE_CHECKING:
    from trust.store.vault import Vault

_PURPOSE = b"tiptrust/release/record-key/v1"
_CACHE = 200_000


def record_key_secret(vault: Vault) -> bytes:
    """The trust's record-key secret: derived (HMAC-SHA256 with its own label) from the vault's
    linkage key, itself derived from the vault's person-key-id secret, so it survives KEK
    rotations and is independent of every other key derived there."""
    return hmac.digest(vault.linkage_key(), _PURPOSE, "sha256")


class RecordKeys:
    """Record keys under one secret (cached: the same units are asked at every release)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("a record-key secret has at least 32 bytes")
        self._secret = secret
        self._known: dict[str, int] = {}

    def __repr__(self) -> str:
        return "RecordKeys(<secret hidden>)"

    def key(self, unit_id: str) -> int:
        """The record key of the person (or unplaced record) ``unit_id``: in ``[0, 2^32)``."""
        known = self._known.get(unit_id)
        if known is None:
            digest = hmac.digest(self._secret, unit_id.encode("utf-8"), "sha256")
            known = int.from_bytes(digest[:4], "big")
            if len(self._known) >= _CACHE:
                self._known.clear()
            self._known[unit_id] = known
        return known


def person_cells(
    conn: Connection, spec: StreamSpec, sources: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """The cell of every person counted in ``spec``'s stream from ``sources``' records alone,
    by unit id (the persons :func:`~trust.release.counts.cell_counts` counts)."""
    allowed = set(sources)
    out: dict[str, tuple[str, ...]] = {}
    partial: list[str] = []
    c = _cells.c
    for unit, cell, made_of in conn.execute(
        select(c.unit_id, c.cell, c.sources).where(c.stream == spec.name)
    ):
        of = set(made_of.split(";"))
        if of <= allowed:
            out[unit] = tuple(json.loads(cell))
        elif of & allowed:
            partial.append(unit)
    if partial:
        # a person seen by a source this plan leaves out counts from its allowed records alone,
        # combined as the counts combine them
        cell_fn = cell_of(spec)
        records = release_counts.person_records(conn, sorted(partial))
        for person, recs in records.items():
            kept = [r for r in recs if r.key[0] in allowed]
            if kept:
                out[person] = cell_fn(release_counts.combine((person,), kept))
    return out


def cell_keys(
    conn: Connection,
    spec: StreamSpec,
    sources: Sequence[str],
    keys: RecordKeys,
    hierarchies: Mapping[str, Mapping[str, Sequence[str]]],
) -> dict[AggregateKey, int]:
    """The cell key of every aggregate (cells, margins with ``hierarchies``' parents, total) of
    ``spec``'s table counted from ``sources``; aggregates without persons are absent (key 0)."""
    by_cell: dict[tuple[str, ...], int] = {}
    for unit, cell in person_cells(conn, spec, sources).items():
        by_cell[cell] = (by_cell.get(cell, 0) + keys.key(unit)) % KEY_MODULUS
    return roll_up(spec.dimensions, hierarchies, by_cell, KEY_MODULUS)
