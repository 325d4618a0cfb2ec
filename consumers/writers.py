"""Write verified releases to files: one CSV and one JSON per release, ``latest.json``, a README.

Layout: ``<out>/<stream>/<sequence:06d>.csv`` (one row per aggregate — cells, margins, total —
with the stream's dimensions as columns (``Total`` where an aggregate is not broken down by that
dimension), then ``value`` (empty when suppressed), ``exact`` and ``suppressed``),
``<out>/<stream>/<sequence:06d>.json`` (the whole release with its labels and hierarchies,
signature as hex, enough to verify it again with :func:`release_from_json`),
``<out>/<stream>/latest.json`` naming the newest sequence written, and
``<out>/<stream>/README.txt``, which says to a person who opens only the folder what the numbers
are. Every file is written to a temporary name and renamed into place, so a reader never sees
half a file.

**One sequence, one release.** The ``.json`` is the record of what this consumer holds for a
sequence; it is written first and never replaced. A release arriving for a held sequence is
compared with it by :func:`signed_digest` (SHA-256 of the release's signed Avro bytes, signature
included):

* the same digest is a re-send (the trust re-sends exactly the bytes it recorded, e.g. after a
  crash; a log redelivers after one of ours): nothing is rewritten, a missing ``.csv`` or a
  ``latest.json`` left behind by a crash between our writes is completed, and the result is
  reported as a duplicate;
* a different digest raises :class:`consumers.errors.ReleaseConflict` and touches nothing.

There is no separate index: the held ``.json`` carries the signature, so its digest is recomputed
from it, and files and index can never disagree.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from consumers.errors import ConsumerReason, ReleaseConflict
from schemas.release import LEGACY_RELEASE_SCHEMA, RELEASE_SCHEMA, Release

#: The CSV's word for "all categories" of a dimension an aggregate is not broken down by.
TOTAL = "Total"


@dataclass
class Written:
    """What one :meth:`ReleaseSink.write` did: the paths written, and whether it was a re-send."""

    paths: list[Path] = field(default_factory=list)
    duplicate: bool = False


class ReleaseSink(Protocol):
    """Where a subscriber puts verified releases.

    Raises :class:`consumers.errors.ReleaseConflict` for a release that must not replace one it
    holds; the subscriber then stops without committing the message.
    """

    def write(self, release: Release) -> Written: ...


def signed_digest(release: Release) -> str:
    """SHA-256 (hex) of the release's signed bytes: its Avro encoding, key id and signature in.

    For every release the trust publishes (:func:`schemas.release.sign_release`) this is the
    SHA-256 of the published message itself.
    """
    return hashlib.sha256(release.encoded()).hexdigest()


def release_to_json(release: Release) -> dict[str, Any]:
    """The release as JSON-ready data, mirroring the wire fields (signature as hex), with its
    ``format``."""
    d = release.to_avro()
    d["format"] = release.format
    d["issued_at_ms"] = d.pop("issued_at")
    d["issued_at"] = dt.datetime.fromtimestamp(release.issued_at_ms / 1000, tz=dt.UTC).isoformat(
        timespec="milliseconds"
    )
    d["signature"] = release.signature.hex()
    return d


def release_from_json(d: dict[str, Any]) -> Release:
    """A release read back from :func:`release_to_json` output (verify it before use); JSON
    without ``format`` is of format 1 (written by tiptrust 0.1)."""
    wire = dict(d)
    form = int(wire.pop("format", 1))
    schema = RELEASE_SCHEMA if form == 2 else LEGACY_RELEASE_SCHEMA
    wire["issued_at"] = wire.pop("issued_at_ms")
    wire["signature"] = bytes.fromhex(wire["signature"])
    return Release.from_avro(schema.decode(schema.encode(wire)), form)


def release_csv(release: Release) -> str:
    """The release's aggregates as CSV text: one column per dimension (``Total`` where the
    aggregate is not broken down by it), ``value`` (empty when suppressed), ``exact``,
    ``suppressed``; the cells first, then the margins, then the total."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*release.dimensions, "value", "exact", "suppressed"])
    order = sorted(release.aggregates, key=lambda a: -len(a.dimensions))
    for a in order:
        by = dict(zip(a.dimensions, a.key, strict=True))
        w.writerow(
            [
                *(by.get(d, TOTAL) for d in release.dimensions),
                "" if a.value is None else str(a.value),
                "true" if a.exact else "false",
                "true" if a.suppressed else "false",
            ]
        )
    return buf.getvalue()


def readme_text(release: Release) -> str:
    """What a person who opens only the stream's folder needs to read its files."""
    labels = release.labels
    lines = [
        release.title,
        "=" * len(release.title),
        "",
        f"Unit: {release.unit}. Stream {release.stream}, release {release.sequence}, issued "
        f"{_iso(release.issued_at_ms)} by the trust, signed (key {release.signing_key_id}).",
        "",
        "How to read these numbers",
        "-------------------------",
        release.caveat,
        "",
        f"Each NNNNNN.csv holds one row per published number: every cell of the table (broken "
        f"down by {', '.join(release.dimensions)}), every margin (a sub-total: the columns it is "
        f"not broken down by say '{TOTAL}') and the grand total. 'value' is the number; it is "
        f"empty when the number is suppressed, i.e. withheld because it, or a number it could be "
        f"worked out from, is below {release.k} persons. 'exact' is false when a number is "
        "suppressed, rounded or perturbed. Disclosure control: " + release.method + ".",
        "",
        "What one count is: " + release.metadata.get("counting_rule", "see the .json file"),
    ]
    if release.hierarchies:
        lines += ["", "Categories that add up others"]
        for dim, parents in release.hierarchies.items():
            for parent, children in parents.items():
                lines.append(f"  {dim}: {parent} = " + " + ".join(children))
    if labels:
        lines += ["", "Codes and their labels"]
        for dim in release.dimensions:
            for code, label in labels.get(dim, {}).items():
                if label and label != code:
                    lines.append(f"  {dim}: {code} = {label}")
    lines += [
        "",
        f"Sources: {', '.join(release.sources) or 'not named'} ({release.source_count} in all). "
        "NNNNNN.json holds the same release with all its metadata and the signature; "
        "latest.json names the newest.",
        "",
    ]
    return "\n".join(lines)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _write_tmp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = _write_tmp(path, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def _atomic_create(path: Path, data: bytes) -> bool:
    """Put ``data`` at ``path`` whole, only if nothing is there; False if something already was.

    The complete temporary file is hard-linked into place, so of two writers racing for the same
    name exactly one wins and neither replaces the other. On a file system without hard links it
    falls back to a checked rename (the race window is then the check).
    """
    tmp = _write_tmp(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _json_bytes(d: Any) -> bytes:
    return (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class ReleaseWriter:
    """Writes each release as CSV + JSON under ``out_dir/<stream>/`` and updates ``latest.json``.

    A sequence's files are written once: a re-send of the same signed release is a duplicate
    (nothing rewritten), a different release for a held sequence raises
    :class:`~consumers.errors.ReleaseConflict` (see the module docstring). ``latest.json`` only
    moves forward, to the highest sequence written.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    def write(self, release: Release) -> Written:
        """Write ``release``, or recognise it as held; return what was written.

        Raises:
            ReleaseConflict: a different release is held for this stream and sequence (or the
                held one cannot be read); no file was changed.
            OSError: a file could not be written; writing the same release again completes it.
        """
        folder = self.out_dir / release.stream
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{release.sequence:06d}"
        csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
        digest = signed_digest(release)
        result = Written()
        # the .json first: once it is in place, this sequence is held
        if _atomic_create(json_path, _json_bytes(release_to_json(release))):
            _atomic_write(csv_path, release_csv(release).encode("utf-8"))
            result.paths += [csv_path, json_path]
        else:
            self._check_held(release, json_path, digest)
            result.duplicate = True
            if not csv_path.exists():  # an earlier write stopped between the two files
                _atomic_write(csv_path, release_csv(release).encode("utf-8"))
                result.paths.append(csv_path)
        latest = folder / "latest.json"
        latest_sequence = self._latest_sequence(latest)
        if latest_sequence < release.sequence or (
            latest_sequence == release.sequence and not result.duplicate
        ):
            readme = folder / "README.txt"
            _atomic_write(readme, readme_text(release).encode("utf-8"))
            result.paths.append(readme)
            pointer = {
                "stream": release.stream,
                "sequence": release.sequence,
                "release_id": release.release_id,
                "issued_at_ms": release.issued_at_ms,
                "csv": csv_path.name,
                "json": json_path.name,
            }
            _atomic_write(latest, _json_bytes(pointer))
            result.paths.append(latest)
        return result

    @staticmethod
    def _check_held(release: Release, json_path: Path, digest: str) -> None:
        try:
            held = release_from_json(json.loads(json_path.read_text(encoding="utf-8")))
        except Exception:  # missing, not JSON, not a release: anything but a comparable one
            raise ReleaseConflict(
                ConsumerReason.HELD_UNREADABLE,
                stream=release.stream,
                sequence=release.sequence,
                held=json_path,
                new_digest=digest,
            ) from None
        held_digest = signed_digest(held)
        if held_digest != digest:
            raise ReleaseConflict(
                ConsumerReason.SEQUENCE_CONFLICT,
                stream=release.stream,
                sequence=release.sequence,
                held=json_path,
                held_digest=held_digest,
                new_digest=digest,
            )

    @staticmethod
    def _latest_sequence(latest: Path) -> int:
        try:
            return int(json.loads(latest.read_text(encoding="utf-8"))["sequence"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            return 0  # an unreadable pointer is replaced by a good one
