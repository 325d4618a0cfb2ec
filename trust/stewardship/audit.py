"""The audit log: append-only, hash-chained and Merkle-committed (RFC 6962), without personal data.

A follower of the store (:class:`AuditLog`): for every stored event — ingest decisions, linkage
decisions, access to identifiers, releases and subscriptions, and any kind added later — it
appends one **entry** in the transaction that records its position, so each event is audited
exactly once, in store order. After each batch it writes a **checkpoint** (tree size, Merkle
root, chain head), signed with the trust's release key.

An entry (:mod:`trust.stewardship.audit_entry`) is canonical JSON (sorted keys, no spaces,
UTF-8) holding ids, codes, counts and digests only: the stored event's seq, id, kind and SHA-256; the source, consumer, purpose and
operator names; reason and decision codes; person ids (random); and victim records as opaque
keyed digests (their vault key ids: :meth:`trust.store.vault.Vault.person_key_id`). Never a
name, date of birth, document number, free text or field of a case record — so erasing a
person changes nothing here and the chain keeps verifying.

- ``chain[i] = SHA-256(chain[i-1] ‖ entry[i])`` with ``chain[-1]`` 32 zero bytes;
- leaf ``i`` is ``entry[i]``'s bytes: leaf hash SHA-256(0x00 ‖ entry), the tree as RFC 6962;
- a checkpoint signs ``"tiptrust/audit-checkpoint/v1\\x00" ‖ canonical JSON`` of
  ``{chain, issued_at_ms, key_id, log, root, tree_size}`` with Ed25519.

:func:`verify` recomputes the chain and every checkpoint's root from the entries and checks the
signatures; :func:`inclusion_proof` and :func:`consistency_proof` hand out RFC 6962 proofs
against signed checkpoints, which ``scripts/verify_audit_proof.py`` checks with nothing of the
trust's code. The method note ``audit.md`` beside this module says what each entry holds.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from sqlalchemy import Connection, Engine, Table, func, select

from schemas.keys import SigningKey, VerifyKey
from trust.follow import Batch
from trust.stewardship.audit_entry import (
    CHAIN_START,
    RecordRef,
    canonical,
    chain_next,
    make_entry,
    stored_event_digest,
)
from trust.stewardship.audit_proofs import (
    EMPTY_ROOT,
    Frontier,
    consistency_path,
    inclusion_path,
    leaf_hash,
    tree_root,
)
from trust.store.db import bulk_insert
from trust.store.events import EVENT_TYPES
from trust.store.tables import AuditCheckpoint, AuditEntry
from trust.store.tables import stored_events as _events

AUDIT = "trust-audit"
"""The audit log's follower name (its position in ``follower_positions``)."""

LOG_NAME = "tiptrust-audit"
CHECKPOINT_CONTEXT = b"tiptrust/audit-checkpoint/v1\x00"


def _table(cls: type[AuditEntry] | type[AuditCheckpoint]) -> Table:
    table = cls.__table__
    assert isinstance(table, Table)
    return table


_entries = _table(AuditEntry)
_checkpoints = _table(AuditCheckpoint)


class AuditError(Exception):
    """Base of the audit log's failures; ``code`` is a stable, machine-readable reason."""

    code: str = "audit_error"


class AppendOnly(AuditError):
    """Something asked to empty or rebuild the audit log: it is never emptied."""

    code = "audit_append_only"


class NoSuchEntry(AuditError):
    """No entry with that index is covered by the checkpoint asked for."""

    code = "audit_no_such_entry"


class NoSuchCheckpoint(AuditError):
    """No checkpoint has that tree size."""

    code = "audit_no_such_checkpoint"


class LogBroken(AuditError):
    """The stored entries do not make the tree their checkpoint signed: no proof is given (run
    :func:`verify` to see where)."""

    code = "audit_log_broken"


# --- checkpoints --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log's signed head at ``tree_size`` entries: its RFC 6962 root and its chain head."""

    tree_size: int
    root: bytes
    chain: bytes
    issued_at_ms: int
    key_id: str | None = None
    signature: bytes | None = None

    def statement(self) -> bytes:
        """The bytes the release key signs: context ‖ canonical JSON of the head."""
        return CHECKPOINT_CONTEXT + canonical(
            {
                "log": LOG_NAME,
                "tree_size": self.tree_size,
                "root": self.root.hex(),
                "chain": self.chain.hex(),
                "issued_at_ms": self.issued_at_ms,
                "key_id": self.key_id,
            }
        )

    def signed_by(self, key: SigningKey) -> Checkpoint:
        unsigned = Checkpoint(self.tree_size, self.root, self.chain, self.issued_at_ms, key.key_id)
        return Checkpoint(
            self.tree_size,
            self.root,
            self.chain,
            self.issued_at_ms,
            key.key_id,
            key.sign(unsigned.statement()),
        )

    def verify_signature(self, keys: Mapping[str, VerifyKey]) -> str | None:
        """None when signed by one of ``keys``; else a problem code."""
        if self.signature is None or self.key_id is None:
            return "unsigned_checkpoint"
        key = keys.get(self.key_id)
        if key is None:
            return "unknown_key"
        try:
            key.public.verify(self.signature, self.statement())
        except InvalidSignature:
            return "bad_signature"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "log": LOG_NAME,
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "chain": self.chain.hex(),
            "issued_at_ms": self.issued_at_ms,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode() if self.signature else None,
        }


def _checkpoint_of(row: Any) -> Checkpoint:
    return Checkpoint(
        int(row.tree_size),
        bytes.fromhex(row.root),
        bytes.fromhex(row.chain),
        int(row.issued_at_ms),
        row.key_id,
        base64.b64decode(row.signature) if row.signature else None,
    )


def _frontier_of(row: Any) -> Frontier:
    return Frontier(int(row.tree_size), [bytes.fromhex(h) for h in orjson.loads(row.frontier)])


def _latest_row(conn: Connection) -> Any:
    c = _checkpoints.c
    return conn.execute(select(_checkpoints).order_by(c.tree_size.desc()).limit(1)).first()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the follower -------------------------------------------------------------------------------


class AuditLog:
    """Appends an entry per stored event and a checkpoint per batch (a StoreFollower).

    ``ref`` makes the opaque digest of a victim record (the vault's person key id); ``signing_key``
    (the trust's release key) signs the checkpoints — without one they are unsigned.
    """

    name = AUDIT
    event_types = frozenset(EVENT_TYPES)  # every kind: nothing escapes the log
    # never changes: a new version would make the follower clear and rebuild, which a log that
    # is append-only must not do (a new entry format is a new ``v`` in the entries instead)
    version = "1"
    reads_records = False

    def __init__(
        self,
        ref: RecordRef,
        signing_key: SigningKey | None = None,
        *,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.ref = ref
        self.signing_key = signing_key
        self.clock = clock

    def apply(self, conn: Connection, events: Batch) -> None:
        if not events:
            return
        latest = _latest_row(conn)
        frontier = _frontier_of(latest) if latest is not None else Frontier()
        chain = bytes.fromhex(latest.chain) if latest is not None else CHAIN_START
        e = _events.c
        wanted = {seq for seq, _ in events}
        rows = {
            int(seq): (stored_event_digest(t, payload, body), int(at))
            for seq, t, payload, body, at in conn.execute(
                select(e.seq, e.event_type, e.payload, e.body, e.recorded_at_ms).where(
                    e.seq >= events[0][0], e.seq <= events[-1][0]
                )
            )
            if int(seq) in wanted
        }
        out: list[dict[str, Any]] = []
        for seq, event in events:
            digest, at = rows[seq]
            entry = make_entry(
                frontier.size, seq, event, recorded_at_ms=at, event_digest=digest, ref=self.ref
            )
            chain = chain_next(chain, entry)
            out.append({"leaf_index": frontier.size, "entry": entry.decode(), "chain": chain.hex()})
            frontier.append(leaf_hash(entry))
        bulk_insert(conn, _entries, out)
        head = Checkpoint(frontier.size, frontier.root(), chain, self.clock())
        if self.signing_key is not None:
            head = head.signed_by(self.signing_key)
        conn.execute(
            _checkpoints.insert(),
            {
                "tree_size": head.tree_size,
                "root": head.root.hex(),
                "chain": head.chain.hex(),
                "frontier": orjson.dumps([n.hex() for n in frontier.nodes]).decode(),
                "issued_at_ms": head.issued_at_ms,
                "key_id": head.key_id,
                "signature": base64.b64encode(head.signature).decode() if head.signature else None,
            },
        )

    def clear(self, conn: Connection) -> None:
        raise AppendOnly("the audit log is append-only: it is never emptied or rebuilt")


# --- reading ------------------------------------------------------------------------------------


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction that sees one state of the log (entries and checkpoints agree)."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with engine.connect() as conn, conn.begin():
        yield conn


def latest_checkpoint(engine: Engine) -> Checkpoint | None:
    """The newest checkpoint, or None before the first entry."""
    with _snapshot(engine) as conn:
        row = _latest_row(conn)
    return _checkpoint_of(row) if row is not None else None


def checkpoints(engine: Engine) -> list[Checkpoint]:
    """Every checkpoint, oldest first."""
    with _snapshot(engine) as conn:
        return _checkpoints_in(conn)


def _checkpoints_in(conn: Connection) -> list[Checkpoint]:
    rows = conn.execute(select(_checkpoints).order_by(_checkpoints.c.tree_size))
    return [_checkpoint_of(r) for r in rows]


def _checkpoint_in(conn: Connection, size: int | None) -> Checkpoint:
    if size is None:
        row = _latest_row(conn)
        if row is None:
            raise NoSuchCheckpoint("the audit log has no entries yet")
        return _checkpoint_of(row)
    row = conn.execute(select(_checkpoints).where(_checkpoints.c.tree_size == size)).first()
    if row is None:
        sizes = [
            int(s)
            for s in conn.execute(
                select(_checkpoints.c.tree_size)
                .order_by(func.abs(_checkpoints.c.tree_size - size))
                .limit(3)
            ).scalars()
        ]
        near = ", ".join(str(s) for s in sorted(sizes)) or "none"
        raise NoSuchCheckpoint(f"no checkpoint at tree size {size} (nearest: {near})")
    return _checkpoint_of(row)


def _rows(conn: Connection, upto: int | None = None) -> Iterator[tuple[int, str, str]]:
    c = _entries.c
    stmt = select(c.leaf_index, c.entry, c.chain).order_by(c.leaf_index)
    if upto is not None:
        stmt = stmt.where(c.leaf_index < upto)
    for i, entry, chain in conn.execution_options(yield_per=2000).execute(stmt):
        yield int(i), str(entry), str(chain)


def _leaves_checked(conn: Connection, head: Checkpoint) -> list[bytes]:
    """The leaf hashes of the first ``head.tree_size`` entries, refusing a log whose entries do
    not make ``head``'s root (a proof must never contradict the signed head)."""
    leaves = [leaf_hash(entry.encode()) for _, entry, _ in _rows(conn, head.tree_size)]
    if len(leaves) != head.tree_size or tree_root(leaves) != head.root:
        raise LogBroken(
            f"the entries do not make checkpoint {head.tree_size}'s root: run `tiptrust audit "
            "verify`"
        )
    return leaves


def entry_count(engine: Engine) -> int:
    with _snapshot(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(_entries)).scalar_one())


# --- verification -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One thing that does not verify: a stable ``code``, the entry (or checkpoint size) it is
    at, and what was expected (ids and hashes only)."""

    code: str
    at: int
    detail: str


@dataclass
class AuditVerification:
    """What :func:`verify` found: counts, the head it recomputed, and every problem."""

    entries: int = 0
    checkpoints: int = 0
    signed: int = 0
    root: bytes = EMPTY_ROOT
    chain: bytes = CHAIN_START
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "signed_checkpoints": self.signed,
            "root": self.root.hex(),
            "chain": self.chain.hex(),
            "problems": [{"code": p.code, "at": p.at, "detail": p.detail} for p in self.problems],
        }


def verify(engine: Engine, keys: Mapping[str, VerifyKey] | None = None) -> AuditVerification:
    """Recompute the audit log from its entries and compare it with what is stored.

    Finds an edited entry (its chain link breaks), a removed one (a gap in the indices, or a
    checkpoint beyond the last entry), a reordered one (its own index differs from its place;
    the chain breaks; event seqs go back), an entry not in canonical form, and a checkpoint whose
    root or chain head the entries do not make. With ``keys`` (the trust's release keys by id),
    every checkpoint's signature is checked too.
    """
    result = AuditVerification()
    problems = result.problems
    with _snapshot(engine) as conn:
        heads = _checkpoints_in(conn)
        by_size = {h.tree_size: h for h in heads}
        frontier = Frontier()
        chain = CHAIN_START
        expected = 0
        last_seq = 0
        for index, text, stored_chain in _rows(conn):
            raw = text.encode()
            if index != expected:
                problems.append(
                    AuditProblem("missing_entry", expected, f"entries {expected}..{index - 1}")
                )
            expected = index + 1
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                entry = None
            if not isinstance(entry, dict):
                problems.append(AuditProblem("unreadable_entry", index, "not a JSON object"))
            else:
                if canonical(entry) != raw:
                    problems.append(AuditProblem("not_canonical", index, "not canonical JSON"))
                if entry.get("leaf_index") != index:
                    problems.append(
                        AuditProblem(
                            "misplaced_entry", index, f"says it is entry {entry.get('leaf_index')}"
                        )
                    )
                seq = entry.get("event_seq")
                if isinstance(seq, int):
                    if seq <= last_seq:
                        problems.append(
                            AuditProblem("out_of_order", index, f"event {seq} after {last_seq}")
                        )
                    last_seq = seq
            chain = chain_next(chain, raw)
            if chain.hex() != stored_chain:
                problems.append(AuditProblem("broken_chain", index, "the chain link differs"))
                # go on from the stored link, so one edit is reported once
                chain = bytes.fromhex(stored_chain) if _is_hash(stored_chain) else chain
            frontier.append(leaf_hash(raw))
            head = by_size.get(frontier.size)
            if head is not None:
                _check_head(head, frontier.root(), chain, problems)
        result.entries = frontier.size
    for head in heads:
        if head.tree_size > frontier.size:
            problems.append(
                AuditProblem(
                    "checkpoint_beyond_log",
                    head.tree_size,
                    f"checkpoint {head.tree_size} but {frontier.size} entries",
                )
            )
        if keys is not None:
            problem = head.verify_signature(keys)
            if problem is None:
                result.signed += 1
            elif problem != "unsigned_checkpoint":
                problems.append(AuditProblem(problem, head.tree_size, f"key {head.key_id}"))
    result.checkpoints = len(heads)
    result.root = frontier.root()
    result.chain = chain
    return result


def _is_hash(value: str) -> bool:
    try:
        return len(bytes.fromhex(value)) == 32
    except ValueError:
        return False


def _check_head(head: Checkpoint, root: bytes, chain: bytes, problems: list[AuditProblem]) -> None:
    if head.root != root:
        problems.append(
            AuditProblem("checkpoint_mismatch", head.tree_size, f"root {root.hex()} recomputed")
        )
    if head.chain != chain:
        problems.append(
            AuditProblem("checkpoint_mismatch", head.tree_size, f"chain {chain.hex()} recomputed")
        )


# --- proofs and export --------------------------------------------------------------------------


def inclusion_proof(
    engine: Engine, leaf_index: int, tree_size: int | None = None
) -> dict[str, Any]:
    """An RFC 6962 inclusion proof of entry ``leaf_index`` in the tree of the checkpoint at
    ``tree_size`` (the newest if None), as JSON: ``leaf_index``, ``tree_size``, ``root``,
    ``path`` (hex, bottom up), the ``entry`` itself and the signed ``checkpoint``.

    Raises:
        NoSuchCheckpoint: no checkpoint has that size (or the log is empty).
        NoSuchEntry: the checkpoint does not cover that entry.
        LogBroken: the entries do not make the checkpoint's root.
    """
    with _snapshot(engine) as conn:
        head = _checkpoint_in(conn, tree_size)
        if not 0 <= leaf_index < head.tree_size:
            raise NoSuchEntry(
                f"entry {leaf_index} is not in checkpoint {head.tree_size} "
                f"(entries 0..{head.tree_size - 1})"
            )
        leaves = _leaves_checked(conn, head)
        entry = conn.execute(
            select(_entries.c.entry).where(_entries.c.leaf_index == leaf_index)
        ).scalar_one()
    return {
        "type": "inclusion",
        "log": LOG_NAME,
        "leaf_index": leaf_index,
        "tree_size": head.tree_size,
        "root": head.root.hex(),
        "path": [h.hex() for h in inclusion_path(leaves, leaf_index)],
        "entry": entry,
        "leaf_hash": leaves[leaf_index].hex(),
        "checkpoint": head.to_json(),
    }


def consistency_proof(engine: Engine, first: int, second: int) -> dict[str, Any]:
    """An RFC 6962 consistency proof that checkpoint ``first``'s tree is a prefix of checkpoint
    ``second``'s, as JSON: ``from_size``, ``to_size``, ``from_root``, ``to_root``, ``path`` and
    both signed checkpoints.

    Raises:
        NoSuchCheckpoint: either size is not a checkpoint's.
        ValueError: ``first`` > ``second``.
        LogBroken: the entries do not make the second checkpoint's root.
    """
    if first > second:
        raise ValueError(f"the first checkpoint ({first}) must not be after the second ({second})")
    with _snapshot(engine) as conn:
        old = _checkpoint_in(conn, first)
        new = _checkpoint_in(conn, second)
        leaves = _leaves_checked(conn, new)
    if tree_root(leaves[:first]) != old.root:
        raise LogBroken(f"the entries do not make checkpoint {first}'s root")
    return {
        "type": "consistency",
        "log": LOG_NAME,
        "from_size": first,
        "to_size": second,
        "from_root": old.root.hex(),
        "to_root": new.root.hex(),
        "path": [h.hex() for h in consistency_path(leaves, first)],
        "from_checkpoint": old.to_json(),
        "to_checkpoint": new.to_json(),
    }


def export_lines(engine: Engine) -> Iterator[str]:
    """The log as JSON lines: every entry covered by the newest checkpoint, exactly as stored
    (its canonical bytes are the Merkle leaf), then ``{"checkpoint": …}``. Empty when the log
    is."""
    with _snapshot(engine) as conn:
        row = _latest_row(conn)
        if row is None:
            return
        head = _checkpoint_of(row)
        for _, entry, _ in _rows(conn, head.tree_size):
            yield entry
    yield canonical({"checkpoint": head.to_json()}).decode()
