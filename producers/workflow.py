"""The agency's publish workflow: an export becomes messages, messages go to one log.

```python
setup = SourceSetup(source_key, trust_key, load_or_create_keyer(secret_file), outbox_file)
export = read_export("police", Path("records.csv"), Path("mapping.yaml"))
report = publish_export(setup, "sqlite:///log.db", export)          # or kafka://host:port
export.rows_read, export.defaulted                                   # complete once published
publish_messages(setup, url, [retraction("CR/2024/00017")])          # notices
```
Nothing here knows where a deployment keeps its files: the caller (the ``tiptrust`` CLI, a
scheduler, a test) hands over the keys, the message keyer and the outbox path.

**Memory stays flat for any export size.** :func:`read_export` reads the export once to check it
(a row that cannot be read fails here, before anything is sent) and to find the last row of each
case — a case's rows may be anywhere in the file — keeping per case only a 64-bit hash of its key
and that row, in a temporary SQLite file, then one bit per row. :func:`publish_export` reads it
again and maps, validates, seals and sends it in batches; a case is built at its last row and
forgotten once sent. Only :attr:`Export.messages` (every message at once, for small exports and
tests) holds the whole export.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from producers.mapping import MappedBatch, MappedRecord, MappedStream, Mapping
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Progress, Publisher, PublishReport
from producers.readers import InputOptions, ReaderError, Table, open_table
from schemas.errors import Problem
from schemas.keys import SigningKey, TrustPublicKey
from transport import open_log

__all__ = [
    "Export",
    "ExportConsumedError",
    "SourceSetup",
    "case_messages",
    "consent_withdrawal",
    "destination_of",
    "disposal_request",
    "publish_export",
    "publish_messages",
    "read_export",
    "retraction",
]


def destination_of(log_url: str) -> str:
    """A stable name of the log ``log_url`` opens, for the outbox's per-destination sent state.

    ``sqlite:///relative.db`` becomes ``sqlite:////absolute/path.db`` (the same file from any
    working folder is one destination; query options are dropped); ``kafka://B,A`` becomes
    ``kafka://a,b`` (bootstrap servers lower-cased and sorted — another list of servers of the
    same cluster is another destination: it is then sent there again, which the trust dedupes).
    Anything else is kept as given.
    """
    scheme, sep, rest = log_url.partition("://")
    kind = scheme.lower()
    if sep and kind in ("sqlite", "sqlite+pysqlite"):
        database = rest.split("?", 1)[0]
        database = database[1:] if database.startswith("/") else database
        if database:
            return f"sqlite:///{Path(database).expanduser().resolve()}"
    if sep and kind == "kafka":
        servers = rest.split("/", 1)[0].split("?", 1)[0]
        hosts = sorted({h.strip().lower() for h in servers.split(",") if h.strip()})
        if hosts:
            return "kafka://" + ",".join(hosts)
    return log_url


@dataclass(frozen=True)
class SourceSetup:
    """What one source needs to publish: its signing key, the trust key it seals to, its message
    keyer and its outbox file (one outbox serves every log the source publishes to)."""

    source_key: SigningKey
    trust_key: TrustPublicKey
    keyer: MessageKeyer
    outbox_path: Path

    @property
    def source_id(self) -> str:
        return self.source_key.owner


class ExportConsumedError(Exception):
    """An :class:`Export`'s messages were already read as a stream: open the export again."""

    code = "export_consumed"


class Export:
    """An agency export, checked against its mapping: its messages are read as they are sent.

    ``rows_read`` data rows (known when opened) form ``cases`` cases (valid or not). ``problems``
    (the rows withheld) and ``defaulted`` (per target path, values no code matched that took the
    field's ``default:`` code: published, but worth a look) are complete once the messages have
    been read — by :func:`publish_export`, :meth:`stream` or :attr:`messages`.
    """

    def __init__(self, source_id: str, rows_read: int, cases: int, mapped: MappedStream) -> None:
        self.source_id = source_id
        self.rows_read = rows_read
        self.cases = cases
        self._mapped = mapped
        self._taken = False
        self._messages: list[Outgoing] | None = None

    @property
    def problems(self) -> list[Problem]:
        return self._mapped.problems

    @property
    def defaulted(self) -> dict[str, int]:
        return self._mapped.defaulted

    def stream(self) -> Iterator[Outgoing]:
        """The messages, one valid case at a time (once; :attr:`messages` may be read again)."""
        if self._messages is not None:
            return iter(self._messages)
        if self._taken:
            raise ExportConsumedError("the export's messages were already read")
        self._taken = True
        return (case_message(m) for m in self._mapped)

    @property
    def messages(self) -> list[Outgoing]:
        """Every message at once (the whole export in memory: for small exports and tests)."""
        if self._messages is None:
            self._messages = list(self.stream())
        return self._messages


def case_message(m: MappedRecord) -> Outgoing:
    """The ``RecordUpsert`` of a mapped case, partitioned (and known in the outbox) by case id."""
    return Outgoing("RecordUpsert", f"case:{m.case_id}", m.record, m.rows, partition_key=m.case_id)


def case_messages(batch: MappedBatch) -> list[Outgoing]:
    """One ``RecordUpsert`` per mapped case, partitioned (and known in the outbox) by case id."""
    return [case_message(m) for m in batch.records]


class _LastRows:
    """Which data rows are the last of their case: one bit per row."""

    def __init__(self, bits: bytearray) -> None:
        self._bits = bits

    def __call__(self, row: int) -> bool:
        byte = row >> 3
        return byte < len(self._bits) and bool(self._bits[byte] >> (row & 7) & 1)


def _index_cases(mapping: Mapping, table: Table) -> tuple[int, int, _LastRows]:
    """Read every row once: how many there are, in how many cases, and each case's last row.

    Per case, a 64-bit hash of its key and its last row go to a temporary SQLite file (on disk,
    deleted when closed), never a cell value; a shared hash only keeps a case open until the
    end. Raises what reading the rows raises (:class:`~producers.readers.ReaderError`).
    """
    db = sqlite3.connect("")  # a private temporary database, spilled to disk beyond its cache
    try:
        db.execute("PRAGMA cache_size = -4096")  # KiB
        db.execute("CREATE TABLE rows (case_hash INTEGER NOT NULL, row INTEGER NOT NULL)")
        rows_read, last_row, chunk = 0, 0, []
        for row in table.rows:
            rows_read += 1
            last_row = row.number
            key = mapping.case_of(row.values)
            if key is not None:
                digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
                chunk.append((int.from_bytes(digest, "big", signed=True), row.number))
                if len(chunk) >= 10_000:
                    db.executemany("INSERT INTO rows VALUES (?, ?)", chunk)
                    chunk = []
        db.executemany("INSERT INTO rows VALUES (?, ?)", chunk)
        bits = bytearray((last_row >> 3) + 1)
        cases = 0
        for (n,) in db.execute("SELECT MAX(row) FROM rows GROUP BY case_hash"):
            bits[n >> 3] |= 1 << (n & 7)
            cases += 1
    finally:
        db.close()
    return rows_read, cases, _LastRows(bits)


def read_export(
    source_id: str,
    input_path: Path,
    mapping_path: Path,
    options: InputOptions | None = None,
) -> Export:
    """Read and map one export with its mapping file (which must be ``source_id``'s, or name no
    source). ``options`` override the mapping's ``encoding``, ``delimiter``, ``sheet`` and
    ``format``. The mapping is checked against the export's header before any row is read;
    then every row is read once (see the module docstring) — nothing is mapped yet.

    Raises:
        MappingError: the mapping file is wrong, belongs to another source
            (``SourceMismatchError``) or reads columns the export lacks (``MissingColumnError``).
        ReaderError: the export cannot be read (``DecodeError``: not text in its encoding).
    """
    mapping = Mapping.load(mapping_path).for_source(source_id)
    opts = (options or InputOptions()).over(mapping.input_options)
    table = open_table(input_path, opts)
    bound = mapping.bind(
        table.header, list_separator=table.list_separator, short_names=table.format == "odk"
    )
    rows_read, cases, last_rows = _index_cases(bound, table)
    again = open_table(input_path, opts)
    if again.header != table.header:
        raise ReaderError("the file changed while it was read")
    return Export(source_id, rows_read, cases, bound.map_stream(again.rows, last_rows))


def publish_messages(
    setup: SourceSetup,
    log_url: str,
    messages: Iterable[Outgoing],
    *,
    resend: bool = False,
    on_progress: Progress | None = None,
) -> PublishReport:
    """Publish ``messages`` to the log at ``log_url`` (see :meth:`Publisher.publish`).

    Raises:
        TransportError: the log could not be opened or did not acknowledge; what was sealed
            waits in the outbox for the next run to this log.
    """
    with open_log(log_url) as log, Outbox(setup.outbox_path) as outbox:
        publisher = Publisher(
            log=log,
            source_key=setup.source_key,
            trust_key=setup.trust_key,
            outbox=outbox,
            keyer=setup.keyer,
            destination=destination_of(log_url),
        )
        return publisher.publish(messages, on_progress, resend=resend)


def publish_export(
    setup: SourceSetup,
    log_url: str,
    export: Export,
    *,
    resend: bool = False,
    on_progress: Progress | None = None,
) -> PublishReport:
    """Publish an export's valid cases as they are read (in the publisher's batches); the report
    also holds the rows the mapping rejected.

    Raises:
        ExportConsumedError: the export's messages were already read as a stream.
    """
    if export.source_id != setup.source_id:
        raise ValueError("the export and the signing key belong to different sources")
    report = publish_messages(
        setup, log_url, export.stream(), resend=resend, on_progress=on_progress
    )
    report.merge_problems(export.problems)
    return report


# --- notices: what a source tells the trust about a case it sent --------------------------------


def retraction(case_id: str) -> Outgoing:
    """Withdraw a case record the source sent (the trust drops it from what it holds)."""
    return Outgoing(
        "RecordRetraction",
        f"case:{case_id}",
        {"case_id": case_id, "reason": "Unknown"},
        partition_key=case_id,
    )


def consent_withdrawal(case_id: str, victim_id: str) -> Outgoing:
    """A person of a case withdrew consent to every use."""
    return Outgoing(
        "ConsentWithdrawal",
        f"case:{case_id}:{victim_id}",
        {"case_id": case_id, "victim_id": victim_id, "withdrawn_scopes": ["All"]},
        partition_key=case_id,
    )


def disposal_request(case_id: str, victim_id: str | None) -> Outgoing:
    """A person (or, without ``victim_id``, everyone) of a case asked for erasure."""
    return Outgoing(
        "DisposalRequest",
        f"case:{case_id}:{victim_id or ''}",
        {"case_id": case_id, "victim_id": victim_id, "basis": "Unknown"},
        partition_key=case_id,
    )
