"""Write verified releases to files: one CSV and one JSON per release, plus ``latest.json``.

Layout: ``<out>/<stream>/<sequence:06d>.csv`` (dimensions as columns, then ``count`` and
``suppressed``; a suppressed count is empty), ``<out>/<stream>/<sequence:06d>.json`` (the whole
release, signature as hex, enough to verify it again with :func:`release_from_json`) and
``<out>/<stream>/latest.json`` naming the newest sequence written. Every file is written to a
temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from pathlib import Path
from typing import Any, Protocol

from schemas.release import RELEASE_SCHEMA, Release


class ReleaseSink(Protocol):
    """Where a subscriber puts verified releases; returns the paths it wrote."""

    def write(self, release: Release) -> list[Path]: ...


def release_to_json(release: Release) -> dict[str, Any]:
    """The release as JSON-ready data, mirroring the wire fields (signature as hex)."""
    d = release.to_avro()
    d["issued_at_ms"] = d.pop("issued_at")
    d["issued_at"] = dt.datetime.fromtimestamp(release.issued_at_ms / 1000, tz=dt.UTC).isoformat(
        timespec="milliseconds"
    )
    d["signature"] = release.signature.hex()
    return d


def release_from_json(d: dict[str, Any]) -> Release:
    """A release read back from :func:`release_to_json` output (verify it before use)."""
    wire = dict(d)
    wire["issued_at"] = wire.pop("issued_at_ms")
    wire["signature"] = bytes.fromhex(wire["signature"])
    return Release.from_avro(RELEASE_SCHEMA.decode(RELEASE_SCHEMA.encode(wire)))


def release_csv(release: Release) -> str:
    """The release's cells as CSV text: dimensions, count (empty when suppressed), suppressed."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*release.dimensions, "count", "suppressed"])
    for cell in release.cells:
        count = "" if cell.suppressed or cell.count is None else str(cell.count)
        w.writerow([*cell.key, count, "true" if cell.suppressed else "false"])
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_bytes(d: Any) -> bytes:
    return (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class ReleaseWriter:
    """Writes each release as CSV + JSON under ``out_dir/<stream>/`` and updates ``latest.json``.

    Rewriting a release (a redelivery) replaces its files with identical ones; ``latest.json``
    only moves forward, to the highest sequence written.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    def write(self, release: Release) -> list[Path]:
        """Write ``release``; return the CSV and JSON paths (and ``latest.json`` if it moved)."""
        folder = self.out_dir / release.stream
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{release.sequence:06d}"
        csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
        _atomic_write(csv_path, release_csv(release).encode("utf-8"))
        _atomic_write(json_path, _json_bytes(release_to_json(release)))
        written = [csv_path, json_path]
        latest = folder / "latest.json"
        if self._latest_sequence(latest) <= release.sequence:
            pointer = {
                "stream": release.stream,
                "sequence": release.sequence,
                "release_id": release.release_id,
                "issued_at_ms": release.issued_at_ms,
                "csv": csv_path.name,
                "json": json_path.name,
            }
            _atomic_write(latest, _json_bytes(pointer))
            written.append(latest)
        return written

    @staticmethod
    def _latest_sequence(latest: Path) -> int:
        try:
            return int(json.loads(latest.read_text(encoding="utf-8"))["sequence"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            return 0  # an unreadable pointer is replaced by a good one
