"""Backup and restore: a consistent copy of the whole store, on SQLite or PostgreSQL.

**What a backup is.** A SQLite file holding every table of the store (events, projections,
followers' state, vault, audit log, principals) as they were at one instant, at the store's
schema revision, plus a manifest (``backup_manifest``): the format, the revision, when and from
which kind of database it was made, the last event seq, and each table's row count and digest
(:mod:`trust.store.digest`, taken on the file itself). A backup of either database restores
into either.

**Consistent.** The rows are read in one read-only transaction (REPEATABLE READ on PostgreSQL;
a WAL snapshot on SQLite), so the copy is the store at one instant even while the trust runs.
The file is written beside its destination and renamed into place only when complete.

**What it holds, and what it does not.** The victims' identifiers are in it only sealed, under
person keys wrapped by the vault's key-encryption key (KEK) — and the KEK is *not* in the
backup: it lives with the :class:`~schemas.keys.KeyProvider`, apart from the store. A backup is
therefore useless without the KEK the trust held when it was made, and **an erasure survives
every backup**: a disposal shreds the person's key and triggers a KEK rotation, which destroys
the old KEK; a backup from before that opens under no key the trust still holds. The same
rotation makes such a backup unrestorable as a whole (every person key in it is wrapped under
the destroyed KEK): take a backup after each rotation (``tiptrust keys rotate-kek``, or the one
an erasure triggers) to keep one that restores.

**Restore** writes into an *empty* store only (never over a trust's data): the schema at the
backup's revision, every row, then the migrations up to the code's revision. It checks first
that the file is a complete, unaltered backup (each table's digest against the manifest) and
afterwards that the restored row counts match; a failure leaves the target empty again.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)

from trust.refusal import Refusal
from trust.store.db import HEAD, checkpoint, make_engine, migrate, writer
from trust.store.digest import TableDigest, table_digest
from trust.store.tables import metadata, stored_events

__all__ = [
    "BACKUP_FORMAT",
    "BackupError",
    "BackupManifest",
    "BackupReason",
    "backup",
    "read_manifest",
    "restore",
]

BACKUP_FORMAT = 1
_CHUNK = 2000

Progress = Callable[[str, int], None]
"""Called with a table's name and the rows copied so far (for a progress display)."""

_manifest_md = MetaData()
_manifest = Table(
    "backup_manifest",
    _manifest_md,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


class BackupReason(StrEnum):
    """Why a backup or restore was refused (the ``code`` of :class:`BackupError`)."""

    EXISTS = "exists"
    NOT_A_BACKUP = "not_a_backup"
    NEWER_FORMAT = "newer_format"
    NEWER_REVISION = "newer_revision"
    ALTERED = "altered"
    TARGET_NOT_EMPTY = "target_not_empty"
    INCOMPLETE = "incomplete"


class BackupError(Refusal):
    """A backup that cannot be made or restored; ``code`` is a :class:`BackupReason` value."""


@dataclass(frozen=True)
class BackupManifest:
    """What a backup holds: its format, the store's schema revision, when and from which
    database it was made, the last event seq, and each table's row count and digest."""

    format: int
    revision: str
    created_at: str
    source_dialect: str
    last_seq: int
    tables: dict[str, TableDigest]

    @property
    def events(self) -> int:
        return self.tables[stored_events.name].rows if stored_events.name in self.tables else 0

    def to_json(self) -> dict[str, object]:
        return {
            "format": self.format,
            "revision": self.revision,
            "created_at": self.created_at,
            "source_dialect": self.source_dialect,
            "last_seq": self.last_seq,
            "tables": {n: {"rows": d.rows, "sha256": d.sha256} for n, d in self.tables.items()},
        }


def _read_only(path: Path) -> Engine:
    return make_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")


def _tables() -> list[Table]:
    return list(metadata.sorted_tables)  # parents before children (foreign keys)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction that sees the store at one instant."""
    if engine.dialect.name == "postgresql":
        conn = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    else:
        conn = engine.connect()
    try:
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn
    finally:
        conn.close()


def _revision(conn: Connection) -> str:
    return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _copy_table(
    source: Connection, target: Connection, table: Table, progress: Progress | None
) -> int:
    copied = 0
    stmt = select(table).execution_options(stream_results=True, yield_per=_CHUNK)
    for part in source.execute(stmt).mappings().partitions(_CHUNK):
        target.execute(table.insert(), [dict(r) for r in part])
        copied += len(part)
        if progress is not None:
            progress(table.name, copied)
    return copied


def backup(engine: Engine, out: Path, *, progress: Progress | None = None) -> BackupManifest:
    """Write a consistent copy of the store behind ``engine`` to the new file ``out``.

    Raises:
        BackupError: ``exists`` (``out`` is there already: a backup never overwrites).
    """
    if out.exists():
        raise BackupError(BackupReason.EXISTS, f"{out} exists: a backup never overwrites a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    part.unlink(missing_ok=True)
    target = make_engine(f"sqlite:///{part}")
    try:
        with _snapshot(engine) as source:
            revision = _revision(source)
            migrate(target, revision)  # the backup's schema is the store's, at its revision
            last_seq = source.execute(select(func.coalesce(func.max(stored_events.c.seq), 0)))
            last = int(last_seq.scalar_one())
            with writer(target).begin() as conn:
                for table in _present(source):
                    _copy_table(source, conn, table, progress)
        digests = {str(t.name): table_digest(target, t) for t in _present_in(target)}
        manifest = BackupManifest(
            BACKUP_FORMAT,
            revision,
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            engine.dialect.name,
            last,
            digests,
        )
        _manifest_md.create_all(target)
        with writer(target).begin() as conn:
            conn.execute(
                _manifest.insert(),
                [{"key": "manifest", "value": orjson.dumps(manifest.to_json()).decode()}],
            )
        checkpoint(target)  # one self-contained file: nothing left in a WAL beside it
    except BaseException:
        target.dispose()
        for leftover in (part, Path(f"{part}-wal"), Path(f"{part}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    target.dispose()
    os.replace(part, out)
    return manifest


def _present(conn: Connection) -> list[Table]:
    """The store's tables that exist at the connection's revision (an older store lacks the
    newer ones), each with the columns it has there: a backup made before an upgrade lacks the
    columns later migrations added, and is copied, digested and counted as it is (the columns in
    the code's order, with the code's types, so that every dialect reads and writes them alike;
    one the code no longer knows keeps the type the database gives)."""
    inspector = inspect(conn)
    names = set(inspector.get_table_names())
    out = []
    for table in _tables():
        if table.name not in names:
            continue
        if {c["name"] for c in inspector.get_columns(table.name)} == set(table.c.keys()):
            out.append(table)
            continue
        there = Table(table.name, MetaData(), autoload_with=conn)  # as the database has it
        known = [c for c in table.columns if c.name in there.c]
        unknown = [c for c in there.columns if c.name not in table.c]
        out.append(
            Table(
                table.name,
                MetaData(),
                *(
                    Column(c.name, c.type, primary_key=c.primary_key, autoincrement=c.autoincrement)
                    for c in known
                ),
                *(Column(c.name, c.type) for c in unknown),
            )
        )
    return out


def _present_in(engine: Engine) -> list[Table]:
    with engine.connect() as conn:
        return _present(conn)


def read_manifest(path: Path) -> BackupManifest:
    """The manifest of the backup at ``path`` (nothing is checked beyond its being one).

    Raises:
        BackupError: ``not_a_backup``; ``newer_format``.
    """
    if not path.is_file():
        raise BackupError(BackupReason.NOT_A_BACKUP, f"{path} is not a file")
    engine = _read_only(path)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(_manifest.c.value).where(_manifest.c.key == "manifest")
            ).first()
    except Exception as exc:
        raise BackupError(
            BackupReason.NOT_A_BACKUP, f"{path} is not a tiptrust backup ({type(exc).__name__})"
        ) from None
    finally:
        engine.dispose()
    if row is None:
        raise BackupError(BackupReason.NOT_A_BACKUP, f"{path} has no backup manifest")
    raw = orjson.loads(row[0])
    if int(raw["format"]) > BACKUP_FORMAT:
        raise BackupError(
            BackupReason.NEWER_FORMAT,
            f"{path} is backup format {raw['format']}: this tiptrust reads up to {BACKUP_FORMAT}",
        )
    return BackupManifest(
        int(raw["format"]),
        str(raw["revision"]),
        str(raw["created_at"]),
        str(raw["source_dialect"]),
        int(raw["last_seq"]),
        {n: TableDigest(int(d["rows"]), str(d["sha256"])) for n, d in raw["tables"].items()},
    )


def verify_backup(path: Path) -> BackupManifest:
    """The manifest, after checking every table of the file against it.

    Raises:
        BackupError: ``not_a_backup``, ``newer_format``, ``altered`` (a table's rows differ
            from what the manifest recorded: the file was changed or damaged).
    """
    manifest = read_manifest(path)
    engine = _read_only(path)
    try:
        present = {t.name: t for t in _present_in(engine)}
        if set(present) != set(manifest.tables):
            raise BackupError(
                BackupReason.ALTERED, f"{path}: its tables are not those its manifest lists"
            )
        for name, recorded in sorted(manifest.tables.items()):
            if table_digest(engine, present[name]) != recorded:
                raise BackupError(
                    BackupReason.ALTERED,
                    f"{path}: table {name} is not as it was backed up (changed or damaged)",
                )
    finally:
        engine.dispose()
    return manifest


def _is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        if stored_events.name not in set(inspect(conn).get_table_names()):
            return True
        for table in _present(conn):
            if conn.execute(select(func.count()).select_from(table)).scalar_one():
                return False
    return True


def restore(
    path: Path,
    url: str,
    *,
    progress: Progress | None = None,
    vet: Callable[[Engine], None] | None = None,
) -> BackupManifest:
    """Restore the backup at ``path`` into the empty store at ``url``, then migrate it to the
    code's revision. ``vet`` (if given) judges the restored store before it is kept — e.g. that
    the restoring principal is a custodian *of the backed-up trust* and that the trust's KEK
    opens its vault; whatever it raises empties the target again and propagates.

    Raises:
        BackupError: the file is not an unaltered backup (:func:`verify_backup`),
            ``newer_revision`` (made by a newer tiptrust), ``target_not_empty``, or
            ``incomplete`` (the restored row counts differ; the target is emptied again).
    """
    manifest = verify_backup(path)
    known = _revisions_up_to_head()
    if manifest.revision not in known:
        raise BackupError(
            BackupReason.NEWER_REVISION,
            f"{path} was made at schema revision {manifest.revision}, newer than this tiptrust's "
            f"{HEAD}: restore it with that version or later",
        )
    target = make_engine(url)
    try:
        if not _is_empty(target):
            raise BackupError(
                BackupReason.TARGET_NOT_EMPTY,
                "the target store holds data: restore into an empty store (move the old one "
                "aside, or give another --store)",
            )
        source = _read_only(path)
        try:
            _drop_all(target)
            migrate(target, manifest.revision)
            with source.connect() as src, writer(target).begin() as dst:
                for table in _present(src):
                    _copy_table(src, dst, table, progress)
                _reset_sequences(dst)
        finally:
            source.dispose()
        with target.connect() as conn:
            counts = {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in _present(conn)
            }
        expected = {n: d.rows for n, d in manifest.tables.items()}
        if counts != expected:
            _drop_all(target)
            raise BackupError(
                BackupReason.INCOMPLETE, "the restored tables do not hold the backup's rows"
            )
        migrate(target)
        if vet is not None:
            try:
                vet(target)
            except BaseException:
                _drop_all(target)
                raise
    finally:
        target.dispose()
    return manifest


def _revisions_up_to_head() -> set[str]:
    from alembic.script import ScriptDirectory

    from trust.store.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def _drop_all(engine: Engine) -> None:
    """Remove the (empty) schema, so the backup's revision can be laid down."""
    with writer(engine).begin() as conn:
        names = set(inspect(conn).get_table_names())
        for table in reversed(_tables()):
            if table.name in names:
                table.drop(conn)
        if "alembic_version" in names:
            conn.exec_driver_sql("DROP TABLE alembic_version")


def _reset_sequences(conn: Connection) -> None:
    """On PostgreSQL, move each serial column's sequence past the rows copied with their ids."""
    if conn.dialect.name != "postgresql":
        return
    for table in _present(conn):
        for column in table.primary_key.columns:
            if column.autoincrement is not True and not (
                column.autoincrement == "auto" and len(table.primary_key.columns) == 1
            ):
                continue
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if seq is None:
                continue
            conn.execute(
                text(
                    f"SELECT setval(:s, COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                ),
                {"s": seq},
            )
