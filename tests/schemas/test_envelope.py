"""Envelopes: every event individually authenticated, confidential and rejectable."""

from __future__ import annotations

import io
import uuid
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas.envelope as envelope_module
from schemas.codec import default_registry, epoch_millis
from schemas.envelope import (
    _AFTER_HEADER,
    _HEADER,
    _HEADER_READ,
    _READERS,
    ENVELOPE_SCHEMA,
    EventHeader,
    OpenCache,
    _encode_headers,
    _envelope_bytes,
    _read_envelope,
    _read_int,
    _root_from_proof,
    _uuid_text,
    encode_header,
    merkle_root_from_proof,
    merkle_tree,
    new_event_id,
    open_event,
    peek_header,
    seal_batch,
    seal_events,
)
from schemas.errors import (
    BadSignature,
    ContractError,
    DecryptionFailed,
    Delivery,
    MalformedEnvelope,
    ReasonCode,
    SourceMismatch,
    UnknownSource,
    UnknownSourceKey,
    UnknownTrustKey,
)
from schemas.fastencode import Unfit
from schemas.keys import Keyring, SigningKey, TrustKeyPair

from .conftest import sample_record

CASE = default_registry().current("case_record")


def _events(
    source_key: SigningKey, trust_key: TrustKeyPair, n: int
) -> list[tuple[EventHeader, bytes]]:
    out = []
    for i in range(n):
        h = EventHeader(
            "police",
            new_event_id(),
            "RecordUpsert",
            CASE.fingerprint,
            1_700_000_000_000,
            trust_key.key_id,
            source_key.key_id,
        )
        out.append((h, CASE.encode(sample_record(f"C-{i}"))))
    return out


@pytest.fixture(scope="module")
def batch(
    source_key: SigningKey, trust_key: TrustKeyPair
) -> tuple[list[tuple[EventHeader, bytes]], list[bytes]]:
    events = _events(source_key, trust_key, 7)
    return events, seal_batch(events, trust_key=trust_key.public, source_key=source_key)


def test_each_event_opens_on_its_own(batch, keyring) -> None:
    events, envelopes = batch
    for (h, payload), raw in zip(events, envelopes, strict=True):
        opened = open_event(raw, keyring=keyring)
        assert opened.header == h
        assert opened.payload == payload


def test_no_plaintext_in_envelopes(batch) -> None:
    _, envelopes = batch
    for raw in envelopes:
        for secret in (b"Amina", b"Okafor", b"A1234567", b"Police"):
            assert secret not in raw


def test_version_and_ids_are_readable_without_keys(batch) -> None:
    events, envelopes = batch
    assert peek_header(envelopes[3]).event_id == events[3][0].event_id


def test_same_envelope_twice_has_same_event_id(batch, keyring) -> None:
    _, envelopes = batch
    a = open_event(envelopes[2], keyring=keyring)
    b = open_event(envelopes[2], keyring=keyring)
    assert a.header.event_id == b.header.event_id


def test_cache_opens_a_batch_once_and_still_checks_each_event(batch, keyring) -> None:
    _, envelopes = batch
    cache = OpenCache()
    for raw in envelopes:
        open_event(raw, keyring=keyring, cache=cache)
    tampered = bytearray(envelopes[5])
    tampered[-1] ^= 0x01
    with pytest.raises(BadSignature):
        open_event(bytes(tampered), keyring=keyring, cache=cache)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_bit_flip_is_detected(batch, keyring, data) -> None:
    _, envelopes = batch
    raw = data.draw(st.sampled_from(envelopes))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ContractError) as info:
        open_event(bytes(flipped), keyring=keyring, cache=OpenCache())
    assert info.value.code in set(ReasonCode)


def test_wrong_trust_key_fails(source_key: SigningKey, keyring: Keyring) -> None:
    other = TrustKeyPair.generate()
    envelopes = seal_batch(
        _events(source_key, other, 2), trust_key=other.public, source_key=source_key
    )
    with pytest.raises(UnknownTrustKey):
        open_event(envelopes[0], keyring=keyring)
    # the same key id but another private key: the HPKE open fails
    impostor = TrustKeyPair(other.key_id, TrustKeyPair.generate().private)
    ring = Keyring([impostor], [source_key.public])
    with pytest.raises(DecryptionFailed) as info:
        open_event(envelopes[0], keyring=ring)
    assert info.value.code is ReasonCode.DECRYPTION_FAILED


def test_unknown_source_and_unknown_source_key(
    trust_key: TrustKeyPair, source_key: SigningKey
) -> None:
    envelopes = seal_batch(
        _events(source_key, trust_key, 1), trust_key=trust_key.public, source_key=source_key
    )
    with pytest.raises(UnknownSource):
        open_event(envelopes[0], keyring=Keyring([trust_key], []))
    rotated = SigningKey.generate("police")
    with pytest.raises(UnknownSourceKey):
        open_event(envelopes[0], keyring=Keyring([trust_key], [rotated.public]))


def test_forged_signature_by_another_key_with_same_id(
    trust_key: TrustKeyPair, source_key: SigningKey
) -> None:
    forger = SigningKey("police", source_key.key_id, SigningKey.generate("x").private)
    envelopes = seal_batch(
        _events(source_key, trust_key, 2), trust_key=trust_key.public, source_key=forger
    )
    with pytest.raises(BadSignature):
        open_event(envelopes[1], keyring=Keyring([trust_key], [source_key.public]))


def test_topic_source_must_match(batch, keyring) -> None:
    _, envelopes = batch
    ctx = Delivery("tip.inbound.ngo_haven", 0, 42)
    with pytest.raises(SourceMismatch) as info:
        open_event(envelopes[0], keyring=keyring, ctx=ctx, expected_source="ngo_haven")
    assert info.value.delivery == ctx
    assert info.value.event_id is not None


def test_garbage_is_malformed(keyring) -> None:
    with pytest.raises(MalformedEnvelope):
        open_event(b"\x00\x01garbage", keyring=keyring)
    with pytest.raises(MalformedEnvelope):
        open_event(b"", keyring=keyring)


def test_batch_headers_must_agree(source_key: SigningKey, trust_key: TrustKeyPair) -> None:
    events = _events(source_key, trust_key, 2)
    h, p = events[1]
    bad = EventHeader(
        "ngo_haven",
        h.event_id,
        h.kind,
        h.schema_fingerprint,
        h.produced_at_ms,
        h.trust_key_id,
        h.source_key_id,
    )
    with pytest.raises(ValueError):
        seal_batch([events[0], (bad, p)], trust_key=trust_key.public, source_key=source_key)


@given(n=st.integers(1, 70))
def test_merkle_proofs_verify_for_every_size(n: int) -> None:
    leaves = [uuid.uuid4().bytes * 2 for _ in range(n)]
    root, proofs = merkle_tree(leaves)
    for i, leaf in enumerate(leaves):
        assert merkle_root_from_proof(leaf, i, n, proofs[i]) == root
        if n > 1:
            assert merkle_root_from_proof(leaf, (i + 1) % n, n, proofs[i]) != root


def test_uuid7_is_time_ordered() -> None:
    a, b = new_event_id(1_000), new_event_id(2_000)
    assert a.version == 7 and b.version == 7
    assert a < b


def test_known_answer_header_encoding_and_merkle_root() -> None:
    """Fixed vectors: a change of the wire format shows here in review."""
    from schemas.envelope import encode_header

    h = EventHeader(
        "police",
        uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057"),
        "RecordUpsert",
        bytes(range(32)),
        1_700_000_000_000,
        "aaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbb",
    )
    assert encode_header(h).hex() == (
        "0c706f6c69636501890a5dac96774bbcceb302099a805700000102030405060708090a0b0c0d0e0f101112"
        "131415161718191a1b1c1d1e1f80a0abfef96220616161616161616161616161616161612062626262626262"
        "626262626262626262"
    )
    root, _ = merkle_tree([bytes([i]) * 32 for i in range(5)])
    assert root.hex() == KAT_ROOT


KAT_ROOT = "6b47390ca4d50a07ca331591cb2663ca62ece03b8e58c88926185877238b09b6"


def test_the_header_is_authenticated_as_sent_not_as_re_encoded(batch, keyring) -> None:
    events, envelopes = batch
    raw = envelopes[0]
    # the version (1: one byte) then the source id's length, 6, as its canonical varint 0x0c;
    # the same value written in two bytes decodes to the same header but is not what was signed
    assert raw[1] == 0x0C
    padded = raw[:1] + b"\x8c\x00" + raw[2:]
    assert peek_header(padded) == events[0][0]
    with pytest.raises(BadSignature):
        open_event(padded, keyring=keyring)


@given(st.integers(-(2**31), 2**31 - 1), st.binary(max_size=8))
def test_envelope_version_reads_as_avro_writes_it(value: int, tail: bytes) -> None:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "int", value)
    encoded = buf.getvalue()
    assert _read_int(encoded + tail) == (value, len(encoded))


def test_an_unterminated_version_is_malformed(keyring) -> None:
    for raw in (b"", b"\x80", b"\xff" * 6):
        with pytest.raises(MalformedEnvelope):
            open_event(raw, keyring=keyring)


def assert_fastavro_writes(raw: bytes) -> None:
    """``raw`` is what fastavro writes of the envelope it reads from it."""
    datum = fastavro.schemaless_reader(io.BytesIO(raw), ENVELOPE_SCHEMA.parsed, None)
    assert isinstance(datum, dict)
    datum["header"]["produced_at"] = epoch_millis(datum["header"]["produced_at"])
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, ENVELOPE_SCHEMA.parsed, datum)
    assert buf.getvalue() == raw


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_an_envelope_joined_from_its_parts_is_what_fastavro_writes(
    source_key: SigningKey, trust_key: TrustKeyPair, n: int
) -> None:
    events = _events(source_key, trust_key, n)
    for raw in seal_batch(events, trust_key=trust_key.public, source_key=source_key):
        assert_fastavro_writes(raw)


def test_a_header_is_written_as_fastavro_writes_it(
    source_key: SigningKey, trust_key: TrustKeyPair
) -> None:
    (h, _), *_ = _events(source_key, trust_key, 1)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _HEADER, h.to_avro())
    assert encode_header(h) == buf.getvalue()


def test_a_proof_node_of_another_size_is_not_joined_by_hand() -> None:
    with pytest.raises(Unfit):
        _envelope_bytes(b"h", b"s", 0, [b"\x00" * 31], b"c")


class _Kind(str):
    """A kind of another type than ``str``: its header is encoded on its own."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    choices=st.lists(
        st.tuples(
            st.sampled_from(["RecordUpsert", "RecordRetraction", "DisposalRequest"]),
            st.sampled_from([b"\x01" * 32, b"\x02" * 32]),
            st.sampled_from(["police", "ngo-x", "p" * 200]),  # a source id of two length bytes
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_headers_joined_from_their_parts_are_each_headers_own_bytes(
    choices: list[tuple[str, bytes, str, bool]],
) -> None:
    headers = [
        EventHeader(
            source, new_event_id(), _Kind(kind) if odd else kind, fp, 1_700_000_000_000, "t", "s"
        )
        for kind, fp, source, odd in choices
    ]
    assert _encode_headers(headers) == [encode_header(h) for h in headers]


@pytest.mark.parametrize("n", [1, 3, 64])
def test_seal_events_gives_the_envelopes_seal_batch_gives(
    source_key: SigningKey, trust_key: TrustKeyPair, keyring: Keyring, n: int
) -> None:
    """Each envelope holds the very header bytes ``encode_header`` gives its header, is written
    as fastavro writes it, and opens to its header and payload."""
    at = 1_700_000_000_123
    events = [
        (
            new_event_id(),
            "RecordUpsert" if i % 3 else "RecordRetraction",
            CASE.fingerprint if i % 2 else b"\x07" * 32,
            f"payload {i}".encode(),
        )
        for i in range(n)
    ]
    sealed = seal_events(
        events, produced_at_ms=at, trust_key=trust_key.public, source_key=source_key
    )
    assert len(sealed) == n
    for (eid, kind, fp, payload), raw in zip(events, sealed, strict=True):
        header = EventHeader(
            source_key.owner, eid, kind, fp, at, trust_key.key_id, source_key.key_id
        )
        _, _, header_bytes, _ = _read_envelope(raw, None)
        assert header_bytes == encode_header(header)
        assert_fastavro_writes(raw)
        opened = open_event(raw, keyring=keyring)
        assert opened.header == header and opened.payload == payload
    assert (
        seal_events([], produced_at_ms=at, trust_key=trust_key.public, source_key=source_key) == []
    )


def _fastavro_parts(raw: bytes) -> tuple[int, Any, bytes, Any]:
    """The envelope read by fastavro alone, as ``_read_envelope`` read it before the generated
    readers (the header's ``produced_at`` as its long)."""
    version, start = _read_int(raw)
    buf = io.BytesIO(raw)
    buf.seek(start)
    header = fastavro.schemaless_reader(buf, _HEADER_READ, None)
    end = buf.tell()
    rest = fastavro.schemaless_reader(buf, _AFTER_HEADER, None)
    assert buf.tell() == len(raw)
    return version, header, raw[start:end], rest


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 300),
    at=st.integers(0, 2**62),
    payload=st.binary(max_size=9000),
)
def test_the_generated_envelope_reader_gives_fastavros_parts(
    n: int, at: int, payload: bytes
) -> None:
    # batch sizes, indexes, times and lengths of one byte and more (a varint of two bytes and
    # longer): the same version, header, header bytes and rest as fastavro's, of the same types
    assert _READERS is not None  # generated, not fastavro's read again
    source_key, trust_key = SigningKey.generate("police"), TrustKeyPair.generate()
    events = [(new_event_id(), "RecordUpsert", CASE.fingerprint, payload) for _ in range(n)]
    sealed = seal_events(
        events, produced_at_ms=at, trust_key=trust_key.public, source_key=source_key
    )
    for raw in (sealed[0], sealed[-1]):
        got, want = _read_envelope(raw, None), _fastavro_parts(raw)
        assert got == want
        assert [type(x) for x in got[1].values()] == [type(x) for x in want[1].values()]
        assert list(got[1]) == list(want[1]) and list(got[3]) == list(want[3])
        eid = got[1]["event_id"]
        assert _uuid_text(eid) == str(uuid.UUID(bytes=eid))


def test_an_envelope_the_generated_reader_refuses_is_refused_as_before() -> None:
    source_key, trust_key = SigningKey.generate("police"), TrustKeyPair.generate()
    raw = seal_events(
        [(new_event_id(), "RecordUpsert", CASE.fingerprint, b"p")],
        produced_at_ms=1,
        trust_key=trust_key.public,
        source_key=source_key,
    )[0]
    for bad in (raw + b"\x00", raw[:-1], raw[:20]):
        with pytest.raises(MalformedEnvelope):
            _read_envelope(bad, None)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_walk_remembered_gives_the_root_the_proof_gives(data: st.DataObject) -> None:
    # any sequence of checks against one OpenCache (in order, at random, of other trees or sizes,
    # with a proof or leaf altered, cut or lengthened) comes to merkle_root_from_proof's answer
    cache = OpenCache()
    trees = []
    for size in data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=3)):
        leaves = [bytes([size, i]) * 16 for i in range(size)]
        trees.append((leaves, *merkle_tree(leaves)))
    for _ in range(data.draw(st.integers(1, 60))):
        leaves, _, proofs = data.draw(st.sampled_from(trees))
        size = len(leaves)
        i = data.draw(st.integers(0, size - 1))
        leaf, proof, index = leaves[i], list(proofs[i]), i
        change = data.draw(
            st.sampled_from(["none", "none", "leaf", "entry", "cut", "add", "index"])
        )
        if change == "leaf":
            leaf = b"\x00" * 32
        elif change == "entry" and proof:
            proof[data.draw(st.integers(0, len(proof) - 1))] = b"\x01" * 32
        elif change == "cut" and proof:
            proof.pop()
        elif change == "add":
            proof.append(b"\x02" * 32)
        elif change == "index":
            index = data.draw(st.integers(-1, size))
        want = merkle_root_from_proof(leaf, index, size, proof)
        assert _root_from_proof(leaf, index, size, proof, cache) == want
        assert _root_from_proof(leaf, index, size, proof, None) == want


def test_a_batch_opened_in_order_walks_about_two_levels_per_event(
    monkeypatch: pytest.MonkeyPatch, source_key: SigningKey, trust_key: TrustKeyPair, keyring
) -> None:
    envelopes = seal_events(
        [(new_event_id(), "RecordUpsert", CASE.fingerprint, b"p%d" % i) for i in range(64)],
        produced_at_ms=1,
        trust_key=trust_key.public,
        source_key=source_key,
    )
    hashed = []
    node = envelope_module._node
    monkeypatch.setattr(envelope_module, "_node", lambda a, b: hashed.append(1) or node(a, b))
    cache = OpenCache()
    for raw in envelopes:
        assert open_event(raw, keyring=keyring, cache=cache).payload.startswith(b"p")
    # each inner node of the tree at most twice, from either child: about two hashes per event
    # where a walk of its own would take six (6 * 64 = 384)
    assert len(hashed) <= 2 * 63
