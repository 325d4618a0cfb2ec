"""The key vault: each person's identifying fields sealed under that person's own data key.

Erasure is crypto-shredding: :meth:`Vault.shred` destroys the person's wrapped data key, after
which every sealed copy (in the append-only event store, in backups) is unreadable. Keys:

- the KEK (32 bytes, from the caller's key provider) never touches the database; two subkeys
  are derived from it with HKDF-SHA256 — one to make person key ids (HMAC-SHA256, so an id
  reveals nothing about the person), one to wrap data keys (AES-256-GCM, the person key id as
  associated data, so a wrapped key cannot be moved to another person's row);
- each person's data key is 32 random bytes; identifiers are sealed with AES-256-GCM, a random
  96-bit nonce and the caller's associated data.

Unwrapped data keys are cached in a small LRU. A shred in THIS vault evicts at once; a shred
made by another process is seen once the key leaves this process's cache (or after
:meth:`Vault.forget_cached_keys`).

**Erasure is final only once the KEK has rotated.** Clearing a wrapped key leaves older copies of
it wherever the database kept them (a backup, a PostgreSQL dead row, a SQLite free page or WAL
frame); while the KEK that wrapped them exists, they can be unwrapped. :func:`rotate_kek` re-wraps
every remaining person key (and the vault's own secrets) under a new KEK in one transaction and
then has the key provider replace the old KEK, so no copy of a shredded key opens any more. A
shred makes a rotation due (:meth:`Vault.rotation_due`); the trust runs it after the shred.

The person-key-id secret is derived from the store's first KEK and, from the first rotation on,
kept in ``vault_secrets`` wrapped under the current KEK: person key ids never change with the KEK.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Engine, bindparam, func, select, update

from schemas import fastdecode, fastencode
from schemas.keys import KeyProvider
from schemas.model import SchemaModel
from trust.store.db import checkpoint, dialect_insert, insert_values_ignoring, select_in, writer
from trust.store.errors import KeyShredded, VaultKeyMismatch
from trust.store.events import JsonDict, SealedBlob, json_safe
from trust.store.tables import person_keys as _keys
from trust.store.tables import vault_secrets as _secrets

_NONCE = 12
_KEY = 32  # AES-256
_u32 = struct.Struct(">I").pack
_ID_SECRET = "person-key-id"
_REWRAP_CHUNK = 5000
_KEY_COLUMNS = ("person_key_id", "wrapped_key")
_NEW_KEY_COLUMNS = ("person_key_id", "wrapped_key", "created_at_ms", "shredded_at_ms")


def _derive(kek: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(kek)


_b2a = binascii.b2a_base64


def _b64(b: bytes) -> str:
    return binascii.b2a_base64(b, newline=False).decode("ascii")  # base64.b64encode's bytes


def _secret_aad(name: str) -> bytes:
    return b"tiptrust/vault/secret/v1\x00" + name.encode()


def _wrapper(kek: bytes) -> AESGCM:
    if len(kek) != 32:
        raise ValueError("the key-encryption key must be 32 bytes")
    return AESGCM(_derive(kek, b"tiptrust/vault/wrap/v1"))


def _seal_with(aead: AESGCM, key: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + aead.encrypt(nonce, key, aad)


def _open_with(aead: AESGCM, wrapped: bytes, aad: bytes) -> bytes:
    w = bytes(wrapped)
    return aead.decrypt(w[:_NONCE], w[_NONCE:], aad)


def kek_opens(engine: Engine, kek: bytes) -> bool:
    """Whether ``kek`` is the one this store's keys are wrapped under (checked on its stored
    secret, else on one person key; True for a vault that holds nothing yet)."""
    wrap = _wrapper(kek)
    with engine.connect() as conn:
        secret = conn.execute(select(_secrets.c.wrapped).where(_secrets.c.name == _ID_SECRET))
        row = secret.first()
        if row is not None:
            target, aad = row[0], _secret_aad(_ID_SECRET)
        else:
            key_row = conn.execute(
                select(_keys.c.person_key_id, _keys.c.wrapped_key)
                .where(_keys.c.wrapped_key.is_not(None))
                .limit(1)
            ).first()
            if key_row is None:
                return True
            target, aad = key_row[1], key_row[0].encode()
    try:
        _open_with(wrap, target, aad)
    except InvalidTag:
        return False
    return True


class KeysTaken(Exception):
    """Keys this vault made for a batch were written meanwhile by someone else (a key created
    in another transaction, or a shred's tombstone): nothing sealed under them may be stored.
    Raised inside the append transaction, which rolls back; the batch is sealed again."""

    code = "vault_keys_taken"

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} new person key(s) already exist in the vault")
        self.count = count


_AAD_PREFIX = b"tiptrust/identifiers/v1\x00"
_AVRO_AAD = b"\x00avro\x00"  # then the schema's fingerprint: an Avro plaintext's own data
_PLAIN_JSON = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII that json.dumps writes as it is


def identifiers_aad(source_id: str, case_id: str, victim_id: str) -> bytes:
    """Associated data binding a sealed identifiers blob to its victim record: the prefix, then
    ``json.dumps`` of the three ids (its default separators and escapes — the bytes every blob
    was sealed with), written directly when no id needs an escape."""
    # one match over the three together: the pattern is a class of characters, repeated
    if _PLAIN_JSON.fullmatch(source_id + case_id + victim_id):
        return _AAD_PREFIX + f'["{source_id}", "{case_id}", "{victim_id}"]'.encode()
    return _AAD_PREFIX + json.dumps([source_id, case_id, victim_id]).encode()


_IDENTIFIERS_PATH = "$.victims[].identifiers"


class _IdentifiersCodec:
    """The Avro binary of a victim's identifiers: the ``Identifiers`` record of the case record
    schema, written by the encoder generated from the current schema (:mod:`schemas.fastencode`)
    and read by the decoder generated from the writer's (:mod:`schemas.fastdecode`), named by its
    fingerprint. Read with the writer's schema, not resolved into the current one: the fields as
    they were sealed, as the JSON form gives them."""

    def __init__(self) -> None:
        from schemas.codec import default_registry

        self._registry = default_registry()
        current = self._registry.current("case_record")
        self.fingerprint = current.fingerprint
        self.encode: Callable[[Any], bytes] | None = None
        self.fields = 0  # how many fields the record has (a dict with others is sealed as JSON)
        self._decoders: dict[bytes, Callable[[bytes], Any]] = {}
        try:
            record = current.model.record_at(_IDENTIFIERS_PATH)
            model = SchemaModel(record)
            encode, decode = fastencode.compile_encoder(model), fastdecode.compile_decoder(model)
        except (LookupError, ValueError):  # not a part the generators write: JSON then
            return
        self.encode, self.fields = encode, len(record.fields)
        self._decoders[self.fingerprint] = decode

    def decode(self, fingerprint: bytes, plaintext: bytes) -> dict[str, Any]:
        decode = self._decoders.get(fingerprint)
        if decode is None:
            writer = self._registry.writer(fingerprint)
            model = SchemaModel(writer.model.record_at(_IDENTIFIERS_PATH))
            decode = self._decoders[fingerprint] = fastdecode.compile_decoder(model)
        out: dict[str, Any] = json_safe(decode(plaintext))  # dates as ISO, as the JSON form
        return out


_CODEC: _IdentifiersCodec | None = None


def _identifiers_codec() -> _IdentifiersCodec:
    global _CODEC
    if _CODEC is None:
        _CODEC = _IdentifiersCodec()
    return _CODEC


class Vault:
    """Per-person data keys, wrapped under a key-encryption key, in ``person_keys``."""

    def __init__(self, engine: Engine, kek: bytes, *, cache_size: int = 4096) -> None:
        """Raises:
        VaultKeyMismatch: ``kek`` is not the key this store's secrets are wrapped under.
        """
        self._engine = engine
        self._writer = writer(engine)
        self._wrap = _wrapper(kek)
        with engine.connect() as conn:
            row = conn.execute(
                select(_secrets.c.wrapped).where(_secrets.c.name == _ID_SECRET)
            ).first()
        if row is None:  # no rotation yet: the secret is derived from the first KEK
            self._id_key = _derive(kek, b"tiptrust/vault/person-key-id/v1")
        else:
            try:
                self._id_key = _open_with(self._wrap, row[0], _secret_aad(_ID_SECRET))
            except InvalidTag:
                raise VaultKeyMismatch(
                    "the key-encryption key does not open this store's vault"
                ) from None
        self._cache: OrderedDict[str, AESGCM] = OrderedDict()
        # keys made by :meth:`prepare_deferred`, not yet in the database: (key, wrapped key)
        self._pending: dict[str, tuple[AESGCM, bytes]] = {}
        self._key_ids: dict[tuple[str, str, str], str] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._identifiers = _identifiers_codec()

    def __repr__(self) -> str:
        return "Vault(<keys hidden>)"

    def person_key_id(self, source_id: str, case_id: str, victim_id: str) -> str:
        """The deterministic, opaque key id of one victim record (64 hex chars)."""
        triple = (source_id, case_id, victim_id)
        known = self._key_ids.get(triple)  # ingest asks twice per victim: to prepare, to seal
        if known is not None:
            return known
        # length-prefixed, so no two triples share an encoding (written out: a generator over
        # the three cost about as much as the HMAC itself)
        s, c, v = source_id.encode(), case_id.encode(), victim_id.encode()
        message = b"%b%b%b%b%b%b" % (_u32(len(s)), s, _u32(len(c)), c, _u32(len(v)), v)
        kid = hmac.digest(self._id_key, message, "sha256").hex()  # one-shot, in C
        if len(self._key_ids) >= self._cache_size:
            self._key_ids.clear()
        self._key_ids[triple] = kid
        return kid

    def linkage_key(self) -> bytes:
        """The key of linkage's blocking digests (HMAC-SHA256): derived from the person-key-id
        secret, so it stays the same across KEK rotations and the index stays valid."""
        return hmac.digest(self._id_key, b"tiptrust/linkage/blocking/v1", "sha256")

    def seal(self, person_key_id: str, plaintext: bytes, aad: bytes) -> SealedBlob:
        """Encrypt ``plaintext`` under the person's data key, creating the key on first use.

        Raises:
            KeyShredded: the person's key was shredded; nothing new is sealed for them.
        """
        aead = self._data_key(person_key_id, create=True)
        nonce = os.urandom(_NONCE)
        return SealedBlob(person_key_id, _b64(nonce), _b64(aead.encrypt(nonce, plaintext, aad)))

    def seal_in(
        self, conn: Connection, person_key_id: str, plaintext: bytes, aad: bytes
    ) -> SealedBlob:
        """:meth:`seal` inside the caller's writer transaction (a follower's). A key that must be
        read or created in that transaction serves this seal only and is never cached: the
        transaction may still roll back, and a cached key it made would then exist nowhere.

        Raises:
            KeyShredded: the person's key was shredded.
        """
        with self._lock:
            aead = self._cache.get(person_key_id)
        if aead is None:
            aead = self._key_in(conn, person_key_id)
        nonce = os.urandom(_NONCE)
        return SealedBlob(person_key_id, _b64(nonce), _b64(aead.encrypt(nonce, plaintext, aad)))

    def _key_in(self, conn: Connection, person_key_id: str) -> AESGCM:
        aad = person_key_id.encode()
        stmt = select(_keys.c.wrapped_key).where(_keys.c.person_key_id == person_key_id)
        row = conn.execute(stmt).first()
        if row is None:
            key = AESGCM.generate_key(bit_length=256)
            nonce = os.urandom(_NONCE)
            conn.execute(
                dialect_insert(conn, _keys).on_conflict_do_nothing(
                    index_elements=[_keys.c.person_key_id]
                ),
                {
                    "person_key_id": person_key_id,
                    "wrapped_key": nonce + self._wrap.encrypt(nonce, key, aad),
                    "created_at_ms": time.time_ns() // 1_000_000,
                    "shredded_at_ms": None,
                },
            )
            row = conn.execute(stmt).first()  # ours, or a concurrent creator's
        if row is None or row.wrapped_key is None:
            raise KeyShredded(person_key_id)
        wrapped = bytes(row.wrapped_key)
        return AESGCM(self._wrap.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad))

    def open(self, blob: SealedBlob, aad: bytes) -> bytes:
        """Decrypt a sealed blob.

        Raises:
            KeyShredded: the person's key was shredded (or never existed here).
            cryptography.exceptions.InvalidTag: wrong ``aad`` or a tampered blob.
        """
        aead = self._data_key(blob.person_key_id, create=False)
        return aead.decrypt(base64.b64decode(blob.nonce), base64.b64decode(blob.ciphertext), aad)

    def shred(self, person_key_id: str) -> bool:
        """Destroy the person's data key; ``False`` if it was already shredded.

        A tombstone row stays (``shredded_at_ms``) so the key is never silently re-created. Final
        once the KEK has rotated (see the module docstring; :func:`rotate_kek`).
        """
        with self._writer.begin() as conn:
            done = self.shred_in(conn, [person_key_id])
        # Move the zeroed pages out of SQLite's WAL so the key's bytes leave the files now.
        checkpoint(self._engine)
        return bool(done)

    def shred_in(self, conn: Connection, person_key_ids: Iterable[str]) -> list[str]:
        """Shred these persons' keys inside the caller's transaction (a tombstone for a key that
        never existed, so it is never created later); returns the ids shredded now. Evicts them
        from this vault's cache at once."""
        ids = sorted(set(person_key_ids))
        if not ids:
            return []
        now = time.time_ns() // 1_000_000
        with self._lock:
            for kid in ids:
                self._cache.pop(kid, None)
                self._pending.pop(kid, None)
        conn.execute(
            dialect_insert(conn, _keys).on_conflict_do_nothing(
                index_elements=[_keys.c.person_key_id]
            ),
            [
                {
                    "person_key_id": k,
                    "wrapped_key": None,
                    "created_at_ms": now,
                    "shredded_at_ms": now,
                }
                for k in ids
            ],
        )
        done: list[str] = []
        for i in range(0, len(ids), 500):
            # .returning(): psycopg reports no reliable rowcount here (SQLAlchemy 2.1 gives -1).
            done.extend(
                conn.execute(
                    update(_keys)
                    .where(_keys.c.person_key_id.in_(ids[i : i + 500]))
                    .where(_keys.c.wrapped_key.is_not(None))
                    .values(wrapped_key=None, shredded_at_ms=now)
                    .returning(_keys.c.person_key_id)
                ).scalars()
            )
        return sorted(done)

    def rotation_due(self) -> bool:
        """Whether a key was shredded since the KEK last rotated (its old copies still open)."""
        with self._engine.connect() as conn:
            last = conn.execute(select(func.max(_secrets.c.rotated_at_ms))).scalar()
            shredded = conn.execute(select(func.max(_keys.c.shredded_at_ms))).scalar()
        return shredded is not None and (last is None or shredded >= last)

    def rewrap(self, new_kek: bytes) -> int:
        """Re-wrap every live person key and the vault's secrets under ``new_kek`` in ONE
        transaction, then use it; returns the person keys re-wrapped. The caller replaces the
        old KEK only after this returns (:func:`rotate_kek`)."""
        new = _wrapper(new_kek)
        now = time.time_ns() // 1_000_000
        count = 0
        stmt = (
            update(_keys)
            .where(_keys.c.person_key_id == bindparam("kid"))
            .values(wrapped_key=bindparam("wrapped"))
        )
        with self._writer.begin() as conn:
            after = ""
            while True:
                rows = conn.execute(
                    select(_keys.c.person_key_id, _keys.c.wrapped_key)
                    .where(_keys.c.person_key_id > after, _keys.c.wrapped_key.is_not(None))
                    .order_by(_keys.c.person_key_id)
                    .limit(_REWRAP_CHUNK)
                ).all()
                if not rows:
                    break
                params = []
                for kid, wrapped in rows:
                    aad = kid.encode()
                    key = _open_with(self._wrap, wrapped, aad)
                    params.append({"kid": kid, "wrapped": _seal_with(new, key, aad)})
                conn.execute(stmt, params)
                count += len(rows)
                after = rows[-1][0]
            conn.execute(_secrets.delete().where(_secrets.c.name == _ID_SECRET))
            conn.execute(
                _secrets.insert(),
                {
                    "name": _ID_SECRET,
                    "wrapped": _seal_with(new, self._id_key, _secret_aad(_ID_SECRET)),
                    "rotated_at_ms": now,
                },
            )
        self._wrap = new
        checkpoint(self._engine)
        return count

    def is_shredded(self, person_key_id: str) -> bool:
        with self._engine.connect() as conn, conn.begin():
            row = conn.execute(
                select(_keys.c.shredded_at_ms).where(_keys.c.person_key_id == person_key_id)
            ).first()
        return row is not None and row[0] is not None

    def warm(self, person_key_ids: Iterable[str]) -> None:
        """Read and cache the existing keys of many persons at once (never creating one): for a
        reader that will open many persons' blobs. Shredded or unknown keys are left out."""
        with self._lock:
            wanted = sorted({k for k in person_key_ids if k not in self._cache})
        if not wanted:
            return
        found: dict[str, bytes] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                for kid, wrapped in conn.execute(
                    select(_keys.c.person_key_id, _keys.c.wrapped_key).where(
                        _keys.c.person_key_id.in_(wanted[i : i + 500])
                    )
                ):
                    if wrapped is not None:
                        found[kid] = bytes(wrapped)
        with self._lock:
            for kid, w in found.items():
                self._cache[kid] = AESGCM(self._wrap.decrypt(w[:_NONCE], w[_NONCE:], kid.encode()))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget_cached_keys(self) -> None:
        """Drop every unwrapped key from memory (e.g. after another process shredded some)."""
        with self._lock:
            self._cache.clear()

    # -- identifiers of a case record ----------------------------------------------------------

    def seal_identifiers(
        self, source_id: str, case_id: str, record: JsonDict, *, in_place: bool = False
    ) -> tuple[JsonDict, dict[str, SealedBlob]]:
        """Split a case record (fastavro dict form) into the minimised record and sealed blobs.

        Returns a copy of ``record`` with each victim's ``identifiers`` set to ``None``, and the
        identifiers of each victim that had some, sealed under that victim's person key: their
        Avro binary under the current case record schema's ``Identifiers`` (the blob's
        ``schema``), or their JSON for a value the generated encoder does not write. A victim
        whose key is shredded (their consent was withdrawn, or they were disposed of, before this
        record arrived) keeps no identifiers: nothing new is sealed for them. ``in_place``: the
        caller owns ``record`` (ingest, a record it has just decoded): its victims' identifiers
        are set to ``None`` where they are and ``record`` itself is returned, with no copy.
        """
        sealed: dict[str, SealedBlob] = {}
        victims = []
        lock, cache, pending = self._lock, self._cache, self._pending
        key_ids = self._key_ids
        codec = self._identifiers
        encode, fingerprint, fields = codec.encode, codec.fingerprint, codec.fields
        avro_aad = _AVRO_AAD + fingerprint
        for victim in record.get("victims") or ():
            identifiers = victim.get("identifiers")
            if identifiers is not None:
                victim_id = victim["victim_id"]
                schema: bytes | None = None
                # the schema's fields and no other (the encoder reads each, and only them)
                if encode is not None and len(identifiers) == fields:
                    try:
                        plaintext = encode(identifiers)
                        schema = fingerprint
                    except Exception:  # a value the generated encoder does not write: JSON
                        plaintext = orjson.dumps(identifiers)  # dates as ISO strings
                else:
                    plaintext = orjson.dumps(identifiers)
                # ingest's prepare made it a moment ago: the memo holds it
                kid = key_ids.get((source_id, case_id, victim_id)) or self.person_key_id(
                    source_id, case_id, victim_id
                )
                with lock:  # :meth:`seal`, inline: every victim of every record comes here
                    aead = cache.get(kid)
                    if aead is not None:
                        cache.move_to_end(kid)
                    elif kid in pending:
                        aead = pending[kid][0]
                try:
                    if aead is None:
                        aead = self._data_key(kid, create=True)
                except KeyShredded:
                    pass  # erased before the record came (a shredded key): its identifiers go
                else:
                    nonce = os.urandom(_NONCE)
                    aad = identifiers_aad(source_id, case_id, victim_id)
                    if schema is not None:
                        aad += avro_aad
                    ct = aead.encrypt(nonce, plaintext, aad)
                    sealed[victim_id] = SealedBlob(
                        kid,
                        _b2a(nonce, newline=False).decode("ascii"),  # _b64, written out
                        _b2a(ct, newline=False).decode("ascii"),
                        schema,
                    )
            if in_place:
                victim["identifiers"] = None
            else:
                victims.append({**victim, "identifiers": None})
        return (record if in_place else {**record, "victims": victims}), sealed

    def open_identifiers(
        self, source_id: str, case_id: str, victim_id: str, blob: SealedBlob
    ) -> dict[str, Any]:
        """The identifiers sealed by :meth:`seal_identifiers` (dates as ISO strings), in either
        form (see :class:`SealedBlob`)."""
        aad = identifiers_aad(source_id, case_id, victim_id)
        if blob.schema is not None:
            plaintext = self.open(blob, aad + _AVRO_AAD + blob.schema)
            return self._identifiers.decode(blob.schema, plaintext)
        out: dict[str, Any] = json.loads(self.open(blob, aad))
        return out

    # -- keys ----------------------------------------------------------------------------------

    def prepare(self, person_key_ids: Iterable[str]) -> None:
        """Load the data keys of many persons at once, creating the missing ones, in ONE
        transaction (ingest seals a whole batch; one transaction per new person would cap it
        at the disk's commit rate). Shredded persons stay shredded: :meth:`seal` still raises."""
        with self._lock:
            wanted = sorted({k for k in person_key_ids if k not in self._cache})
        if not wanted:
            return
        now = time.time_ns() // 1_000_000
        found: dict[str, bytes | None] = {}
        made: dict[str, bytes] = {}  # keys created here: used as they are, not unwrapped again
        with self._writer.begin() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                for row in conn.execute(
                    select(_keys.c.person_key_id, _keys.c.wrapped_key).where(
                        _keys.c.person_key_id.in_(chunk)
                    )
                ):
                    found[row.person_key_id] = row.wrapped_key
            fresh = []
            for kid in wanted:
                if kid not in found:
                    key = AESGCM.generate_key(bit_length=256)
                    nonce = os.urandom(_NONCE)
                    wrapped = nonce + self._wrap.encrypt(nonce, key, kid.encode())
                    made[kid] = key
                    fresh.append(
                        {
                            "person_key_id": kid,
                            "wrapped_key": wrapped,
                            "created_at_ms": now,
                            "shredded_at_ms": None,
                        }
                    )
            if fresh:
                conn.execute(
                    dialect_insert(conn, _keys).on_conflict_do_nothing(
                        index_elements=[_keys.c.person_key_id]
                    ),
                    fresh,
                )
        with self._lock:
            for kid, wrapped_key in found.items():
                if wrapped_key is None:
                    continue
                w = bytes(wrapped_key)
                self._cache[kid] = AESGCM(self._wrap.decrypt(w[:_NONCE], w[_NONCE:], kid.encode()))
            for kid, key in made.items():
                self._cache[kid] = AESGCM(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def prepare_deferred(self, person_key_ids: Iterable[str]) -> None:
        """:meth:`prepare` without a transaction of its own: existing keys are read (and
        cached), missing ones made in memory only, to be written by :meth:`write_pending_in`
        inside the caller's append transaction — so a batch of new persons costs no commit of
        its own. Until :meth:`keep_pending` (after that transaction committed) or
        :meth:`discard_pending`, :meth:`seal` uses the keys made here."""
        with self._lock:
            wanted = sorted(
                {k for k in person_key_ids if k not in self._cache and k not in self._pending}
            )
        if not wanted:
            return
        found: dict[str, bytes | None] = {}
        with self._engine.connect() as conn, conn.begin():
            for kid, wrapped in select_in(conn, _keys, _KEY_COLUMNS, "person_key_id", wanted):
                found[kid] = None if wrapped is None else bytes(wrapped)
        made: dict[str, tuple[AESGCM, bytes]] = {}
        encrypt = self._wrap.encrypt
        missing = [kid for kid in wanted if kid not in found]  # a tombstone stays shredded
        width = _KEY + _NONCE  # each new key and its wrapping nonce
        fresh = os.urandom(width * len(missing))  # one read of the OS's CSPRNG for them all
        for i, kid in enumerate(missing):
            key, nonce = (
                fresh[i * width : i * width + _KEY],
                fresh[i * width + _KEY : (i + 1) * width],
            )
            made[kid] = (AESGCM(key), nonce + encrypt(nonce, key, kid.encode()))
        with self._lock:
            for kid, w in found.items():
                if w is not None:
                    self._cache[kid] = AESGCM(_open_with(self._wrap, w, kid.encode()))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            self._pending.update(made)

    def write_pending_in(self, conn: Connection) -> None:
        """Write the keys :meth:`prepare_deferred` made, inside the caller's writer transaction.

        Raises:
            KeysTaken: one of them exists already (made or shredded meanwhile): the caller's
                transaction must roll back, and what was sealed under them be sealed again
                (after :meth:`discard_pending`).
        """
        with self._lock:
            pending = dict(self._pending)
        if not pending:
            return
        now = time.time_ns() // 1_000_000
        inserted = insert_values_ignoring(
            conn,
            _keys,
            _NEW_KEY_COLUMNS,
            [(kid, wrapped, now, None) for kid, (_, wrapped) in pending.items()],
            ["person_key_id"],
        )
        # a key another writer made (or shredded) first left its row in place and ours out: the
        # insert's own count says so, with no reading back (a concurrent creator's uncommitted
        # row makes PostgreSQL wait for it, then leave ours out too)
        taken = len(pending) - inserted
        if taken:
            raise KeysTaken(taken)

    def keep_pending(self) -> None:
        """The transaction that wrote the pending keys committed: they are ordinary keys now."""
        with self._lock:
            for kid, (aead, _) in self._pending.items():
                self._cache[kid] = aead
            self._pending.clear()
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def discard_pending(self) -> None:
        """Forget the keys made but never written (what they sealed must not be stored)."""
        with self._lock:
            self._pending.clear()

    def _data_key(self, person_key_id: str, *, create: bool) -> AESGCM:
        with self._lock:
            cached = self._cache.get(person_key_id)
            if cached is not None:
                self._cache.move_to_end(person_key_id)
                return cached
            if create and person_key_id in self._pending:
                return self._pending[person_key_id][0]
        aad = person_key_id.encode()
        stmt = select(_keys.c.wrapped_key, _keys.c.shredded_at_ms).where(
            _keys.c.person_key_id == person_key_id
        )
        engine = self._writer if create else self._engine
        with engine.begin() as conn:
            row = conn.execute(stmt).first()
            if row is None and create:
                key = AESGCM.generate_key(bit_length=256)
                nonce = os.urandom(_NONCE)
                wrapped = nonce + self._wrap.encrypt(nonce, key, aad)
                conn.execute(
                    dialect_insert(conn, _keys).on_conflict_do_nothing(
                        index_elements=[_keys.c.person_key_id]
                    ),
                    {
                        "person_key_id": person_key_id,
                        "wrapped_key": wrapped,
                        "created_at_ms": time.time_ns() // 1_000_000,
                        "shredded_at_ms": None,
                    },
                )
                row = conn.execute(stmt).first()  # ours, or a concurrent creator's
        if row is None or row.wrapped_key is None:
            raise KeyShredded(person_key_id)
        wrapped = bytes(row.wrapped_key)
        aead = AESGCM(self._wrap.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad))
        with self._lock:
            self._cache[person_key_id] = aead
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return aead


def open_vault(engine: Engine, provider: KeyProvider, *, cache_size: int = 4096) -> Vault:
    """The vault under the provider's KEK, finishing a KEK rotation a crash interrupted: if the
    provider holds a staged new KEK and the store's keys are already wrapped under it, it is
    promoted; otherwise it is discarded (the rotation never committed)."""
    staged = provider.staged_key_encryption_key()
    if staged is not None:
        if kek_opens(engine, staged) and not kek_opens(engine, provider.key_encryption_key()):
            provider.promote_staged()
        else:
            provider.discard_staged()
    return Vault(engine, provider.key_encryption_key(), cache_size=cache_size)


def rotate_kek(vault: Vault, provider: KeyProvider) -> int:
    """Replace the KEK: stage a new one with the provider, re-wrap everything under it (one
    transaction), then have the provider promote it over the old one, which is destroyed.

    A crash before the re-wrap commits leaves the old KEK in use; after, :func:`open_vault`
    promotes the staged one. Returns the person keys re-wrapped.
    """
    new = os.urandom(32)
    provider.stage_key_encryption_key(new)
    count = vault.rewrap(new)
    provider.promote_staged()
    return count


def rotate_if_due(vault: Vault, provider: KeyProvider) -> int | None:
    """:func:`rotate_kek` if a key was shredded since the last rotation; None if none was."""
    return rotate_kek(vault, provider) if vault.rotation_due() else None
