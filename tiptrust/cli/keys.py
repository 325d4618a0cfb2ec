"""`tiptrust keys …`: create, rotate, retire and export keys. Private keys are never printed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, StoreOpt, fail, home_of, out, valid_name
from trust.store.eventstore import open_store

app = typer.Typer(help="Create, rotate and export keys.", no_args_is_help=True)


@app.command("trust-init")
def trust_init(
    name: Annotated[
        str,
        typer.Option("--name", callback=valid_name, help="The first custodian's name"),
    ] = "operator",
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="TIPTRUST_TOKEN",
            show_default=False,
            help="A tt1 token of your own for the first custodian (default: a new one, printed "
            "once)",
        ),
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Create the trust's encryption key, release-signing key and vault key (once), and its first
    custodian, whose token is printed ONCE (kept nowhere: only its keyed hash is stored).

    Run again, it changes nothing; once the trust has a custodian only a custodian adds
    principals (`tiptrust principal add`).
    """
    from trust.stewardship.principals import AccessDenied, bootstrap_custodian

    h = home_of(home)
    key = wiring.trust_init(h)
    out.print(
        f"trust key {key.key_id} active; public key {h.trust_keys / (key.key_id + '.x25519.pub.pem')}"
    )
    event_store = open_store(h.store_url(store))
    try:
        issued = bootstrap_custodian(event_store, name, token)
    except AccessDenied as exc:
        raise fail(f"--token: {exc}", Exit.USAGE) from None
    finally:
        event_store.close()
    if issued is None:
        out.print("the trust has a custodian: principals are added with `tiptrust principal add`")
    elif token:
        out.print(f"custodian {name} added with the token you gave")
    else:
        out.print(
            f"custodian {name} added; its token, shown once (give it through TIPTRUST_TOKEN):"
        )
        print(issued.token)


@app.command("source-init")
def source_init(
    source: Annotated[
        str, typer.Option("--source", callback=valid_name, help="Source id, e.g. police")
    ],
    home: HomeOpt = None,
) -> None:
    """Create a source's signing key and give it the trust's public key."""
    h = home_of(home)
    try:
        key = wiring.source_init(h, source)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    out.print(
        f"source {source} key {key.key_id}; public key {h.source_keys(source) / (key.key_id + '.ed25519.pub.pem')}"
    )


@app.command("rotate-source")
def rotate_source(
    source: Annotated[
        str, typer.Option("--source", callback=valid_name, help="Source id, e.g. police")
    ],
    home: HomeOpt = None,
) -> None:
    """Give a source a new signing key, active from now on (the old one stays to verify what
    it signed). Then the trust registers the new public key (`tiptrust trust register
    --public-key`) and, if the old key leaked, revokes it (`tiptrust trust revoke-key`)."""
    h = home_of(home)
    try:
        old = wiring.source_signing_key(h, source)
        key = wiring.rotate_source_key(h, source)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    out.print(
        f"source {source} key {key.key_id} active (was {old.key_id}); public key "
        f"{h.source_keys(source) / (key.key_id + '.ed25519.pub.pem')}"
    )


@app.command("rotate-trust")
def rotate_trust(home: HomeOpt = None) -> None:
    """Make a new active trust key; older keys stay for decryption until retired."""
    new, old = wiring.rotate_trust_key(home_of(home))
    out.print(f"trust key {new} active" + (f"; {old} kept for decryption" if old else ""))


@app.command("retire-trust")
def retire_trust(
    key_id: Annotated[str, typer.Option("--key-id", help="The trust key to retire")],
    home: HomeOpt = None,
) -> None:
    """Stop opening envelopes sealed to an old trust key and delete its private half."""
    try:
        wiring.retire_trust_key(home_of(home), key_id)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    out.print(f"trust key {key_id} retired")


@app.command("rotate-kek")
def rotate_kek(store: StoreOpt = None, home: HomeOpt = None) -> None:
    """Replace the vault's key-encryption key: every person key is re-wrapped under a new one and
    the old one destroyed, so no older copy of a shredded person key (a backup, a dead row) opens
    any more. The trust does this by itself after each erasure."""
    h = home_of(home)
    if not h.kek.exists():
        raise fail("no vault key: run `tiptrust keys trust-init`", Exit.NOT_SET_UP)
    event_store = open_store(h.store_url(store))
    try:
        count = wiring.rotate_vault_key(h, event_store)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    finally:
        event_store.close()
    out.print(f"key-encryption key replaced; {count} person keys re-wrapped")


@app.command("export-release")
def export_release(
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the public release key (PEM)")
    ],
    home: HomeOpt = None,
) -> None:
    """Export the trust's public release-signing key for consumers."""
    h = home_of(home)
    try:
        key = wiring.release_key(h)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(h.release_keys / f"{key.key_id}.ed25519.pub.pem", out_path)
    out.print(f"release key {key.key_id} → {out_path}")
