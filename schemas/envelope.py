"""Encrypted, signed envelopes: one per event, asymmetric crypto once per producer batch.

Sealing a batch of N events (DESIGN §5):

1. a fresh 256-bit batch data key (DEK);
2. each event's Avro payload is encrypted with AES-256-GCM under the DEK, with a nonce derived from
   its index (unique under a fresh key) and its encoded header as associated data;
3. each event's Merkle leaf is SHA-256(0x00 ‖ header ‖ ciphertext); the leaves form an RFC 6962
   Merkle tree;
4. the DEK is sealed to the trust's X25519 key with HPKE (base mode, HKDF-SHA256, AES-256-GCM); the
   batch header (source, keys, batch id, size) is bound through HPKE ``info``, because
   cryptography's HPKE takes no associated data;
5. the source signs the batch seal — batch header, encapsulated key, Merkle root — with Ed25519.

Every event then travels alone with the batch seal and its inclusion proof, so the trust can verify,
decrypt, accept or reject each event on its own, while paying for one signature check and one HPKE
open per batch (:class:`OpenCache`). Any changed bit fails: a header, proof or ciphertext change
breaks the path to the signed root; a seal change breaks the signature; the AEAD tag checks the rest.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import fastavro
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.codec import AVRO_DIR, epoch_millis, load_schema_file
from schemas.errors import (
    BadSignature,
    ContractError,
    DecryptionFailed,
    Delivery,
    MalformedEnvelope,
    SourceMismatch,
    UnsupportedVersion,
)
from schemas.fastdecode import compile_reader_at
from schemas.fastencode import Unfit, avro_long, compile_encoder, with_fallback
from schemas.keys import Keyring, SigningKey, TrustPublicKey
from schemas.model import Primitive, Record, SchemaModel

ENVELOPE_VERSION = 1
MAX_BATCH = 65_536
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_SIGN_CONTEXT = b"tiptrust/batch-seal/v1\x00"
_HPKE_CONTEXT = b"tiptrust/batch-key/v1\x00"

ENVELOPE_SCHEMA = load_schema_file(AVRO_DIR / "envelope.avsc")
_ENV = ENVELOPE_SCHEMA.parsed
_HEADER = fastavro.parse_schema(
    {**ENVELOPE_SCHEMA.source["fields"][1]["type"], "namespace": "org.tiptrust.wire"}
)
# For reading: the envelope in two parts, so the header's own bytes (the AAD and the Merkle leaf's
# input) are sliced from the message instead of re-encoded, and ``produced_at`` read as the long
# it is on the wire (no datetime made and taken apart again). Same binary layout as ``_ENV``.
_NAMED: dict[str, Any] = {}
_HEADER_READ = fastavro.parse_schema(
    {
        **ENVELOPE_SCHEMA.source["fields"][1]["type"],
        "namespace": "org.tiptrust.wire",
        "fields": [
            {**f, "type": "long"} if f["name"] == "produced_at" else f
            for f in ENVELOPE_SCHEMA.source["fields"][1]["type"]["fields"]
        ],
    },
    named_schemas=_NAMED,
)
_AFTER_HEADER = fastavro.parse_schema(
    {
        "type": "record",
        "name": "EnvelopeAfterHeader",
        "namespace": "org.tiptrust.wire",
        "fields": ENVELOPE_SCHEMA.source["fields"][2:],
    },
    named_schemas=_NAMED,
)


_ReadAt = Callable[[bytes, int], tuple[Any, int]]


def _generated_readers() -> tuple[_ReadAt, _ReadAt] | None:
    """The readers generated (:mod:`schemas.fastdecode`) of the envelope's two parts as
    ``_HEADER_READ`` and ``_AFTER_HEADER`` read them (``produced_at`` as the long it is on the
    wire): fastavro's values for the bytes they read, an exception for any other (left to
    fastavro, which reads or refuses them as before). None if not generated."""
    root = ENVELOPE_SCHEMA.model.root
    assert isinstance(root, Record)
    header = root.fields[1].type
    assert isinstance(header, Record)
    header = replace(
        header,
        fields=tuple(
            replace(f, type=Primitive(f.type.path, "long")) if f.name == "produced_at" else f
            for f in header.fields
        ),
    )
    rest = Record(root.path, "EnvelopeAfterHeader", "EnvelopeAfterHeader", root.fields[2:])
    try:
        return compile_reader_at(SchemaModel(header)), compile_reader_at(SchemaModel(rest))
    except ValueError:
        return None


_READERS = _generated_readers()

_BATCH_HEADER = fastavro.parse_schema(
    {
        "type": "record",
        "name": "SignedBatch",
        "namespace": "org.tiptrust.wire",
        "fields": [
            {"name": "version", "type": "int"},
            {"name": "source_id", "type": "string"},
            {"name": "source_key_id", "type": "string"},
            {"name": "trust_key_id", "type": "string"},
            {"name": "batch_id", "type": "bytes"},
            {"name": "size", "type": "int"},
            {"name": "encapsulated_key", "type": "bytes"},
            {"name": "root", "type": "bytes"},
        ],
    }
)


class MessageKind(StrEnum):
    """What an inbound event says (the envelope's ``kind``, one Avro payload schema each)."""

    RECORD_UPSERT = "RecordUpsert"
    RECORD_RETRACTION = "RecordRetraction"
    CONSENT_WITHDRAWAL = "ConsentWithdrawal"
    DISPOSAL_REQUEST = "DisposalRequest"


MESSAGE_KINDS: tuple[str, ...] = tuple(k.value for k in MessageKind)


def new_event_id(now_ms: int | None = None) -> uuid.UUID:
    """A fresh UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, 74 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value)


@dataclass(frozen=True, slots=True)
class EventHeader:
    """What the trust may read before decrypting: who, which event, what kind, which schema."""

    source_id: str
    event_id: uuid.UUID
    kind: str
    schema_fingerprint: bytes
    produced_at_ms: int
    trust_key_id: str
    source_key_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "event_id": self.event_id.bytes,
            "kind": self.kind,
            "schema_fingerprint": self.schema_fingerprint,
            "produced_at": self.produced_at_ms,
            "trust_key_id": self.trust_key_id,
            "source_key_id": self.source_key_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> EventHeader:
        produced = d["produced_at"]
        ms = epoch_millis(produced)
        return cls(
            d["source_id"],
            uuid.UUID(bytes=d["event_id"]),
            d["kind"],
            d["schema_fingerprint"],
            ms,
            d["trust_key_id"],
            d["source_key_id"],
        )


def _uuid_text(raw: bytes) -> str:
    """``str(uuid.UUID(bytes=raw))`` of 16 bytes: the canonical 36-character form."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class OpenedEvent:
    """An event whose signature, inclusion proof and AEAD all checked out."""

    header: EventHeader
    payload: bytes
    batch_id: uuid.UUID
    delivery: Delivery | None
    event_id: str = ""
    """``str(header.event_id)`` (made once, for the error of any check after the header)."""


def _write(schema: Any, datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, datum)
    return buf.getvalue()


# The producer writes a header and an envelope per event: through encoders generated from the
# envelope schema (:mod:`schemas.fastencode`, fastavro's bytes at a fraction of its cost). An
# envelope is a record, so its bytes are its fields' bytes one after the other: the header's
# (encoded once, for the AAD and the Merkle leaf as well) and the batch seal's (the same for
# every event of a batch, encoded once) are joined as they are instead of written again.
_ENV_ROOT = ENVELOPE_SCHEMA.model.root
assert isinstance(_ENV_ROOT, Record)
_ENV_FIELDS = {f.name: f.type for f in _ENV_ROOT.fields}
_ENCODE_HEADER = with_fallback(
    SchemaModel(_ENV_FIELDS["header"]), lambda d: _write(_HEADER, dict(d))
)
_ENCODE_SEAL = compile_encoder(SchemaModel(_ENV_FIELDS["batch"]))
_VERSION_BYTES = avro_long(ENVELOPE_VERSION)


def encode_header(h: EventHeader) -> bytes:
    return _ENCODE_HEADER(h.to_avro())


def _encode_headers(headers: Sequence[EventHeader]) -> list[bytes]:
    """:func:`encode_header` of each, the same bytes: a header is its fields' bytes one after
    the other, and the event id (a fixed 16 bytes, the second field) is all that differs between
    the headers of one batch — so each distinct rest is encoded once and the ids put between
    its parts. Only where every field is of exactly its type (then equal values give equal
    bytes); any other header is encoded on its own."""
    parts: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
    out: list[bytes] = []
    for h in headers:
        eid, source_id, kind = h.event_id, h.source_id, h.kind
        fingerprint, at, trust_key_id, source_key_id = (
            h.schema_fingerprint,
            h.produced_at_ms,
            h.trust_key_id,
            h.source_key_id,
        )
        if not (
            type(eid) is uuid.UUID
            and type(source_id) is str
            and type(kind) is str
            and type(fingerprint) is bytes
            and type(at) is int
            and type(trust_key_id) is str
            and type(source_key_id) is str
        ):
            out.append(encode_header(h))
            continue
        rest = (source_id, kind, fingerprint, at, trust_key_id, source_key_id)
        found = parts.get(rest)
        if found is not None:
            out.append(found[0] + eid.bytes + found[1])
            continue
        whole = encode_header(h)
        split = _header_parts(whole, source_id, eid)
        if split is not None:
            parts[rest] = split
        out.append(whole)
    return out


def _envelope_bytes(
    header: bytes,
    seal: bytes,
    index: int,
    proof: Sequence[bytes],
    ciphertext: bytes,
    *,
    digests: bool = False,
) -> bytes:
    """The envelope's Avro bytes from its header's and batch seal's (fastavro's, exactly).
    ``digests``: the proof's nodes are known to be SHA-256 digests (a tree :func:`merkle_tree`
    built over them), so each is not checked to be 32 bytes."""
    if not digests:
        for node in proof:
            if type(node) is not bytes or len(node) != 32:
                raise Unfit
    blocks = avro_long(len(proof)) + b"".join(proof) + b"\x00" if proof else b"\x00"
    return b"".join(
        (
            _VERSION_BYTES,
            header,
            seal,
            avro_long(index),
            blocks,
            avro_long(len(ciphertext)),
            ciphertext,
        )
    )


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + index.to_bytes(8, "big")


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256 of 0x00 and the leaf's bytes (an envelope's leaf is its
    header's bytes and its ciphertext; the audit log's, an entry)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 inner-node hash: SHA-256 of 0x01 and the two children's hashes."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _leaf(header_bytes: bytes, ciphertext: bytes) -> bytes:
    return leaf_hash(header_bytes + ciphertext)


_node = node_hash


def merkle_tree(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """RFC 6962 tree hash built bottom-up (an odd last node is promoted); returns root and proofs."""
    n = len(leaves)
    proofs: list[list[bytes]] = [[] for _ in range(n)]
    level = list(leaves)
    members: list[list[int]] = [[i] for i in range(n)]  # which leaves sit under each node
    while len(level) > 1:
        nxt: list[bytes] = []
        nxt_members: list[list[int]] = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                left, right = level[i], level[i + 1]
                for leaf in members[i]:
                    proofs[leaf].append(right)
                for leaf in members[i + 1]:
                    proofs[leaf].append(left)
                nxt.append(_node(left, right))
                nxt_members.append(members[i] + members[i + 1])
            else:
                nxt.append(level[i])
                nxt_members.append(members[i])
        level, members = nxt, nxt_members
    return level[0], proofs


def merkle_root_from_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """Recompute the root from a leaf and its proof; None when the proof's shape is wrong."""
    return _root_from_proof(leaf, index, size, proof, None)


_Path = tuple[int, Sequence[bytes], list[tuple[int, int, bytes]], bytes | None]
"""One proof checked by :func:`_root_from_proof`: the tree's size, the proof, per level the
(index, proof entries used, node) the walk was at, and the root it came to (None: none)."""


def _root_from_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], cache: OpenCache | None
) -> bytes | None:
    """:func:`merkle_root_from_proof`, remembering the last walk in ``cache`` (if given): the
    walk from a level up is a function of the node there, its index, the tree's size and the
    proof entries not yet used — when all of these are the last walk's at the same level, so is
    the root, and it is not computed again. The events of a batch come in order, so two
    neighbours' walks meet after a level or two: about two hashes per event instead of one per
    level."""
    if not 0 <= index < size:
        return None
    last = cache.last_path if cache is not None else None
    before: list[tuple[int, int, bytes]] = []
    if last is not None and last[0] == size and len(last[1]) == len(proof):
        before = last[2]
    path: list[tuple[int, int, bytes]] | None = [] if cache is not None else None
    r, used, count = leaf, 0, size
    while count > 1:
        if path is not None:
            level = len(path)
            if level < len(before):
                was = before[level]
                if was[2] == r and was[0] == index and was[1] == used:
                    assert last is not None and cache is not None
                    if proof[used:] == last[1][used:]:
                        if level:  # the walk as far as it went, then the last one's
                            cache.last_path = (size, proof, path + before[level:], last[3])
                        return last[3]
            path.append((index, used, r))
        if index % 2 == 1:
            if used >= len(proof):
                return None
            r = _node(proof[used], r)
            used += 1
        elif index + 1 < count:
            if used >= len(proof):
                return None
            r = _node(r, proof[used])
            used += 1
        index //= 2
        count = (count + 1) // 2
    root = r if used == len(proof) else None
    if cache is not None and path is not None:
        cache.last_path = (size, proof, path, root)
    return root


def _batch_header_bytes(
    source_id: str,
    source_key_id: str,
    trust_key_id: str,
    batch_id: bytes,
    size: int,
    encapsulated_key: bytes = b"",
    root: bytes = b"",
) -> bytes:
    return _write(
        _BATCH_HEADER,
        {
            "version": ENVELOPE_VERSION,
            "source_id": source_id,
            "source_key_id": source_key_id,
            "trust_key_id": trust_key_id,
            "batch_id": batch_id,
            "size": size,
            "encapsulated_key": encapsulated_key,
            "root": root,
        },
    )


def seal_batch(
    events: Sequence[tuple[EventHeader, bytes]],
    *,
    trust_key: TrustPublicKey,
    source_key: SigningKey,
    batch_id: uuid.UUID | None = None,
) -> list[bytes]:
    """Seal ``(header, avro payload)`` pairs into one encoded envelope per event.

    Every header must name ``source_key``'s owner and id and ``trust_key``'s id. One HPKE
    encapsulation and one Ed25519 signature cover the whole batch.
    """
    if not events:
        return []
    if len(events) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} events")
    for h, _ in events:
        if (h.source_id, h.source_key_id, h.trust_key_id) != (
            source_key.owner,
            source_key.key_id,
            trust_key.key_id,
        ):
            raise ValueError(
                "every header in a batch must name the batch's source, source key and trust key"
            )
    headers = _encode_headers([h for h, _ in events])
    return _seal(
        headers,
        [p for _, p in events],
        lambda: [h for h, _ in events],
        trust_key=trust_key,
        source_key=source_key,
        batch_id=batch_id,
    )


def seal_events(
    events: Sequence[tuple[uuid.UUID, str, bytes, bytes]],
    *,
    produced_at_ms: int,
    trust_key: TrustPublicKey,
    source_key: SigningKey,
    batch_id: uuid.UUID | None = None,
) -> list[bytes]:
    """:func:`seal_batch` of ``(event id, kind, schema fingerprint, avro payload)`` each: the
    envelopes it makes of the headers of those events produced at ``produced_at_ms`` by
    ``source_key``'s owner for ``trust_key`` (a publisher's batch), without a header object
    made per event."""
    if not events:
        return []
    if len(events) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} events")
    source_id, source_key_id, trust_key_id = source_key.owner, source_key.key_id, trust_key.key_id

    def header(eid: uuid.UUID, kind: str, fingerprint: bytes) -> EventHeader:
        return EventHeader(
            source_id, eid, kind, fingerprint, produced_at_ms, trust_key_id, source_key_id
        )

    exact = (
        type(source_id) is str
        and type(source_key_id) is str
        and type(trust_key_id) is str
        and type(produced_at_ms) is int
    )
    parts: dict[tuple[str, bytes], tuple[bytes, bytes]] = {}
    headers: list[bytes] = []
    for eid, kind, fingerprint, _ in events:
        if exact and type(eid) is uuid.UUID and type(kind) is str and type(fingerprint) is bytes:
            found = parts.get((kind, fingerprint))
            if found is not None:
                headers.append(found[0] + eid.bytes + found[1])
                continue
            whole = encode_header(header(eid, kind, fingerprint))
            split = _header_parts(whole, source_id, eid)
            if split is not None:
                parts[(kind, fingerprint)] = split
            headers.append(whole)
        else:
            headers.append(encode_header(header(eid, kind, fingerprint)))
    return _seal(
        headers,
        [e[3] for e in events],
        lambda: [header(eid, kind, fingerprint) for eid, kind, fingerprint, _ in events],
        trust_key=trust_key,
        source_key=source_key,
        batch_id=batch_id,
    )


def _header_parts(whole: bytes, source_id: str, eid: uuid.UUID) -> tuple[bytes, bytes] | None:
    """A header's bytes before and after its event id (the fixed 16 bytes after the source
    id's), or None if they are not laid out so."""
    text = source_id.encode()
    cut = len(avro_long(len(text))) + len(text)
    if whole[cut : cut + 16] != eid.bytes:
        return None
    return whole[:cut], whole[cut + 16 :]


def _seal(
    headers: list[bytes],
    payloads: Sequence[bytes],
    header_objects: Callable[[], list[EventHeader]],
    *,
    trust_key: TrustPublicKey,
    source_key: SigningKey,
    batch_id: uuid.UUID | None,
) -> list[bytes]:
    """The envelopes of encoded ``headers`` and their ``payloads`` (see :func:`seal_batch`);
    ``header_objects`` gives the headers themselves, for fastavro to write the whole envelope
    where the generated encoders do not."""
    bid = (batch_id or uuid.uuid4()).bytes
    dek = os.urandom(32)
    aead = AESGCM(dek)
    ciphertexts = [aead.encrypt(_nonce(i), p, headers[i]) for i, p in enumerate(payloads)]
    # the leaves and so every node are SHA-256 digests (32 bytes): the proofs are joined as they are
    root, proofs = merkle_tree([_leaf(h, c) for h, c in zip(headers, ciphertexts, strict=True)])
    size = len(headers)
    info = _HPKE_CONTEXT + _batch_header_bytes(
        source_key.owner, source_key.key_id, trust_key.key_id, bid, size
    )
    encapsulated = _SUITE.encrypt(dek, trust_key.public, info=info)
    signature = source_key.sign(
        _SIGN_CONTEXT
        + _batch_header_bytes(
            source_key.owner, source_key.key_id, trust_key.key_id, bid, size, encapsulated, root
        )
    )
    seal = {
        "batch_id": bid,
        "size": size,
        "encapsulated_key": encapsulated,
        "root": root,
        "signature": signature,
    }
    try:
        seal_bytes = _ENCODE_SEAL(seal)
        return [
            _envelope_bytes(headers[i], seal_bytes, i, proofs[i], ciphertexts[i], digests=True)
            for i in range(size)
        ]
    except Unfit:  # a part the generated encoders do not write: fastavro writes the whole
        return [
            _write(
                _ENV,
                {
                    "version": ENVELOPE_VERSION,
                    "header": h.to_avro(),
                    "batch": seal,
                    "index": i,
                    "proof": proofs[i],
                    "ciphertext": ciphertexts[i],
                },
            )
            for i, h in enumerate(header_objects())
        ]


class OpenCache:
    """Remembers batch seals already verified and their data keys, so a batch costs one signature
    check and one HPKE open however many of its events arrive. Keyed by the whole seal: a changed
    seal is a different key and is checked afresh. Also the last inclusion proof's walk, so the
    next event's walk stops where it meets it."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[tuple[str | bytes | int, ...], AESGCM] = OrderedDict()
        # the last inclusion proof checked (see _root_from_proof): one tuple, replaced whole
        self.last_path: _Path | None = None
        # the last event's batch id, as bytes and as the UUID (one made per batch)
        self.last_batch: tuple[bytes, uuid.UUID] = (b"", uuid.UUID(int=0))

    def get(self, key: tuple[str | bytes | int, ...]) -> AESGCM | None:
        aead = self._keys.get(key)
        if aead is not None:
            self._keys.move_to_end(key)
        return aead

    def put(self, key: tuple[str | bytes | int, ...], aead: AESGCM) -> None:
        self._keys[key] = aead
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)


def peek_header(raw: bytes, *, ctx: Delivery | None = None) -> EventHeader:
    """Decode only the envelope's header (no check of anything): for routing and receipts."""
    _, header, _, _ = _read_envelope(raw, ctx)
    return EventHeader.from_avro(header)


def _read_int(raw: bytes) -> tuple[int, int]:
    """The Avro ``int`` (zig-zag varint, at most 5 bytes) at the start of ``raw``, and its end."""
    value = shift = 0
    for i in range(min(5, len(raw))):
        b = raw[i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return (value >> 1) ^ -(value & 1), i + 1
        shift += 7
    raise ValueError("not an Avro int")


def _read_envelope(
    raw: bytes, ctx: Delivery | None
) -> tuple[int, dict[str, Any], bytes, dict[str, Any]]:
    """The envelope's version, header (as decoded), the header's bytes exactly as sent, and the
    rest (batch seal, index, proof, ciphertext)."""
    readers = _READERS
    if readers is not None and type(raw) is bytes:
        # the generated readers (fastavro's values): anything else they leave to fastavro below
        try:
            version, start = _read_int(raw)
            header, end = readers[0](raw, start)
            rest, stop = readers[1](raw, end)
        except Exception:
            pass
        else:
            if stop == len(raw):
                return version, header, raw[start:end], rest
    try:
        version, start = _read_int(raw)
        buf = io.BytesIO(raw)
        buf.seek(start)
        header = fastavro.schemaless_reader(buf, _HEADER_READ, None)
        end = buf.tell()
        rest = fastavro.schemaless_reader(buf, _AFTER_HEADER, None)
    except Exception:
        raise MalformedEnvelope("message is not an envelope", delivery=ctx) from None
    if buf.tell() != len(raw):
        raise MalformedEnvelope("envelope has trailing bytes", delivery=ctx)
    assert isinstance(header, dict) and isinstance(rest, dict)
    return version, header, raw[start:end], rest


def open_event(
    raw: bytes,
    *,
    keyring: Keyring,
    ctx: Delivery | None = None,
    expected_source: str | None = None,
    cache: OpenCache | None = None,
) -> OpenedEvent:
    """Verify and decrypt one envelope.

    Raises a :class:`~schemas.errors.ContractError` subclass whose ``code`` is the receipt reason
    and whose ``delivery`` is ``ctx``: MalformedEnvelope, UnsupportedVersion, SourceMismatch,
    UnknownSource, UnknownSourceKey, BadSignature, UnknownTrustKey, DecryptionFailed. No decrypted
    byte is ever part of an error.
    """
    version, decoded_header, header_bytes, env = _read_envelope(raw, ctx)
    event_id: str | None = None
    try:
        try:
            header = EventHeader.from_avro(decoded_header)
        except (ValueError, KeyError, TypeError):
            raise MalformedEnvelope("envelope header is unreadable") from None
        event_id = _uuid_text(decoded_header["event_id"])
        if version != ENVELOPE_VERSION:
            raise UnsupportedVersion(f"envelope version must be {ENVELOPE_VERSION}")
        if header.kind not in MESSAGE_KINDS:
            raise MalformedEnvelope("unknown message kind")
        if expected_source is not None and header.source_id != expected_source:
            raise SourceMismatch("envelope names a different source than its topic")
        verify_key = keyring.source_key(header.source_id, header.source_key_id)
        seal = env["batch"]
        # the header's bytes as sent: a header re-encoded differently would not be the one
        # the source hashed into its Merkle tree, so it fails here
        root = _root_from_proof(
            _leaf(header_bytes, env["ciphertext"]), env["index"], seal["size"], env["proof"], cache
        )
        if root is None or root != seal["root"]:
            raise BadSignature("event is not part of the signed batch")
        cache_key = (
            header.source_id,
            header.source_key_id,
            header.trust_key_id,
            seal["batch_id"],
            seal["size"],
            seal["encapsulated_key"],
            seal["root"],
            seal["signature"],
        )
        aead = cache.get(cache_key) if cache is not None else None
        if aead is None:
            signed = _batch_header_bytes(
                header.source_id,
                header.source_key_id,
                header.trust_key_id,
                seal["batch_id"],
                seal["size"],
                seal["encapsulated_key"],
                seal["root"],
            )
            try:
                verify_key.public.verify(seal["signature"], _SIGN_CONTEXT + signed)
            except InvalidSignature:
                raise BadSignature("batch signature does not verify") from None
            trust_key = keyring.trust_key(header.trust_key_id)
            info = _HPKE_CONTEXT + _batch_header_bytes(
                header.source_id,
                header.source_key_id,
                header.trust_key_id,
                seal["batch_id"],
                seal["size"],
            )
            try:
                dek = _SUITE.decrypt(seal["encapsulated_key"], trust_key.private, info=info)
            except (InvalidTag, ValueError):
                raise DecryptionFailed("batch key does not open with the named trust key") from None
            if len(dek) != 32:
                raise DecryptionFailed("batch key has the wrong length")
            aead = AESGCM(dek)
            if cache is not None:
                cache.put(cache_key, aead)
        try:
            payload = aead.decrypt(_nonce(env["index"]), env["ciphertext"], header_bytes)
        except InvalidTag:
            raise DecryptionFailed("event does not decrypt under its batch key") from None
        if cache is None:
            batch_id = uuid.UUID(bytes=seal["batch_id"])
        else:  # a batch's events come one after the other
            if cache.last_batch[0] != seal["batch_id"]:
                cache.last_batch = (seal["batch_id"], uuid.UUID(bytes=seal["batch_id"]))
            batch_id = cache.last_batch[1]
        return OpenedEvent(header, payload, batch_id, ctx, event_id)
    except ContractError as err:
        err.delivery = ctx
        err.event_id = event_id
        raise
