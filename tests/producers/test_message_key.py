"""Message keys: stable per case, keyed by the source's secret, never the reference itself."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.message_key import (
    KEY_BYTES,
    SECRET_BYTES,
    MessageKeyer,
    MessageKeyError,
    load_or_create_keyer,
)

secrets = st.binary(min_size=SECRET_BYTES, max_size=SECRET_BYTES)
references = st.text(min_size=1, max_size=40)
#: timing is not what these test, and a busy machine took 570 ms for one example
no_deadline = settings(deadline=None)


@no_deadline
@given(secrets, references)
def test_stable_for_a_secret_and_reference(secret: bytes, ref: str) -> None:
    a, b = MessageKeyer(secret), MessageKeyer(secret)
    assert a.key(ref) == a.key(ref) == b.key(ref)
    assert len(a.key(ref)) == KEY_BYTES


@no_deadline
@given(secrets, secrets, references)
def test_another_secret_gives_another_key(s1: bytes, s2: bytes, ref: str) -> None:
    if s1 != s2:
        assert MessageKeyer(s1).key(ref) != MessageKeyer(s2).key(ref)


@no_deadline
@given(secrets, references, references)
def test_another_reference_gives_another_key(secret: bytes, r1: str, r2: str) -> None:
    if r1 != r2:
        keyer = MessageKeyer(secret)
        assert keyer.key(r1) != keyer.key(r2)


@no_deadline
@given(secrets, st.text(alphabet="ABCDEFGHJKLMNPRSTVWXYZ0123456789/-", min_size=3, max_size=30))
def test_the_key_never_holds_the_reference(secret: bytes, ref: str) -> None:
    key = MessageKeyer(secret).key(ref)
    assert ref.encode() not in key
    if len(ref) >= 6:  # a shorter run of hex digits turns up in a random key's hex by chance
        assert ref.encode() not in key.hex().encode()
    assert key != ref.encode()[:KEY_BYTES]


def test_it_is_an_hmac_sha256_under_the_secret() -> None:
    # the keyed hash is the standard construction (checked with the standard library's hmac)
    import hashlib
    import hmac

    secret = bytes(range(32))
    want = hmac.new(secret, b"tiptrust/message-key/v1\x00CR/2024/00017", hashlib.sha256).digest()
    assert MessageKeyer(secret).key("CR/2024/00017") == want[:KEY_BYTES]


def test_a_secret_is_32_bytes_and_never_shown() -> None:
    for bad in (b"", b"x" * 16, b"x" * 33):
        with pytest.raises(ValueError):
            MessageKeyer(bad)
    secret = os.urandom(SECRET_BYTES)
    keyer = MessageKeyer(secret)
    assert secret.hex() not in repr(keyer) and repr(secret) not in repr(keyer)


def test_the_secret_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sources" / "police" / "keys" / "message-key.bin"
    first = load_or_create_keyer(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == SECRET_BYTES
    again = load_or_create_keyer(path)
    assert first.key("CR/2024/00017") == again.key("CR/2024/00017")
    assert [p.name for p in path.parent.iterdir()] == ["message-key.bin"]  # no temporary left
    other = load_or_create_keyer(tmp_path / "other.bin")
    assert other.key("CR/2024/00017") != first.key("CR/2024/00017")


def test_publishers_starting_together_share_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "message-key.bin"
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(load_or_create_keyer(path).key("case"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1


def test_a_damaged_secret_file_is_refused_without_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "message-key.bin"
    path.write_bytes(b"\x07secret-ish")
    with pytest.raises(MessageKeyError) as err:
        load_or_create_keyer(path)
    assert "secret-ish" not in str(err.value) and str(path) in str(err.value)
