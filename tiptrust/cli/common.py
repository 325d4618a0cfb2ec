"""Options and exit codes shared by every command group."""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import typer
from rich.console import Console

from tiptrust.home import Home
from transport.topics import validate_name

console = Console(stderr=True)
out = Console()


class Exit(IntEnum):
    """Distinct exit codes, so an agency's scheduler can tell outcomes apart."""

    OK = 0
    USAGE = 2
    ROWS_REJECTED = 3
    DELIVERY_FAILED = 4
    NOT_SET_UP = 5
    REFUSED = 6


HomeOpt = Annotated[
    str | None,
    typer.Option(
        "--home",
        envvar="TIPTRUST_HOME",
        help="Folder for keys, registrations and embedded databases [default: ./.tiptrust]",
    ),
]
LogOpt = Annotated[
    str | None,
    typer.Option(
        "--log",
        envvar="TIPTRUST_LOG",
        help="Event log: sqlite:///path.db or kafka://host:port [default: HOME/log.db]",
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="TIPTRUST_STORE",
        help="Trust event store URL [default: sqlite HOME/trust/store.db]",
    ),
]


NAME_SYNTAX = "a lowercase letter, then 1-62 of a-z 0-9 _ -"


def valid_name(value: str) -> str:
    """A Typer callback: ``value`` if it is a valid source, consumer, stream or purpose name.

    Names become topic and folder names, so ``../../x`` or ``Police`` must never get through.
    """
    try:
        return validate_name(value)
    except ValueError:
        raise typer.BadParameter(f"expected {NAME_SYNTAX}") from None


def home_of(given: str | None) -> Home:
    return Home.resolve(given)


def fail(message: str, code: Exit) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(int(code))
