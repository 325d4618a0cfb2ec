"""The agency's publish workflow: an export becomes messages, messages go to one log.

```python
setup = SourceSetup(source_key, trust_key, load_or_create_keyer(secret_file), outbox_file)
export = read_export("police", Path("records.csv"), Path("mapping.yaml"))
report = publish_export(setup, "sqlite:///log.db", export)          # or kafka://host:port
publish_messages(setup, url, [retraction("CR/2024/00017")])          # notices
```
Nothing here knows where a deployment keeps its files: the caller (the ``tiptrust`` CLI, a
scheduler, a test) hands over the keys, the message keyer and the outbox path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from producers.mapping import MappedBatch, Mapping
from producers.message_key import MessageKeyer
from producers.outbox import Outbox
from producers.publisher import Outgoing, Progress, Publisher, PublishReport
from producers.readers import InputOptions, open_table
from schemas.errors import Problem
from schemas.keys import SigningKey, TrustPublicKey
from transport import open_log

__all__ = [
    "Export",
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


@dataclass(frozen=True, slots=True)
class Export:
    """An agency export, mapped: the messages of its valid cases and the problems of the rest.

    ``defaulted`` counts, per target path, values that no code matched and that took the field's
    ``default:`` code (published, but worth a look).
    """

    source_id: str
    rows_read: int
    messages: list[Outgoing]
    problems: list[Problem]
    defaulted: dict[str, int] = field(default_factory=dict)


def case_messages(batch: MappedBatch) -> list[Outgoing]:
    """One ``RecordUpsert`` per mapped case, partitioned (and known in the outbox) by case id."""
    return [
        Outgoing("RecordUpsert", f"case:{m.case_id}", m.record, m.rows, partition_key=m.case_id)
        for m in batch.records
    ]


def read_export(
    source_id: str,
    input_path: Path,
    mapping_path: Path,
    options: InputOptions | None = None,
) -> Export:
    """Read and map one export with its mapping file (which must be ``source_id``'s, or name no
    source). ``options`` override the mapping's ``encoding``, ``delimiter``, ``sheet`` and
    ``format``. The mapping is checked against the export's header before any row is mapped.

    Raises:
        MappingError: the mapping file is wrong, belongs to another source
            (``SourceMismatchError``) or reads columns the export lacks (``MissingColumnError``).
        ReaderError: the export cannot be read (``DecodeError``: not text in its encoding).
    """
    mapping = Mapping.load(mapping_path).for_source(source_id)
    table = open_table(input_path, (options or InputOptions()).over(mapping.input_options))
    bound = mapping.bind(
        table.header, list_separator=table.list_separator, short_names=table.format == "odk"
    )
    rows = list(table.rows)
    batch = bound.map_rows(rows)
    return Export(source_id, len(rows), case_messages(batch), list(batch.problems), batch.defaulted)


def publish_messages(
    setup: SourceSetup,
    log_url: str,
    messages: Sequence[Outgoing],
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
    """Publish an export's valid cases; the report also holds the rows the mapping rejected."""
    if export.source_id != setup.source_id:
        raise ValueError("the export and the signing key belong to different sources")
    report = publish_messages(
        setup, log_url, export.messages, resend=resend, on_progress=on_progress
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
