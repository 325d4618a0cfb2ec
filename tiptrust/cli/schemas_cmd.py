"""`tiptrust schemas …`: the wire contract's schemas and their evolution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from schemas.codec import default_registry
from schemas.compatibility import check_tree, latest_release
from tiptrust.cli.common import Exit, fail, out

app = typer.Typer(help="Inspect and check the wire schemas.", no_args_is_help=True)


@app.command("list")
def list_schemas() -> None:
    """The shipped schemas and their fingerprints."""
    reg = default_registry()
    table = Table("schema", "fingerprint (sha-256 of canonical form)")
    for name in reg.names:
        table.add_row(name, reg.current(name).fingerprint.hex())
    out.print(table)


@app.command("check")
def check(
    against: Annotated[
        Path | None,
        typer.Option("--against", help="A released snapshot folder [default: the latest]"),
    ] = None,
    avro_dir: Annotated[
        Path | None,
        typer.Option("--tree", help="Schema folder to check [default: the shipped one]"),
    ] = None,
) -> None:
    """Compare the schemas in the tree with the previous release's; exit 6 if incompatible."""
    base = against or latest_release()
    if base is None:
        out.print("no released snapshot to compare with")
        return
    results = check_tree(avro_dir, base) if avro_dir else check_tree(released=base)
    bad = 0
    for name, problems in sorted(results.items()):
        if problems:
            bad += 1
            for p in problems:
                out.print(f"[red]{name}[/red] {p.path}: expected {p.expected}")
        else:
            out.print(f"[green]{name}[/green] compatible with {base.name}")
    if bad:
        raise fail(f"{bad} schema(s) incompatible with release {base.name}", Exit.REFUSED)
