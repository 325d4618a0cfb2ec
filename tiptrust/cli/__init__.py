"""The umbrella command: `tiptrust <group> …`, one Typer module per command group."""

from __future__ import annotations

import typer

from tiptrust.cli import (
    agreement_cmd,
    audit_cmd,
    consume,
    demo,
    keys,
    link_cmd,
    mapping_cmd,
    metadata_cmd,
    mse_cmd,
    principal_cmd,
    produce,
    schemas_cmd,
    synthesize_cmd,
    trust_cmd,
)
from tiptrust.cli.common import start_up
from tiptrust.runtime import tune_gc

app = typer.Typer(
    name="tiptrust",
    help="Share administrative trafficking-in-persons data through an independent trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(schemas_cmd.app, name="schemas")
app.add_typer(trust_cmd.app, name="trust")
app.add_typer(link_cmd.app, name="link")
app.add_typer(mse_cmd.app, name="mse")
app.add_typer(mapping_cmd.app, name="mapping")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(agreement_cmd.app, name="agreement")
app.add_typer(principal_cmd.app, name="principal")
app.add_typer(metadata_cmd.app, name="metadata")
produce.register(app)
consume.register(app)
demo.register(app)
synthesize_cmd.register(app)


def main() -> None:
    start_up()  # every setting checked (all problems at once), logging configured with redaction
    tune_gc()  # after start-up: what it made is frozen out of every collection
    app()
