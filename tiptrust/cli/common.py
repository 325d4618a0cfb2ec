"""Options, exit codes and start-up shared by every command group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import IntEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tiptrust.home import Home, Settings, SettingsError, checked_log_url
from tiptrust.logs import configure_logging
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
    DENIED = 7  # no valid API token, or its principal may not do this


def _checked_log(value: str | None) -> str | None:
    """A Typer callback: refuse a bad ``--log`` URL (or bad ``TIPTRUST_KAFKA_OPTIONS`` for it)
    before the command runs, naming every bad option; the value itself is returned as given."""
    if value:
        try:
            checked_log_url(value)
        except SettingsError as exc:
            raise typer.BadParameter("; ".join(exc.problems)) from None
    return value


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
        callback=_checked_log,
        help="Event log: sqlite:///path.db or kafka://host:port[?option=value&…] "
        "[default: HOME/log.db]",
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
    """The home folder and settings of a command; exits USAGE listing every bad setting."""
    try:
        return Home.resolve(given)
    except SettingsError as exc:
        raise fail("; ".join(exc.problems), Exit.USAGE) from None


def start_up(environ: Mapping[str, str] | None = None) -> Settings:
    """Call once when the CLI starts: check every setting, then configure diagnostics.

    Invalid settings are all printed, by variable name, and the process exits with
    ``Exit.USAGE`` (a ``SystemExit``, so this works inside and outside a Typer command).
    """
    try:
        settings = Settings.from_env(os.environ if environ is None else environ)
    except SettingsError as exc:
        for problem in exc.problems:
            console.print(f"[red]error:[/red] {escape(problem)}", highlight=False)
        raise SystemExit(int(Exit.USAGE)) from None
    configure_logging(settings.logging_level, json=settings.logging_format == "json")
    return settings


def fail(message: str, code: Exit) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(int(code))
