"""`tiptrust audit …`: verify the trust's audit log, prove an entry or a checkpoint, export it.

Every command first brings the audit log up to the store's end (it is a follower of the store:
see ``trust/stewardship/audit.md``), unless ``--no-catch-up`` (e.g. an auditor holding a copy of
the store without the trust's keys).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, StoreOpt, fail, home_of, out
from tiptrust.home import Home
from trust.follow import follow
from trust.stewardship import audit
from trust.store.eventstore import EventStore, open_store

app = typer.Typer(
    help="The trust's audit log: verify it, prove an entry or a checkpoint, export it.",
    no_args_is_help=True,
)

CatchUpOpt = Annotated[
    bool,
    typer.Option(
        "--catch-up/--no-catch-up",
        help="Audit what the store recorded since the log's last entry first (needs the "
        "trust's vault and release keys)",
    ),
]


def _open(h: Home, store: str | None, catch_up: bool) -> EventStore:
    """The store, with its audit log brought up to its end when ``catch_up``."""
    if catch_up and not h.kek.exists():
        raise fail(
            "no vault key: run `tiptrust keys trust-init` (or give --no-catch-up)", Exit.NOT_SET_UP
        )
    event_store = open_store(h.store_url(store))
    if catch_up:
        try:
            follow(event_store, wiring.audit_log(h, wiring.vault(h, event_store)))
        except wiring.SetupError as exc:
            event_store.close()
            raise fail(f"{exc} (or give --no-catch-up)", Exit.NOT_SET_UP) from None
    return event_store


@app.command("verify")
def verify(
    store: StoreOpt = None,
    home: HomeOpt = None,
    catch_up: CatchUpOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Check the log: an edited, removed or reordered entry is reported (exit 6).

    Recomputes the hash chain and the Merkle tree from the entries and checks every checkpoint's
    root, chain head and signature (with the trust's release keys in the home).
    """
    h = home_of(home)
    event_store = _open(h, store, catch_up)
    try:
        keys = wiring.release_public_keys(h.release_keys) if h.release_keys.is_dir() else None
    except wiring.SetupError:
        keys = None
    try:
        result = audit.verify(event_store.engine, keys)
    finally:
        event_store.close()
    if as_json:
        print(json.dumps(result.to_json()))
    elif result.ok:
        out.print(
            f"audit log verified: {result.entries} entries, {result.checkpoints} checkpoints "
            f"({result.signed} signature(s) checked), root {result.root.hex()}"
        )
    else:
        t = Table("problem", "at", "detail", title="audit log problems")
        for p in result.problems[:50]:
            t.add_row(p.code, str(p.at), p.detail)
        out.print(t)
        out.print(
            f"{len(result.problems)} problem(s) in {result.entries} entries and "
            f"{result.checkpoints} checkpoints"
        )
    if not result.ok:
        raise typer.Exit(int(Exit.REFUSED))


@app.command("proof")
def proof(
    entry: Annotated[
        int | None,
        typer.Option("--entry", min=0, help="Prove this entry (its leaf index, from 0)"),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", min=1, help="…in the checkpoint of this tree size [default: the newest]"
        ),
    ] = None,
    first: Annotated[
        int | None,
        typer.Option("--from", min=1, help="Prove that the checkpoint of this size…"),
    ] = None,
    second: Annotated[
        int | None,
        typer.Option("--to", min=1, help="…is a prefix of the checkpoint of this size"),
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    catch_up: CatchUpOpt = True,
) -> None:
    """Print an inclusion or a consistency proof (RFC 6962) as JSON.

    With --entry N, entry N's inclusion proof (leaf_index, tree_size, root, path, the entry and
    the signed checkpoint); with --from M --to N, the consistency proof between the checkpoints
    of sizes M and N. `scripts/verify_audit_proof.py` checks either without the trust's code.
    """
    if (entry is None) == (first is None and second is None):
        raise fail("give either --entry N or --from M --to N", Exit.USAGE)
    if entry is None and (first is None or second is None):
        raise fail("a consistency proof needs both --from and --to", Exit.USAGE)
    h = home_of(home)
    event_store = _open(h, store, catch_up)
    try:
        if entry is not None:
            answer = audit.inclusion_proof(event_store.engine, entry, size)
        else:
            assert first is not None and second is not None
            answer = audit.consistency_proof(event_store.engine, first, second)
    except (audit.NoSuchCheckpoint, audit.NoSuchEntry, ValueError) as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except audit.LogBroken as exc:
        raise fail(str(exc), Exit.REFUSED) from None
    finally:
        event_store.close()
    print(json.dumps(answer, indent=2))


@app.command("export")
def export(
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write to this file [default: standard output]")
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    catch_up: CatchUpOpt = True,
) -> None:
    """Write the log as JSON lines, ending with the newest signed checkpoint.

    Every entry exactly as stored (its bytes are its Merkle leaf), then {"checkpoint": …}.
    """
    h = home_of(home)
    event_store = _open(h, store, catch_up)
    try:
        lines = audit.export_lines(event_store.engine)
        if out_path is None:
            for line in lines:
                print(line)
        else:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            n = 0
            with out_path.open("w", encoding="utf-8", newline="\n") as f:
                for line in lines:
                    f.write(line + "\n")
                    n += 1
            out.print(f"{max(n - 1, 0)} entries and the newest checkpoint → {out_path}")
    finally:
        event_store.close()
