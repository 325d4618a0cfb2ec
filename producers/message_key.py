"""Message keys that name nothing: a keyed hash of the case reference, never the reference.

A log message's key decides its partition, so every message about one case must carry the same
key (upserts, retractions and notices of a case stay in order). The case reference itself is the
agency's identifier and must not travel in clear, so the key is

    HMAC-SHA256(secret, "tiptrust/message-key/v1" 0x00 reference)[:16]

— 16 raw bytes (128 bits) under a 32-byte secret that only the source holds
(``HOME/sources/<source>/keys/message-key.bin``, mode 0600). Raw bytes rather than hex: half the
size, and random bytes cannot be mistaken for (or by chance spell) a readable identifier.
Truncation is safe because nothing relies on keys being unique: a collision only puts two cases in
the same partition. Without the secret, nobody (the broker, the trust) can test a guessed reference
against a key; the same secret always gives the same key, so a case keeps its partition across
runs and machines that share the file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac

__all__ = ["KEY_BYTES", "SECRET_BYTES", "MessageKeyError", "MessageKeyer", "load_or_create_keyer"]

SECRET_BYTES = 32
KEY_BYTES = 16
_CONTEXT = b"tiptrust/message-key/v1\x00"


class MessageKeyError(Exception):
    """The message-key file is unreadable or not a 32-byte secret (names the file, not bytes)."""

    code = "message_key"


class MessageKeyer:
    """Turns a source's case references into stable, keyed, opaque log message keys.

    ``MessageKeyer(secret).key("CR/2024/00017")`` is 16 bytes that are the same for the same secret
    and reference, and unrelated for another secret. The secret is never shown by ``repr``.
    """

    __slots__ = ("_base",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
            raise ValueError(f"a message-key secret is {SECRET_BYTES} bytes")
        base = hmac.HMAC(secret, hashes.SHA256())
        base.update(_CONTEXT)
        self._base = base

    @classmethod
    def generate(cls) -> MessageKeyer:
        """A keyer with a fresh random secret (tests, throw-away publishers)."""
        return cls(os.urandom(SECRET_BYTES))

    def key(self, reference: str) -> bytes:
        """The message key of ``reference`` (a case reference or record key): 16 raw bytes."""
        h = self._base.copy()
        h.update(reference.encode("utf-8"))
        return h.finalize()[:KEY_BYTES]

    def __repr__(self) -> str:
        return "MessageKeyer(<secret>)"


def load_or_create_keyer(path: Path) -> MessageKeyer:
    """The keyer whose secret is in ``path``; the file is created first if missing.

    A new secret is 32 random bytes written to a private temporary file (``O_EXCL``, mode 0600)
    and linked into place only when complete, so a crash never leaves a short file and two
    publishers starting at once end up with the same secret.

    Raises:
        MessageKeyError: the file cannot be read or created, or does not hold 32 bytes.
    """
    if not path.exists():
        _create(path)
    try:
        secret = path.read_bytes()
    except OSError:
        raise MessageKeyError(f"cannot read message-key file {path}") from None
    if len(secret) != SECRET_BYTES:
        raise MessageKeyError(f"{path} is not a {SECRET_BYTES}-byte message-key secret")
    return MessageKeyer(secret)


def _create(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(SECRET_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another publisher was first: keep theirs
            os.link(tmp, path)
    except OSError:
        raise MessageKeyError(f"cannot create message-key file {path}") from None
    finally:
        tmp.unlink(missing_ok=True)
