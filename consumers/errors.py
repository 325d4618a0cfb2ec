"""Why a consumer refuses a verified release or a release file: reason codes and the errors that
carry them.

A release can verify (the trust signed it) and still be refused: when the consumer already holds
a *different* release with the same stream and sequence. A sequence number names one release for
good; the trust re-sends a release only with exactly the same signed bytes, so a second content
under a held sequence means a broken or compromised trust. Messages name the stream, the sequence,
the held file and short digests — never a count or any other value of the release.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class ConsumerReason(StrEnum):
    """Why a consumer refused a verified release. Stable strings: scripts may match them."""

    SEQUENCE_CONFLICT = "sequence_conflict"
    """The consumer holds a release with this stream and sequence and different signed content."""
    HELD_UNREADABLE = "held_release_unreadable"
    """A file for this sequence is held but cannot be read back to compare; nothing overwritten."""
    RELEASE_FILE_MISSING = "release_file_missing"
    """A release file named to be read (e.g. by ``tiptrust chart``) does not exist."""
    NOT_A_RELEASE = "not_a_release"
    """A file named as a release is not a release ``.json`` written by the subscriber."""


class ReleaseConflict(Exception):
    """A verified release that must not replace the one already held for its stream and sequence.

    Attributes:
        code: why (:class:`ConsumerReason`).
        stream, sequence: which release.
        held: the held file that was kept untouched.
        held_digest, new_digest: SHA-256 (hex) of the held and the arriving release's signed
            bytes (``held_digest`` is empty when the held file is unreadable).
    """

    def __init__(
        self,
        code: ConsumerReason,
        *,
        stream: str,
        sequence: int,
        held: Path,
        held_digest: str = "",
        new_digest: str = "",
    ) -> None:
        self.code = code
        self.stream = stream
        self.sequence = sequence
        self.held = held
        self.held_digest = held_digest
        self.new_digest = new_digest
        if code is ConsumerReason.SEQUENCE_CONFLICT:
            what = (
                f"a different release (sha256 {new_digest[:16]}) arrived for stream {stream!r} "
                f"sequence {sequence}, which this consumer already holds "
                f"(sha256 {held_digest[:16]}, {held})"
            )
        else:
            what = (
                f"a release arrived for stream {stream!r} sequence {sequence}, but the held "
                f"{held} cannot be read to compare it with"
            )
        self.message = (
            f"{code.value}: {what}; the held files are kept and the message is not committed. "
            f"Ask the trust why; to accept the arriving release instead, move {held.name} "
            f"and the files beside it with the same number (.csv, .metadata.json, .parquet) aside "
            "and subscribe again."
        )
        super().__init__(self.message)


class ReleaseFileError(Exception):
    """A release ``.json`` that cannot be used: missing, or not a release.

    Attributes:
        code: why (:attr:`ConsumerReason.RELEASE_FILE_MISSING` or
            :attr:`ConsumerReason.NOT_A_RELEASE`).
        path: the file.

    The message names the file and what is wrong with it, never any of its content.
    """

    def __init__(self, code: ConsumerReason, path: Path) -> None:
        self.code = code
        self.path = path
        if code is ConsumerReason.RELEASE_FILE_MISSING:
            what = f"there is no file {path}"
        else:
            what = (
                f"{path} is not a release: expected a NNNNNN.json written by `tiptrust "
                "subscribe` (not its .csv, .metadata.json or latest.json)"
            )
        self.message = f"{code.value}: {what}"
        super().__init__(self.message)
