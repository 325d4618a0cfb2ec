"""`tiptrust principal …`: who may act on the trust, and the token check every trust command makes.

A command that acts on the trust takes the caller's API token from ``--token`` or the
environment variable ``TIPTRUST_TOKEN`` (:data:`TokenOpt`) and asks :func:`acting` for the
principal it proves; a refusal exits 7 (:attr:`Exit.DENIED`) with the reason code and never
echoes the token. The rules themselves are in :mod:`trust.stewardship.principals`.

Tokens are printed once, when made (``keys trust-init`` for the first custodian, ``principal
add`` for every other principal), and kept nowhere by tiptrust: the store holds their keyed
hash only. Keep a token in your password manager or secret store and give it through
``TIPTRUST_TOKEN``; a lost token is replaced by revoking the principal and adding it again.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tiptrust.cli.common import Exit, HomeOpt, StoreOpt, fail, home_of, out, valid_name
from tiptrust.home import Home
from trust.stewardship.principals import (
    AccessDenied,
    Action,
    Principal,
    PrincipalError,
    Role,
    add_principal,
    principals,
    require,
    revoke_principal,
)
from trust.store.eventstore import EventStore, open_store

TOKEN_ENV = "TIPTRUST_TOKEN"

TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=TOKEN_ENV,
        show_default=False,
        help="Your API token (printed once when your principal was added)",
    ),
]


def acting(
    store: EventStore,
    token: str | None,
    action: Action,
    *,
    source: str | None = None,
    consumer: str | None = None,
) -> Principal:
    """The principal ``token`` proves, allowed to take ``action``; else exit 7 with the reason.

    Call it before the command changes or shows anything.
    """
    try:
        return require(store, token, action, source=source, consumer=consumer)
    except AccessDenied as exc:
        raise fail(f"refused ({exc.code}): {exc}", Exit.DENIED) from None


def acting_in(
    h: Home,
    store_url: str | None,
    token: str | None,
    action: Action,
    *,
    source: str | None = None,
    consumer: str | None = None,
) -> Principal:
    """As :func:`acting`, on the trust store of home ``h`` (opened and closed here)."""
    event_store = open_store(h.store_url(store_url))
    try:
        return acting(event_store, token, action, source=source, consumer=consumer)
    finally:
        event_store.close()


def runs_the_trust(h: Home) -> bool:
    """Whether this home holds a trust (``keys trust-init`` was run in it): then the trust's
    principals decide who acts, also for the agency and ministry commands run beside it."""
    return h.kek.exists()


app = typer.Typer(
    help="Principals: who may act on the trust, in which role, with which token.",
    no_args_is_help=True,
)


@app.command("add")
def add(
    role: Annotated[Role, typer.Option("--role", help="What the principal is to the trust")],
    name: Annotated[
        str,
        typer.Option(
            "--name", callback=valid_name, help="Its name; a consumer's is its consumer id"
        ),
    ],
    source: Annotated[
        str | None,
        typer.Option("--source", help="The source a data steward answers for (stewards only)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as one JSON object")] = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Add a principal (custodians only) and print its new token ONCE: hand it over, it is
    kept nowhere. Exit codes: 0 added; 2 bad request or the name is taken; 7 refused."""
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        me = acting(event_store, token, Action.MANAGE_PRINCIPALS)
        try:
            issued = add_principal(event_store, name, role, source=source, added_by=me.name)
        except PrincipalError as exc:
            raise fail(f"{exc} ({exc.code})", Exit.USAGE) from None
    finally:
        event_store.close()
    p = issued.principal
    if as_json:
        body = {"name": p.name, "role": p.role.value, "source": p.source, "token": issued.token}
        print(json.dumps(body))
        return
    out.print(f"added {p.describe()}; its token, shown once (give it through {TOKEN_ENV}):")
    print(issued.token)


@app.command("list")
def list_principals(
    revoked: Annotated[bool, typer.Option("--revoked", help="Also revoked principals")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """The principals, their roles and sources (never a token). Custodians only."""
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        acting(event_store, token, Action.MANAGE_PRINCIPALS)
        found = principals(event_store, include_revoked=revoked)
    finally:
        event_store.close()
    rows = [
        {
            "name": p.name,
            "role": p.role.value,
            "source": p.source,
            "added_by": p.added_by,
            "added_at_ms": p.added_at_ms,
            "revoked_at_ms": p.revoked_at_ms,
        }
        for p in found
    ]
    if as_json:
        print(json.dumps(rows))
        return
    t = Table("name", "role", "source", "added by", "revoked", title="principals")
    for r in rows:
        t.add_row(
            str(r["name"]),
            str(r["role"]),
            str(r["source"] or ""),
            str(r["added_by"]),
            "yes" if r["revoked_at_ms"] is not None else "",
        )
    out.print(t)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The principal to revoke")],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a principal: its token is refused from now on (custodians only; the last
    custodian stays). Exit codes: 0 revoked; 2 unknown, already revoked or the last custodian;
    7 refused."""
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        me = acting(event_store, token, Action.MANAGE_PRINCIPALS)
        try:
            p = revoke_principal(event_store, name, revoked_by=me.name)
        except PrincipalError as exc:
            raise fail(f"{exc} ({exc.code})", Exit.USAGE) from None
    finally:
        event_store.close()
    out.print(f"revoked {p.describe()}: its token is refused from now on")
