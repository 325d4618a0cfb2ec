"""Keys both ends of a topic must agree on, and where they live on disk.

- a **trust key** (X25519): sources seal batches to its public half; the trust keeps every private
  half until retired, so rotation never strands an envelope in flight;
- a **source key** (Ed25519): each source signs its batches; the trust registers the public half;
- a **release key** (Ed25519): the trust signs releases; consumers verify with the public half.

Key ids are the first 16 hex digits of SHA-256 over the raw public key, so an id names exactly one
key. Private key files are written with mode 0600 and their bytes never appear in logs or errors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from schemas.errors import RevokedSourceKey, UnknownSource, UnknownSourceKey, UnknownTrustKey

_RAW = serialization.Encoding.Raw
_RAWPUB = serialization.PublicFormat.Raw


class KeyFileError(Exception):
    """A key file is missing, unreadable or of the wrong kind (the message names the file, not its
    content)."""

    code = "key_file"


def key_id(public: X25519PublicKey | Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(_RAW, _RAWPUB)).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class TrustPublicKey:
    key_id: str
    public: X25519PublicKey


@dataclass(frozen=True, eq=False)
class TrustKeyPair:
    key_id: str
    private: X25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> TrustKeyPair:
        k = X25519PrivateKey.generate()
        return cls(key_id(k.public_key()), k)

    @property
    def public(self) -> TrustPublicKey:
        return TrustPublicKey(self.key_id, self.private.public_key())


@dataclass(frozen=True, eq=False)
class SigningKey:
    """An Ed25519 private key with its owner and id (a source's, or the trust's release key)."""

    owner: str
    key_id: str
    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, owner: str) -> SigningKey:
        k = Ed25519PrivateKey.generate()
        return cls(owner, key_id(k.public_key()), k)

    @property
    def public(self) -> VerifyKey:
        return VerifyKey(self.owner, self.key_id, self.private.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


@dataclass(frozen=True, eq=False)
class VerifyKey:
    """An Ed25519 public key with its owner and id."""

    owner: str
    key_id: str
    public: Ed25519PublicKey


class Keyring:
    """What the trust needs to open envelopes: its X25519 private keys and the sources' public keys."""

    def __init__(
        self,
        trust_keys: Iterable[TrustKeyPair] = (),
        source_keys: Iterable[VerifyKey] = (),
    ) -> None:
        self._trust = {k.key_id: k for k in trust_keys}
        self._sources: dict[str, dict[str, VerifyKey]] = {}
        self._revoked: set[tuple[str, str]] = set()
        for s in source_keys:
            self.add_source_key(s)

    def add_trust_key(self, key: TrustKeyPair) -> None:
        self._trust[key.key_id] = key

    def remove_trust_key(self, kid: str) -> None:
        """Open nothing sealed to ``kid`` any more (its private key is being destroyed)."""
        self._trust.pop(kid, None)

    def add_source_key(self, key: VerifyKey) -> None:
        self._sources.setdefault(key.owner, {})[key.key_id] = key

    def trust_key(self, kid: str) -> TrustKeyPair:
        try:
            return self._trust[kid]
        except KeyError:
            raise UnknownTrustKey(
                "envelope is sealed to a trust key this trust does not hold"
            ) from None

    def revoke_source_key(self, source_id: str, kid: str) -> None:
        """From now on nothing signed with ``kid`` of ``source_id`` opens (the key may stay
        registered: revocation wins, and is never undone)."""
        self._revoked.add((source_id, kid))

    def is_revoked(self, source_id: str, kid: str) -> bool:
        return (source_id, kid) in self._revoked

    def source_key(self, source_id: str, kid: str) -> VerifyKey:
        keys = self._sources.get(source_id)
        if keys is None:
            raise UnknownSource("envelope names a source that is not registered")
        if (source_id, kid) in self._revoked:
            raise RevokedSourceKey("envelope is signed with a key the trust revoked")
        try:
            return keys[kid]
        except KeyError:
            raise UnknownSourceKey(
                "envelope is signed with a key not registered for its source"
            ) from None

    def has_source(self, source_id: str) -> bool:
        return source_id in self._sources

    @property
    def sources(self) -> list[str]:
        return sorted(self._sources)


# --- PEM files -------------------------------------------------------------------------------


def _write_private(path: Path, pem: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _private_pem(k: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(k: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return k.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_private(path: Path) -> object:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        raise KeyFileError(f"cannot read private key file {path}") from None


def _load_public(path: Path) -> object:
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError):
        raise KeyFileError(f"cannot read public key file {path}") from None


def write_trust_key(directory: Path, key: TrustKeyPair) -> Path:
    path = directory / f"{key.key_id}.x25519.pem"
    _write_private(path, _private_pem(key.private))
    (directory / f"{key.key_id}.x25519.pub.pem").write_bytes(public_pem(key.private.public_key()))
    return path


def read_trust_key(path: Path) -> TrustKeyPair:
    k = _load_private(path)
    if not isinstance(k, X25519PrivateKey):
        raise KeyFileError(f"{path} is not an X25519 private key")
    return TrustKeyPair(key_id(k.public_key()), k)


def read_trust_public(path: Path) -> TrustPublicKey:
    k = _load_public(path)
    if not isinstance(k, X25519PublicKey):
        raise KeyFileError(f"{path} is not an X25519 public key")
    return TrustPublicKey(key_id(k), k)


def write_signing_key(directory: Path, key: SigningKey) -> Path:
    path = directory / f"{key.key_id}.ed25519.pem"
    _write_private(path, _private_pem(key.private))
    (directory / f"{key.key_id}.ed25519.pub.pem").write_bytes(public_pem(key.private.public_key()))
    return path


def read_signing_key(path: Path, owner: str) -> SigningKey:
    k = _load_private(path)
    if not isinstance(k, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return SigningKey(owner, key_id(k.public_key()), k)


def read_verify_key(path: Path, owner: str) -> VerifyKey:
    k = _load_public(path)
    if not isinstance(k, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 public key")
    return VerifyKey(owner, key_id(k), k)


def verify_key_from_pem(pem: bytes, owner: str) -> VerifyKey:
    try:
        k = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise KeyFileError("not a PEM public key") from None
    if not isinstance(k, Ed25519PublicKey):
        raise KeyFileError("not an Ed25519 public key")
    return VerifyKey(owner, key_id(k), k)


# --- key lifecycle ------------------------------------------------------------------------------


@dataclass
class KeyState:
    """A key folder's recorded lifecycle: the active key, every held key in the order it was
    added, and the retired ones. "Latest" is what this record says, never a file-name order."""

    active: str | None = None
    held: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    # when each held key stopped being the active one (ms since the epoch)
    replaced_at_ms: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TrustKeyState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(
            data.get("active"),
            list(data.get("held", [])),
            list(data.get("retired", [])),
            {str(k): int(v) for k, v in dict(data.get("replaced_at_ms", {})).items()},
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        body: dict[str, object] = {
            "active": self.active,
            "held": self.held,
            "retired": self.retired,
        }
        if self.replaced_at_ms:
            body["replaced_at_ms"] = self.replaced_at_ms
        tmp.write_text(json.dumps(body, indent=2))
        tmp.replace(path)


TrustKeyState = KeyState
"""The trust's encryption keys use the same lifecycle record."""

_STATE = "state.json"


class KeyStore:
    """One owner's Ed25519 signing keys in a folder, with their lifecycle in ``state.json``.

    The active key signs; every held key's public half still verifies what it signed. A folder
    written before lifecycles were recorded is adopted when it holds exactly one key; with several
    and no record of which is active, :class:`KeyFileError` asks the operator to decide. A key
    file that cannot be read is an error naming the file, never skipped.
    """

    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.owner = owner

    @property
    def _state_path(self) -> Path:
        return self.directory / _STATE

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.glob("*.ed25519.pem") if not p.name.endswith(".pub.pem")
        )

    def state(self) -> KeyState:
        """The recorded lifecycle (adopting a single unrecorded key)."""
        if self._state_path.exists():
            try:
                return KeyState.load(self._state_path)
            except (ValueError, OSError):
                raise KeyFileError(f"{self._state_path} cannot be read") from None
        files = self._files()
        if not files:
            return KeyState()
        if len(files) > 1:
            raise KeyFileError(
                f"{self.directory} holds {len(files)} keys and no record of which is active: "
                f"write {_STATE} naming the active key"
            )
        kid = files[0].name.split(".")[0]
        state = KeyState(kid, [kid], [])
        state.save(self._state_path)
        return state

    def _read(self, kid: str) -> SigningKey:
        path = self.directory / f"{kid}.ed25519.pem"
        key = read_signing_key(path, self.owner)
        if key.key_id != kid:
            raise KeyFileError(f"{path} holds another key than its name says")
        return key

    def active(self) -> SigningKey | None:
        """The key that signs now, or None when there is none yet."""
        state = self.state()
        return self._read(state.active) if state.active else None

    def verify_keys(self) -> list[VerifyKey]:
        """The public halves of every held key (what they signed still verifies)."""
        return [self._read(kid).public for kid in self.state().held]

    def create(self) -> SigningKey:
        """A new key, recorded as the active one (the previous active key stays held)."""
        state = self.state()
        key = SigningKey.generate(self.owner)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_signing_key(self.directory, key)
        state.active = key.key_id
        state.held.append(key.key_id)
        state.save(self._state_path)
        return key


class KeyProvider(Protocol):
    """Where the vault's key-encryption key comes from: a file here, a KMS in production.

    Rotation is two-phase, so a crash can never lose the key the store is wrapped under: a new
    key is *staged* beside the current one, the vault re-wraps everything under it, and only then
    is it *promoted* over the current one, which is destroyed.
    """

    def key_encryption_key(self) -> bytes:
        """The 32-byte key-encryption key. Raises :class:`KeyFileError` if it is unusable."""
        ...

    def stage_key_encryption_key(self, key: bytes) -> None:
        """Hold ``key`` (32 bytes) durably beside the current one, not yet in use."""
        ...

    def staged_key_encryption_key(self) -> bytes | None:
        """The staged key, if a rotation was interrupted before its promotion."""
        ...

    def promote_staged(self) -> None:
        """Make the staged key the current one; the previous one is destroyed."""
        ...

    def discard_staged(self) -> None:
        """Destroy the staged key (its rotation never committed)."""
        ...


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileKeyProvider:
    """A key-encryption key in a file of exactly 32 bytes (mode 0600); a staged key in the file
    beside it named ``<name>.next``. Promotion renames the staged file over the current one.

    What a file system keeps of a replaced file (a journal, an SSD's remapped blocks) is outside
    this process's reach: keep the file on storage you can erase, or use a KMS.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.staged_path = path.with_name(path.name + ".next")

    def __repr__(self) -> str:
        return f"FileKeyProvider({str(self.path)!r})"

    def key_encryption_key(self) -> bytes:
        return self._read(self.path)

    def stage_key_encryption_key(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a key-encryption key is 32 bytes")
        self.staged_path.unlink(missing_ok=True)
        fd = os.open(self.staged_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.path.parent)

    def staged_key_encryption_key(self) -> bytes | None:
        if not self.staged_path.exists():
            return None
        return self._read(self.staged_path)

    def promote_staged(self) -> None:
        os.replace(self.staged_path, self.path)
        _fsync_dir(self.path.parent)

    def discard_staged(self) -> None:
        self.staged_path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            data = path.read_bytes()
        except OSError:
            raise KeyFileError(f"{path} cannot be read") from None
        if len(data) != 32:
            raise KeyFileError(f"{path} is not a 32-byte key")
        return data
