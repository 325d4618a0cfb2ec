"""Unattended publishing: exports that land in a folder are published once and filed with a report.

```python
watcher = Watcher(setup, "sqlite:///log.db", Path("mapping.yaml"), Path("/srv/exports"))
outcomes = watcher.run_once()          # what is there now; or watcher.run(stop_event)
```
Each export goes through the same path as ``tiptrust publish`` (:func:`read_export` then
:func:`publish_export`: the mapping, validation, sealing and the outbox), then moves to
``DIR/done/`` (something of it published) or ``DIR/failed/`` (nothing of it published: the
mapping or the file is wrong, or every row was withheld), with ``<file>.report.json`` beside it.

**Which files are taken.** Regular files directly in ``DIR`` whose names are not hidden or
partial (``.*``, ``~*`` such as Excel's ``~$book.xlsx``, ``*.part``, ``*.partial``, ``*.tmp``,
``*.crdownload``, ``*.swp``, and the watcher's own ``*.report.json``). A file is taken once it
has stopped changing for the settle time: its size and modification time are the same at two
looks at least ``settle`` seconds apart, or, at first sight, its modification time is already
``settle`` seconds old (a file moved in whole with ``mv``, or written under a ``.part`` name
and renamed in, is complete when it appears). An exporter that can write under a partial name
and rename should: then nothing depends on clocks. A file still changing is left for a later look.

**Crash safety** (a kill at any point loses no file and resends nothing):

1. *Claim*: the file is renamed into ``DIR/.processing/`` (atomic in one file system). Before
   that it is untouched; after it, it is the watcher's until filed.
2. *Publish*: the outbox gives each record a stable event id by content and remembers what each
   log acknowledged, so publishing the same file again sends only what had not been sent.
3. *Report*: ``.processing/<file>.report.json`` is written atomically; it records the outcome
   and the name the file will have in ``done/`` or ``failed/``. Its presence means "published;
   only the moves remain".
4. *File*: the export, then its report, are renamed to that name.

At each look the watcher first finishes what ``.processing/`` holds: a file without a report
is published again (step 2 makes that send only what is missing), a report makes the remaining
moves happen. A kill can also fall between the log's acknowledgement and the outbox noting it;
then the envelopes wait in the outbox as unsent. Before its first send after a start (or after
a log failure) the watcher checks such waiting envelopes against the log — an envelope found
there byte for byte is marked sent instead of being sent again (:func:`reconcile_outbox`). That
reads the source's inbound topic, and only when envelopes wait.

A log that does not answer leaves the file in ``.processing/`` (its sealed envelopes wait in
the outbox) and the watcher tries again at its next look. One watcher per folder: a lock file
in ``.processing/`` refuses a second one (``WatchError`` code ``busy``).

Reports hold counts, row numbers, field paths, reason codes and column names — never a cell
value, so never a name, date of birth or document number.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

from producers.mapping import Mapping, MappingError
from producers.outbox import Outbox
from producers.readers import InputOptions, ReaderError
from producers.workflow import SourceSetup, destination_of, publish_export, read_export
from transport import open_log
from transport.errors import TransportError

__all__ = [
    "DONE",
    "FAILED",
    "PROCESSING",
    "REPORT_SUFFIX",
    "Cycle",
    "FileReport",
    "WatchError",
    "Watcher",
    "free_name",
    "is_candidate_name",
    "reconcile_outbox",
]

PROCESSING = ".processing"
DONE = "done"
FAILED = "failed"
REPORT_SUFFIX = ".report.json"
_LOCK = ".lock"
_IGNORED_PREFIXES = (".", "~")
_IGNORED_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".swp", REPORT_SUFFIX)

Status = Literal["published", "partly_published", "withheld", "failed"]


class WatchError(Exception):
    """The watcher cannot run on this folder. ``code``: ``no_folder``, ``busy`` (another watcher
    holds the folder's lock), ``bad_mapping`` (the mapping file itself is wrong)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def is_candidate_name(name: str) -> bool:
    """Whether a file of this name may be an export to take (not hidden, partial or a report)."""
    lowered = name.lower()
    return not (lowered.startswith(_IGNORED_PREFIXES) or lowered.endswith(_IGNORED_SUFFIXES))


@dataclass(frozen=True, slots=True)
class FileReport:
    """What became of one export, as written to ``<file>.report.json``.

    ``rows_published`` rows are on the log (sent now, or before a restart or by an earlier
    file of the same content); ``events_sent`` were sealed and sent by this attempt,
    ``events_already_sent`` skipped because the log had them. ``withheld_reasons`` counts
    problems by reason code; ``problems`` lists them (row, field path, reason, what was
    expected). ``error`` is set when the file could not be mapped or read: its ``code`` and a
    message that names columns and rows, never a cell.
    """

    file: str
    source_id: str
    status: Status
    moved_to: str
    rows_read: int = 0
    rows_published: int = 0
    rows_withheld: int = 0
    withheld_reasons: dict[str, int] = field(default_factory=dict)
    events_sent: int = 0
    events_already_sent: int = 0
    events_resent_from_outbox: int = 0
    defaulted: dict[str, int] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    recovered: bool = False
    finished_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileReport:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Cycle:
    """One look at the folder: the files filed, how many wait to settle, and whether the log
    failed (the file then waits in ``.processing/`` and the look ended early)."""

    filed: list[FileReport]
    unsettled: int
    delivery_failed: str | None = None


def reconcile_outbox(setup: SourceSetup, log_url: str) -> int:
    """Mark sent the envelopes the outbox holds as unsent but the log already has, byte for byte.

    Closes the one window the outbox leaves open: a kill after the log acknowledged a batch and
    before the outbox noted it. Matching on the envelope's bytes (not only its event id) keeps a
    ``--resend`` (the same event id, sealed afresh) pending. Returns how many were marked.

    Raises:
        TransportError: the log could not be read.
    """
    destination = destination_of(log_url)
    with Outbox(setup.outbox_path) as outbox:
        if outbox.counts(destination)["pending"] == 0:
            return 0
        waiting = outbox.pending(destination, limit=sys.maxsize)
        with open_log(log_url) as log:
            on_log: set[tuple[bytes, bytes]] = set()
            for topic in sorted({e.topic for e in waiting}):
                if topic not in log.list_topics(topic):
                    continue
                for r in log.read_all(topic):
                    for name, value in r.headers:
                        if name == "event_id":
                            on_log.add((value, hashlib.sha256(r.value).digest()))
        found = [
            e.event_id
            for e in waiting
            if (e.event_id.bytes, hashlib.sha256(e.envelope).digest()) in on_log
        ]
        if found:
            outbox.mark_sent(destination, found)
        return len(found)


def free_name(folder: Path, name: str) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext`` … when a file of that name (or its report)
    was filed in ``folder`` before: a nightly export that always has the same name."""

    def taken(n: str) -> bool:
        return (folder / n).exists() or (folder / (n + REPORT_SUFFIX)).exists()

    if not taken(name):
        return name
    stem, suffix = Path(name).stem, Path(name).suffix
    return next(c for i in itertools.count(2) if not taken(c := f"{stem}-{i}{suffix}"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sync_dir(path: Path) -> None:
    """Make renames in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


class Watcher:
    """Publishes the exports that land in ``folder`` for one source, one at a time.

    ``settle`` seconds without change make a file complete (see the module docstring);
    ``options`` override the mapping's input options as ``tiptrust publish``'s flags do. The
    mapping is read again for every file, so a corrected mapping applies without a restart.
    """

    def __init__(
        self,
        setup: SourceSetup,
        log_url: str,
        mapping_path: Path,
        folder: Path,
        *,
        options: InputOptions | None = None,
        settle: float = 2.0,
    ) -> None:
        if not folder.is_dir():
            raise WatchError(f"{folder} is not a folder", "no_folder")
        try:  # a mapping that is wrong in itself would fail every file: refuse to start
            Mapping.load(mapping_path).for_source(setup.source_id)
        except MappingError as exc:
            raise WatchError(str(exc), "bad_mapping") from None
        self.setup = setup
        self.log_url = log_url
        self.mapping_path = mapping_path
        self.folder = folder
        self.options = options
        self.settle = settle
        self.processing = folder / PROCESSING
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}
        self._lock: IO[bytes] | None = None
        self._reconciled = False

    # -- the folder's lock -------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.lock()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unlock()

    def lock(self) -> None:
        """Hold the folder for this watcher (released by :meth:`unlock` or the process's end)."""
        for d in (self.processing, self.folder / DONE, self.folder / FAILED):
            d.mkdir(exist_ok=True)
        handle = (self.processing / _LOCK).open("ab")
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise WatchError(f"another watcher holds {self.folder}", "busy") from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    # -- looking -----------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        interval: float = 10.0,
        on_cycle: Callable[[Cycle], None] | None = None,
    ) -> None:
        """Look every ``interval`` seconds until ``stop`` is set (a file being published when it
        is set is finished and filed first)."""
        while not stop.is_set():
            cycle = self.run_once(stop)
            if on_cycle is not None:
                on_cycle(cycle)
            stop.wait(interval)

    def run_once(self, stop: threading.Event | None = None) -> Cycle:
        """Finish what a crash left in ``.processing/``, then take every settled file, oldest
        first. A log that fails ends the look: the file waits in ``.processing/``."""
        if self._lock is None:
            self.lock()
        filed: list[FileReport] = []
        try:
            for name in self._in_progress():
                if stop is not None and stop.is_set():
                    return Cycle(filed, 0)
                filed.append(self._finish(name, recovered=True))
            ready, unsettled = self._settled()
            for path in ready:
                if stop is not None and stop.is_set():
                    break
                if self._claim(path):
                    filed.append(self._finish(path.name, recovered=False))
        except TransportError as exc:
            self._reconciled = False  # a failed flush may have left a batch half stored
            return Cycle(filed, 0, delivery_failed=exc.code)
        return Cycle(filed, unsettled)

    def _in_progress(self) -> list[str]:
        """Names claimed and not yet filed: exports, and reports whose export already moved."""
        names: set[str] = set()
        for p in self.processing.iterdir():
            if p.name.startswith(".") or p.name.endswith(".tmp"):
                continue
            names.add(p.name.removesuffix(REPORT_SUFFIX))
        return sorted(names)

    def _settled(self) -> tuple[list[Path], int]:
        now_mono, now_wall = time.monotonic(), time.time()
        seen: dict[str, tuple[tuple[int, int], float]] = {}
        ready: list[tuple[int, str, Path]] = []
        for p in self.folder.iterdir():
            if not is_candidate_name(p.name):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if not p.is_file():
                continue
            signature = (st.st_size, st.st_mtime_ns)
            before = self._seen.get(p.name)
            first = before is None or before[0] != signature
            since = now_mono if first or before is None else before[1]
            seen[p.name] = (signature, since)
            unchanged_for = now_mono - since
            old_enough = now_wall - st.st_mtime >= self.settle
            if unchanged_for >= self.settle or old_enough:
                ready.append((st.st_mtime_ns, p.name, p))
        self._seen = seen
        ready.sort()
        return [p for _, _, p in ready], len(seen) - len(ready)

    def _claim(self, path: Path) -> bool:
        """Rename ``path`` into ``.processing/``; False if that name is still being filed."""
        target = self.processing / path.name
        if target.exists() or target.with_name(path.name + REPORT_SUFFIX).exists():
            return False
        try:
            os.rename(path, target)
        except FileNotFoundError:  # taken away between the look and now
            return False
        _sync_dir(self.processing)
        _sync_dir(self.folder)
        self._seen.pop(path.name, None)
        return True

    # -- one file ----------------------------------------------------------------------------

    def _finish(self, name: str, *, recovered: bool) -> FileReport:
        claimed = self.processing / name
        report_path = self.processing / (name + REPORT_SUFFIX)
        if report_path.exists():
            report = FileReport.from_json(json.loads(report_path.read_text(encoding="utf-8")))
        else:
            report = self._publish(claimed, recovered)
            _write_atomically(report_path, json.dumps(report.to_json(), indent=2) + "\n")
        final = self.folder / report.moved_to
        if claimed.exists():
            os.replace(claimed, final)
        os.replace(report_path, final.with_name(final.name + REPORT_SUFFIX))
        _sync_dir(final.parent)
        _sync_dir(self.processing)
        return report

    def _publish(self, claimed: Path, recovered: bool) -> FileReport:
        source = self.setup.source_id
        try:
            export = read_export(source, claimed, self.mapping_path, self.options)
        except (MappingError, ReaderError) as exc:
            error = {"code": exc.code.value, "message": str(exc)}
            return self._report(claimed.name, "failed", error=error, recovered=recovered)
        except Exception as exc:  # an unreadable file must not stop the watcher
            # the exception's text may quote the file's content: keep only its kind
            error = {"code": "unreadable", "message": type(exc).__name__}
            return self._report(claimed.name, "failed", error=error, recovered=recovered)
        if not self._reconciled:  # once per start, before the first send (see the docstring)
            reconcile_outbox(self.setup, self.log_url)
            self._reconciled = True
        result = publish_export(self.setup, self.log_url, export)
        rejected = result.rejected_rows
        # every row read is in a published case or has a problem (its own or a sibling's)
        published_rows = export.rows_read - len(rejected)
        problems = sorted(result.problems, key=lambda p: (p.row or 0, p.path))
        status: Status
        if not rejected:
            status = "published"
        elif published_rows:
            status = "partly_published"
        else:
            status = "withheld"
        return self._report(
            claimed.name,
            status,
            recovered=recovered,
            rows_read=export.rows_read,
            rows_published=published_rows,
            rows_withheld=len(rejected),
            withheld_reasons=dict(Counter(p.code.value for p in problems)),
            events_sent=result.published,
            events_already_sent=result.unchanged,
            events_resent_from_outbox=result.resent,
            defaulted=dict(export.defaulted),
            problems=[
                {"row": p.row, "field": p.path, "reason": p.code.value, "expected": p.expected}
                for p in problems
            ],
        )

    def _report(self, name: str, status: Status, **counts: Any) -> FileReport:
        folder = self.folder / (DONE if status in ("published", "partly_published") else FAILED)
        moved_to = f"{folder.name}/{free_name(folder, name)}"
        return FileReport(
            file=name,
            source_id=self.setup.source_id,
            status=status,
            moved_to=moved_to,
            finished_at=_now(),
            **counts,
        )
