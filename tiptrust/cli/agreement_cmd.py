"""`tiptrust agreement …`: submit a source's data-sharing agreement as a signed version, and
read what the trust holds — the version in force, every version, the difference between two.

``submit`` signs the YAML's exact bytes with the source's signing key (kept in this home by
``tiptrust keys source-init``); the trust verifies the signature against the source's
registered key, validates the document (every problem at once, by key path) and records an
``AgreementSubmitted`` event. Versions registered as files before agreements were events are
shown too, marked ``file`` (unsigned).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from schemas.keys import KeyFileError, KeyStore, VerifyKey, read_verify_key
from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, StoreOpt, console, fail, home_of, out, valid_name
from tiptrust.cli.principal_cmd import TokenOpt
from tiptrust.home import Home
from trust.stewardship.agreement import (
    SENSITIVE_PURPOSES,
    AgreementError,
    AgreementSignatureError,
    AgreementVersion,
    AgreementVersionError,
    parse_document,
    sign_agreement,
    submit_agreement,
)
from trust.stewardship.principals import (
    AccessDenied,
    Action,
    Principal,
    authenticate,
    authorize,
    record_refusal,
)
from trust.store.eventstore import EventStore, open_store

app = typer.Typer(
    help="Data-sharing agreements: submit a signed version; show, history, diff.",
    no_args_is_help=True,
)

SourceOpt = Annotated[
    str, typer.Option("--source", callback=valid_name, help="The source the agreement is of")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON")]


def submit_document(
    h: Home, event_store: EventStore, source: str, document: bytes
) -> AgreementVersion | None:
    """Sign ``document`` with ``source``'s signing key in this home and submit it to the trust
    (see :func:`trust.stewardship.agreement.submit_agreement`); None: held already.

    Raises:
        wiring.SetupError: no signing key, or the key is not registered at the trust.
        AgreementError, AgreementSignatureError, AgreementVersionError: as ``submit_agreement``.
    """
    key = wiring.source_signing_key(h, source)
    registered = {k.key_id: k for k in _registered_keys(h, source)}
    verify_key = registered.get(key.key_id)
    if verify_key is None:
        raise wiring.SetupError(
            f"{source}'s signing key {key.key_id} is not registered at the trust: "
            f"`tiptrust trust register --source {source} --public-key FILE` first"
        )
    earlier = wiring.trust_agreements(h, event_store).versions(source)
    return submit_agreement(
        event_store,
        document,
        sign_agreement(document, key),
        verify_key,
        source_id=source,
        earlier=earlier,
        now_ms=time.time_ns() // 1_000_000,
    )


def register_file(h: Home, store: str | None, source: str, file: Path) -> None:
    """``trust register --agreement FILE``: the agreement becomes the source's signed version
    when this home holds the source's signing key (as ``agreement submit`` does), and is kept as
    a file in the home as well; otherwise it is registered as an unsigned file only, as before
    agreements were events, and the source submits it signed later. Prints what was held; exits as ``submit`` does."""
    try:
        document = file.read_bytes()
        agreement = parse_document(document, str(file))
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", Exit.USAGE) from None
    except AgreementError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    if agreement.source_id != source:
        raise fail(f"agreement is for {agreement.source_id}, not {source}", Exit.USAGE)
    if KeyStore(h.source_keys(source), source).active() is None:
        try:
            held = _versions_held(h, store, source)
            if any(v.agreement.version == agreement.version for v in held if v.origin == "signed"):
                raise fail(
                    f"version {agreement.version} of {source} is held signed: give new terms a "
                    "new version",
                    Exit.REFUSED,
                )
            wiring.register_agreement(h, agreement)
        except wiring.SetupError as exc:
            raise fail(str(exc), Exit.NOT_SET_UP) from None
        out.print(describe(AgreementVersion(agreement, "file")))
        out.print(
            f"registered unsigned: {source}'s signing key is not in this home "
            f"(the source submits it signed with `tiptrust agreement submit`)"
        )
        return
    event_store = open_store(h.store_url(store))
    try:
        recorded = submit_document(h, event_store, source, document)
        # the home keeps the file too, as before agreements were events: a trust run on another
        # store (``--store``) still has the terms (the same version, the same terms: no conflict)
        wiring.register_agreement(h, agreement)
    except (AgreementSignatureError, AgreementVersionError) as exc:
        raise fail(f"{exc} ({exc.code}); nothing recorded", Exit.REFUSED) from None
    except AgreementError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    finally:
        event_store.close()
    out.print(describe(AgreementVersion(agreement, "signed")))
    if recorded is None:
        out.print("held already with the same terms: nothing changed")


def _registered_keys(h: Home, source: str) -> list[VerifyKey]:
    """The source's public keys registered at the trust (``trust register --public-key``)."""
    keys = []
    for f in sorted((h.registered(source) / "keys").glob("*.pub.pem")):
        try:
            keys.append(read_verify_key(f, source))
        except KeyFileError as exc:
            raise wiring.SetupError(f"cannot read the registered key {f}: {exc}") from None
    return keys


def describe(v: AgreementVersion) -> str:
    """One line on a version: its term and its grants (names only)."""
    a = v.agreement
    until = a.in_force_until.isoformat() if a.in_force_until else "open-ended"
    grants = ", ".join(f"{g.consumer} ({'/'.join(g.purposes)})" for g in a.releases_allowed)
    line = (
        f"agreement v{a.version} of {a.source_id}: in force {a.in_force_from} to {until}; "
        f"releases allowed to {grants or 'nobody'}"
    )
    if a.purposes_forbidden:
        line += f"; forbidden: {', '.join(a.purposes_forbidden)}"
    if a.retention is not None:
        line += f"; retention {a.retention.describe()}"
    return line


SUBMIT_AGREEMENT = "submit_agreement"
"""The action a refused agreement submission is recorded under (a steward's or a custodian's)."""


def _submitter(event_store: EventStore, token: str | None, source: str) -> Principal:
    """Who submits: the source's own data steward, or a custodian (who registers sources);
    else exit 7."""
    try:
        principal = authenticate(event_store, token)
    except AccessDenied as exc:
        record_refusal(event_store, None, SUBMIT_AGREEMENT, exc)
        raise fail(f"refused ({exc.code}): {exc}", Exit.DENIED) from None
    for action in (Action.ACT_FOR_SOURCE, Action.REGISTER_SOURCE):
        try:
            return authorize(principal, action, source=source)
        except AccessDenied as exc:
            refusal = exc
            continue
    record_refusal(event_store, principal, SUBMIT_AGREEMENT, refusal)
    raise fail(
        f"refused: {principal.describe()} may not submit {source}'s agreement "
        "(its data steward or a custodian may)",
        Exit.DENIED,
    )


@app.command("submit")
def submit(
    source: SourceOpt,
    file: Annotated[Path, typer.Option("--file", help="The agreement (YAML, any format)")],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Sign the agreement with the source's key and submit it as the source's next version
    (the source's data steward or a custodian).

    Exit codes: 0 recorded (or the same version with the same terms was held already); 2 the
    file is not a valid agreement of the source (every problem listed by key path); 5 the
    source's key is missing or not registered; 6 refused (signature, or a version that repeats
    one with other terms or is below the highest held); 7 no principal allowed to submit it.
    """
    h = home_of(home)
    try:
        document = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", Exit.USAGE) from None
    event_store = open_store(h.store_url(store))
    try:
        _submitter(event_store, token, source)
        recorded = submit_document(h, event_store, source, document)
    except AgreementError as exc:
        for problem in exc.problems:
            console.print(f"[red]{escape(problem)}[/red]")
        raise fail(
            f"{file}: not a valid agreement of {source}; nothing recorded", Exit.USAGE
        ) from None
    except (AgreementSignatureError, AgreementVersionError) as exc:
        raise fail(f"{exc} ({exc.code}); nothing recorded", Exit.REFUSED) from None
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    finally:
        event_store.close()
    if recorded is None:
        out.print(f"{source} holds this version with the same terms already: nothing changed")
        return
    applies = _when(recorded.applies_from_ms)
    out.print(
        f"{describe(recorded)}\nsigned with key {recorded.key_id}; applies from {applies} "
        f"(sha256 {hashlib.sha256(document).hexdigest()[:16]})"
    )


def _when(ms: int | None) -> str:
    if ms is None:
        return "its effective date"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _versions_held(h: Home, store: str | None, source: str) -> list[AgreementVersion]:
    """Every version of ``source``'s agreement the trust holds (events and files).

    Raises:
        wiring.SetupError: a held version cannot be read, or a file contradicts an event.
    """
    event_store = open_store(h.store_url(store))
    try:
        return wiring.trust_agreements(h, event_store).versions(source)
    finally:
        event_store.close()


def _versions(h: Home, store: str | None, source: str) -> list[AgreementVersion]:
    try:
        versions = _versions_held(h, store, source)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    if not versions:
        raise fail(f"the trust holds no agreement of {source}", Exit.NOT_SET_UP)
    return versions


def _in_force_now(versions: list[AgreementVersion]) -> AgreementVersion | None:
    now = time.time_ns() // 1_000_000
    day = dt.datetime.fromtimestamp(now / 1000, dt.UTC).date()
    for v in sorted(versions, key=lambda v: -v.agreement.version):
        start = v.applies_from_ms
        if v.agreement.in_force(day) and (start is None or start <= now):
            return v
    return None


def _summary(v: AgreementVersion, now: AgreementVersion | None) -> dict[str, Any]:
    a = v.agreement
    return {
        "source": a.source_id,
        "version": a.version,
        "origin": v.origin,
        "key_id": v.key_id,
        "received_at_ms": v.received_at_ms,
        "applies_from_ms": v.applies_from_ms,
        "in_force_from": a.in_force_from.isoformat(),
        "in_force_until": a.in_force_until.isoformat() if a.in_force_until else None,
        "in_force_now": now is not None and now.agreement.version == a.version,
        "document_sha256": hashlib.sha256(v.document).hexdigest() if v.document else None,
    }


def _pick(versions: list[AgreementVersion], version: int) -> AgreementVersion:
    for v in versions:
        if v.agreement.version == version:
            return v
    held = ", ".join(str(v.agreement.version) for v in versions)
    raise fail(f"no version {version} (held: {held})", Exit.USAGE)


@app.command("show")
def show(
    source: SourceOpt,
    version: Annotated[
        int | None, typer.Option("--version", help="This version [default: the one in force]")
    ] = None,
    original: Annotated[
        bool, typer.Option("--original", help="Print the document exactly as the source signed it")
    ] = False,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The agreement in force now (or the version asked for), in the current format."""
    versions = _versions(home_of(home), store, source)
    now = _in_force_now(versions)
    if version is not None:
        v = _pick(versions, version)
    elif now is not None:
        v = now
    else:
        v = versions[-1]
        console.print(f"no version of {source} is in force now: showing the highest held")
    if as_json:
        print(json.dumps({**_summary(v, now), "agreement": v.agreement.to_mapping()}))
        return
    if original:
        if not v.document:
            raise fail(f"version {v.agreement.version} was registered as a file", Exit.NOT_SET_UP)
        print(v.document.decode("utf-8"), end="")
        return
    s = _summary(v, now)
    signed = f"signed with key {v.key_id}" if v.origin == "signed" else "registered as a file"
    out.print(
        f"# {source} v{v.agreement.version}: {signed}; received {_when(v.received_at_ms)}; "
        f"applies from {_when(v.applies_from_ms)}; "
        f"{'in force now' if s['in_force_now'] else 'not in force now'}",
        highlight=False,
        markup=False,
    )
    print(v.agreement.to_yaml(), end="")


@app.command("history")
def history(
    source: SourceOpt, store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """Every version of the source's agreement the trust holds, lowest first."""
    versions = _versions(home_of(home), store, source)
    now = _in_force_now(versions)
    rows = [_summary(v, now) for v in versions]
    if as_json:
        print(json.dumps(rows))
        return
    t = Table("version", "origin", "key", "received", "in force from", "until", "now", title=source)
    for r, v in zip(rows, versions, strict=True):
        t.add_row(
            str(r["version"]),
            r["origin"],
            r["key_id"] or "-",
            _when(v.received_at_ms) if v.received_at_ms is not None else "-",
            r["in_force_from"],
            r["in_force_until"] or "open-ended",
            "yes" if r["in_force_now"] else "",
        )
    out.print(t)


@app.command("diff")
def diff(
    source: SourceOpt,
    from_version: Annotated[int, typer.Option("--from", help="The earlier version")],
    to_version: Annotated[int, typer.Option("--to", help="The later version")],
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """What changed between two versions, line by line in the current format (so versions
    written in different formats compare by their terms)."""
    versions = _versions(home_of(home), store, source)
    a, b = _pick(versions, from_version), _pick(versions, to_version)
    lines = list(
        difflib.unified_diff(
            a.agreement.to_yaml().splitlines(keepends=True),
            b.agreement.to_yaml().splitlines(keepends=True),
            fromfile=f"{source} v{from_version}",
            tofile=f"{source} v{to_version}",
        )
    )
    if not lines:
        out.print(f"v{from_version} and v{to_version} have the same terms")
        return
    print("".join(lines), end="")


@app.command("purposes")
def purposes(as_json: JsonOpt = False) -> None:
    """The purpose firewall: purposes a release serves only from sources whose agreement names
    them explicitly for that consumer, and why."""
    if as_json:
        print(json.dumps(dict(SENSITIVE_PURPOSES)))
        return
    t = Table("purpose", "why the default is no", title="sensitive purposes")
    for name, reason in SENSITIVE_PURPOSES.items():
        t.add_row(name, reason)
    out.print(t)
