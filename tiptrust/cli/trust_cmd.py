"""`tiptrust trust …`: register sources, run the trust, rebuild its projections."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.progress import Progress, TextColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from tiptrust import wiring
from tiptrust.cli import agreement_cmd
from tiptrust.cli.common import (
    Exit,
    HomeOpt,
    LogOpt,
    StoreOpt,
    console,
    fail,
    home_of,
    out,
    valid_name,
)
from tiptrust.cli.principal_cmd import TokenOpt, acting, acting_in
from tiptrust.runtime import bulk_gc
from transport import TransportError, open_log
from trust.ingest.worker import IngestStats
from trust.release.publish import EmitResult
from trust.release.streams import STREAMS
from trust.runner import rebuild as rebuild_all
from trust.stewardship.principals import Action, PrincipalError, require_receiver
from trust.stewardship.release_review import ReviewError, subscription_states
from trust.stewardship.revocation import RevocationError, revoke_source_key
from trust.store.backup import BackupError, backup, restore
from trust.store.digest import combined, differing, rebuilt_digests, rebuilt_digests_meanwhile
from trust.store.eventstore import EventStore, open_store
from trust.store.vault import kek_opens

app = typer.Typer(
    help="Run the trust: register sources, ingest, release, rebuild.", no_args_is_help=True
)


@app.command("register")
def register(
    source: Annotated[
        str, typer.Option("--source", callback=valid_name, help="The source id to register")
    ],
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="The source's Ed25519 public key (PEM)")
    ] = None,
    agreement: Annotated[
        Path | None,
        typer.Option("--agreement", help="Its data-sharing agreement (YAML, any format)"),
    ] = None,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Register a source's signing key, its data-sharing agreement, or both (custodians only).

    Deny by default: a source registered without an agreement has nothing accepted until an
    agreement is registered with `--agreement`.
    """
    h = home_of(home)
    if public_key is None and agreement is None:
        raise fail("give --public-key, --agreement or both", Exit.USAGE)
    acting_in(h, store, token, Action.REGISTER_SOURCE)
    if public_key is not None:
        try:
            key = wiring.register_source(h, source, public_key, None)
        except wiring.SetupError as exc:
            raise fail(str(exc), Exit.NOT_SET_UP) from None
        out.print(f"registered {source} (key {key.key_id})")
    if agreement is None:
        out.print(
            f"no agreement registered for {source}: nothing it sends is accepted until one is "
            f"(`tiptrust trust register --source {source} --agreement FILE`)"
        )
        return
    # its first signed version when the source's key is in this home (agreement_cmd)
    agreement_cmd.register_file(h, store, source, agreement)


@app.command("revoke-key")
def revoke_key(
    source: Annotated[
        str, typer.Option("--source", callback=valid_name, help="The source whose key it is")
    ],
    key_id: Annotated[str, typer.Option("--key-id", help="The signing key to revoke")],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a source's signing key (custodians only): nothing signed with it is accepted from
    now on — envelopes still unread on the log included (the source re-sends them under its new
    key with `tiptrust publish --resend`). What was accepted before stays. Permanent.

    A running trust applies it at its next round. Exit codes: 0 revoked; 2 no such registered
    key, or revoked already; 7 refused.
    """
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        principal = acting(event_store, token, Action.REGISTER_SOURCE)
        keyring = wiring.trust_keyring(h, event_store)
        revoke_source_key(event_store, keyring, source, key_id, principal.name)
    except RevocationError as exc:
        raise fail(f"{exc} ({exc.code})", Exit.USAGE) from None
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    finally:
        event_store.close()
    out.print(f"revoked {source}'s key {key_id}: nothing it signs is accepted from now on")


class _StopFlag:
    """Set by SIGINT/SIGTERM while the trust follows, so it stops between batches."""

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: object) -> None:
            self._set = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)


def _stats_table(total: IngestStats, releases: int) -> Table:
    t = Table("messages", "accepted", "rejected", "releases", title="trust ingest")
    t.add_row(
        str(total.messages), str(total.accepted), str(sum(total.rejected.values())), str(releases)
    )
    return t


FollowOpt = Annotated[bool, typer.Option("--follow", help="Keep running after catching up")]
MaxSecondsOpt = Annotated[float | None, typer.Option("--max-seconds", help="Stop after this long")]


@contextlib.contextmanager
def _failures_as_exits() -> Iterator[None]:
    """A missing setup, a failing event log or a failing event store as the command's exit
    (nothing is lost: the effects are idempotent, so running again is safe)."""
    try:
        yield
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    except TransportError as exc:
        raise fail(
            f"the event log failed ({type(exc).__name__}): nothing was lost; run again when it is "
            "back",
            Exit.DELIVERY_FAILED,
        ) from None
    except DBAPIError as exc:
        raise fail(
            f"the event store failed ({type(exc.orig).__name__}): nothing was lost; run again "
            "when it is back",
            Exit.DELIVERY_FAILED,
        ) from None


@app.command("run")
def run(
    log: LogOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    follow: FollowOpt = False,
    max_seconds: MaxSecondsOpt = None,
    release_every: Annotated[
        float, typer.Option("--release-every", help="Seconds between release checks")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    batch: Annotated[int, typer.Option("--batch", help="Messages per store transaction")] = 1000,
    retention_every: Annotated[
        float,
        typer.Option(
            "--retention-every",
            help="Seconds between applications of the agreements' retention terms and of their "
            "envelope retention on the inbound log (0: never)",
        ),
    ] = 3600.0,
) -> None:
    """Ingest every inbound topic into the event store and emit releases that changed.

    It applies the agreements' retention terms itself (at start, then every --retention-every
    seconds): what is due is destroyed or archived de-identified as each agreement says, and
    recorded in the audit log (`tiptrust trust retention` shows what is held and due). It also
    deletes from the inbound log the envelopes it took in once past their source's envelope
    retention (agreement format 6; 7 days by default), and again when it stops.

    With --follow it keeps running (stop it with Ctrl-C or SIGTERM: it finishes the batch in hand)
    and reports each batch it ingests, what it rejected and each release it records. A failure of
    the event log or the store stops it with a clear error; nothing is lost, run it again.

    On a Kafka log, `tiptrust trust ingest` adds ingest workers beside it (one per partition at
    most); on the embedded log this command is the only ingest worker (single-writer mode).
    """
    h = home_of(home)
    stop = _StopFlag()
    with _failures_as_exits(), open_log(h.log_url(log)) as event_log:
        event_store = open_store(h.store_url(store))
        runner = wiring.build_trust_runner(
            h,
            event_log,
            event_store,
            release_every_s=release_every,
            batch=batch,
            retention_every_s=retention_every if retention_every > 0 else None,
        )
        total = IngestStats()
        with Live(
            _stats_table(total, 0),
            console=console,
            transient=True,
            auto_refresh=not (as_json or follow),
        ) as live:

            def on_step(s: IngestStats) -> None:
                total.add(s)
                if follow and s.messages:
                    rejected = ", ".join(f"{n} {r}" for r, n in sorted(s.rejected.items()))
                    console.print(
                        f"ingested {s.messages}: {s.accepted} accepted"
                        + (f", rejected {rejected}" if rejected else "")
                    )
                elif not as_json and not follow:
                    live.update(_stats_table(total, 0))

            def on_release(r: EmitResult) -> None:
                if follow:
                    rel = r.release
                    console.print(
                        f"released {rel.metadata.get('consumer', '')}/{rel.stream} "
                        f"#{rel.sequence}: {rel.source_count} source(s), k={rel.k}"
                    )

            with stop.installed():
                summary = runner.run(
                    until_caught_up=not follow,
                    max_seconds=max_seconds,
                    on_step=on_step,
                    on_release=on_release,
                    should_stop=stop.is_set,
                )
        runner.worker.close()
        event_store.close()
    result = {
        "messages": summary.ingest.messages,
        "accepted": summary.ingest.accepted,
        "rejected": dict(summary.ingest.rejected),
        "releases": [f"{r.release.stream}#{r.release.sequence}" for r in summary.releases],
        "caught_up": summary.ingest.caught_up,
    }
    if as_json:
        print(json.dumps(result))
    else:
        out.print(result)


@app.command("ingest")
def ingest(
    log: LogOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    follow: FollowOpt = False,
    max_seconds: MaxSecondsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    batch: Annotated[int, typer.Option("--batch", help="Messages per store transaction")] = 1000,
) -> None:
    """One more ingest worker beside `trust run`, to spread ingest over processes (Kafka only).

    Every worker (this command, and the one inside `trust run`) is a member of the consumer group
    `trust-ingest`: on Kafka the group shares the inbound topics' partitions among them, so
    verifying, decrypting, decoding and sealing run in parallel — up to one worker per partition.
    Their appends take the store's single-writer lock in turn (seq order stays commit order), and
    each checks the store's positions under that lock, so a message is stored once whichever
    worker read it: a worker that stops or is killed hands its partitions to the others and nothing
    is lost or stored twice. It runs no followers and no releases: those stay with `trust run`.

    The embedded SQLite log gives every consumer every partition (single-writer mode): there,
    `trust run` alone ingests, and this command refuses to start.

    Without --follow it stops once its partitions are caught up. Exit codes: 0 done; 2 a SQLite
    log; 4 the log or the store failed (nothing lost: run it again); 5 not set up.
    """
    h = home_of(home)
    log_url = h.log_url(log)
    if not log_url.lower().startswith("kafka://"):
        raise fail(
            "the embedded log has one reader per group (single-writer mode): `tiptrust trust run` "
            "ingests alone there; more ingest workers need a Kafka log (--log kafka://…)",
            Exit.USAGE,
        )
    stop = _StopFlag()
    total = IngestStats()
    with _failures_as_exits(), open_log(log_url) as event_log:
        event_store = open_store(h.store_url(store))
        try:
            runner = wiring.build_trust_runner(
                h, event_log, event_store, batch=batch, retention_every_s=None
            )
            worker = runner.worker
            deadline = None if max_seconds is None else time.monotonic() + max_seconds
            with stop.installed():
                try:
                    while not stop.is_set():
                        s = worker.step()
                        total.add(s)
                        if follow and s.messages:
                            console.print(f"ingested {s.messages}: {s.accepted} accepted")
                        if not follow and s.messages == 0 and s.caught_up:
                            total.caught_up = True
                            break
                        if deadline is not None and time.monotonic() > deadline:
                            break
                finally:
                    worker.close()
        finally:
            event_store.close()
    result = {
        "messages": total.messages,
        "accepted": total.accepted,
        "rejected": dict(total.rejected),
        "skipped": total.skipped,
        "caught_up": total.caught_up,
    }
    if as_json:
        print(json.dumps(result))
    else:
        out.print(result)


@app.command("population")
def population(
    file: Annotated[Path, typer.Argument(help="CSV with columns year, sex, age_group, population")],
    source: Annotated[
        str, typer.Option("--source", help="Where the figures come from (quoted in releases)")
    ],
    home: HomeOpt = None,
) -> None:
    """Give the population denominators of rate streams (sdg_16_2_2): checked first, every
    problem reported by row and column; nothing changes unless all is well."""
    from trust.release.population import PopulationError, save_population

    h = home_of(home)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", Exit.USAGE) from None
    try:
        given = save_population(h.population_dir, data, source)
    except PopulationError as exc:
        for problem in exc.problems:
            console.print(f"[red]{problem}[/red]")
        raise fail("population file refused; nothing changed", Exit.USAGE) from None
    out.print(f"population in force: years {', '.join(given.years())} (source: {given.source})")


@app.command("rebuild")
def rebuild(store: StoreOpt = None, home: HomeOpt = None) -> None:
    """Rebuild every projection from the event store and check it equals the live one.

    The check compares a digest of each table the rebuild rewrites, taken before and after,
    streamed row by row (``trust/store/digest.py``): memory stays flat whatever the store's
    size. The state before is hashed on another thread, from a snapshot taken before the
    rebuild starts, while the rebuild runs.
    """
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        with bulk_gc():  # one pass making next to no cycles (tiptrust.runtime)
            taking = rebuilt_digests_meanwhile(event_store.engine)
            try:
                replayed = rebuild_all(event_store, STREAMS)
            finally:
                before = taking()  # the state before, hashed meanwhile
            after = rebuilt_digests(event_store.engine)
    finally:
        event_store.close()
    changed = differing(before, after)
    out.print(
        f"replayed {replayed} events; projections {combined(before)} → {combined(after)}: "
        f"{'identical' if not changed else 'DIFFERENT in ' + ', '.join(changed)}"
    )
    if changed:
        raise typer.Exit(int(Exit.REFUSED))


@app.command("backup")
def backup_cmd(
    to: Annotated[Path, typer.Option("--out", help="The backup file to write (never overwritten)")],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON")] = False,
) -> None:
    """Write a consistent copy of the whole store (custodians only), while the trust runs.

    The copy holds identifiers only sealed under keys wrapped by the vault's key-encryption key,
    which is NOT in it: keep the KEK apart (it is in HOME/trust/kek.bin). A backup made before a
    KEK rotation (every erasure triggers one) opens under no key the trust still holds — so an
    erasure survives every backup, and such a backup no longer restores: back up after each
    rotation. Exit codes: 0 written; 2 the file exists; 7 refused.
    """
    event_store = open_store(home_of(home).store_url(store))
    try:
        acting(event_store, token, Action.MANAGE_STORE)
        with _table_progress("backup") as progress:
            manifest = backup(event_store.engine, to, progress=progress)
    except BackupError as exc:
        raise fail(f"{exc} ({exc.code})", Exit.USAGE) from None
    finally:
        event_store.close()
    if as_json:
        print(json.dumps({"file": str(to), **manifest.to_json()}))
        return
    out.print(
        f"backed up {manifest.events} events (up to seq {manifest.last_seq}) and "
        f"{len(manifest.tables)} tables to {to}; the vault's key-encryption key is not in it"
    )


@app.command("restore")
def restore_cmd(
    source: Annotated[Path, typer.Option("--from", help="A file `tiptrust trust backup` wrote")],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Restore a backup into an empty store (this home's, or --store), then bring it to this
    version's schema.

    The file must be an unaltered backup; the token must be a custodian's *in the backup* (the
    empty store knows nobody); the vault's key-encryption key of this home must open it.
    Anything else leaves the target empty. Exit codes: 0 restored; 2 not a backup, altered,
    newer, or the target holds data; 5 the KEK does not open the backup (made before a
    rotation); 7 refused.
    """
    h = home_of(home)
    if not h.kek.exists():
        raise fail("no vault key in this home: run `tiptrust keys trust-init`", Exit.NOT_SET_UP)
    provider = wiring.key_provider(h)

    def vet(engine: Engine) -> None:
        acting(EventStore(engine), token, Action.MANAGE_STORE)
        staged = provider.staged_key_encryption_key()
        if not kek_opens(engine, provider.key_encryption_key()) and not (
            staged is not None and kek_opens(engine, staged)
        ):
            raise fail(
                "this home's key-encryption key does not open the backup's vault: it was made "
                "before a KEK rotation, whose old key is destroyed (erasures since are final). "
                "Restore a backup made after the last rotation",
                Exit.NOT_SET_UP,
            )

    try:
        with _table_progress("restore") as progress:
            manifest = restore(source, h.store_url(store), progress=progress, vet=vet)
    except BackupError as exc:
        raise fail(f"{exc} ({exc.code})", Exit.USAGE) from None
    out.print(
        f"restored {manifest.events} events (up to seq {manifest.last_seq}, backed up "
        f"{manifest.created_at} from {manifest.source_dialect}); run `tiptrust trust run` to go on"
    )


@contextlib.contextmanager
def _table_progress(what: str) -> Iterator[Callable[[str, int], None]]:
    """A progress line per table copied (rows so far), on stderr."""
    with Progress(
        TextColumn(f"[bold]{what}[/bold] {{task.description}}"), console=console, transient=True
    ) as bar:
        task = bar.add_task("", total=None)

        def step(table: str, rows: int) -> None:
            bar.update(task, description=f"{table}: {rows:,} rows")

        yield step


@app.command("status")
def status(store: StoreOpt = None, home: HomeOpt = None) -> None:
    """Counts of stored events by type, rejections by reason, and subscriptions by status (one
    awaiting a trustee's approval receives nothing yet)."""
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        statuses = Counter(s.status.value for s in subscription_states(event_store))
        out.print(
            {
                "events": event_store.count_by_type(),
                "rejected": event_store.rejection_counts(),
                "subscriptions": dict(sorted(statuses.items())),
            }
        )
    finally:
        event_store.close()


subscription_app = typer.Typer(
    help="Who receives which release stream, for which purpose.", no_args_is_help=True
)
app.add_typer(subscription_app, name="subscription")


@subscription_app.command("add")
def subscription_add(
    consumer: Annotated[
        str, typer.Option("--consumer", callback=valid_name, help="Who receives the releases")
    ],
    stream: Annotated[str, typer.Option("--stream", help="Which release stream")],
    purpose: Annotated[
        str,
        typer.Option("--purpose", callback=valid_name, help="For which purpose, e.g. statistics"),
    ],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Ask for a consumer to receive a stream for a purpose (replaces its earlier subscription to
    the stream, if any). Releases go out once a trustee other than you approved it
    (`tiptrust trust subscription approve CONSUMER/STREAM`).

    Custodians and trustees only; the consumer must be a registered principal (role consumer or
    researcher; record-level streams go to researchers only). Releases go to
    tip.release.<consumer>.<stream> and count only the sources whose agreement allows that
    consumer and purpose.
    """
    event_store = open_store(home_of(home).store_url(store))
    try:
        requester = acting(event_store, token, Action.MANAGE_SUBSCRIPTIONS)
        require_receiver(event_store, consumer)
        state = wiring.add_subscription(event_store, consumer, stream, purpose, requester.name)
    except (PrincipalError, ReviewError) as exc:
        raise fail(f"{exc} ({exc.code})", Exit.USAGE) from None
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    finally:
        event_store.close()
    out.print(
        f"asked for {consumer} to receive {stream} for {purpose} ({state.id}): awaiting approval "
        f"by a trustee other than {requester.name}"
    )


@subscription_app.command("approve")
def subscription_approve(
    subscription: Annotated[
        str, typer.Argument(help="CONSUMER/STREAM, as `trust subscription list` shows it")
    ],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Approve a subscription (or the new definition of its stream) as a trustee who did not ask
    for it: its releases go out from the next round on. Every approval is an event.

    Exit codes: 0 approved; 2 no such subscription, already in force, or you asked for it
    yourself; 7 refused (not a trustee).
    """
    consumer, sep, stream = subscription.partition("/")
    if not sep or not consumer or not stream:
        raise fail(f"{subscription!r}: give CONSUMER/STREAM", Exit.USAGE)
    event_store = open_store(home_of(home).store_url(store))
    try:
        approver = acting(event_store, token, Action.APPROVE_RELEASES)
        state = wiring.approve_subscription(event_store, consumer, stream, approver)
    except ReviewError as exc:
        raise fail(f"{exc} ({exc.code})", Exit.USAGE) from None
    finally:
        event_store.close()
    out.print(f"approved {state.id} for {state.purpose}: releases go out from the next round")


@subscription_app.command("remove")
def subscription_remove(
    consumer: Annotated[str, typer.Option("--consumer", callback=valid_name)],
    stream: Annotated[str, typer.Option("--stream")],
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """End a consumer's subscription to a stream (no further releases are made for it).
    Custodians and trustees only."""
    event_store = open_store(home_of(home).store_url(store))
    try:
        acting(event_store, token, Action.MANAGE_SUBSCRIPTIONS)
        wiring.remove_subscription(event_store, consumer, stream)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    finally:
        event_store.close()
    out.print(f"removed {consumer}'s subscription to {stream}")


@subscription_app.command("list")
def subscription_list(
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Every subscription: in force, or awaiting a trustee's approval (new, or its stream's
    definition changed since it was approved)."""
    event_store = open_store(home_of(home).store_url(store))
    try:
        states = subscription_states(event_store)
    finally:
        event_store.close()
    rows = [
        {
            "id": s.id,
            "consumer": s.consumer,
            "stream": s.stream,
            "purpose": s.purpose,
            "topic": s.subscription().topic,
            "status": s.status.value,
            "requested_by": s.requested_by or None,
            "approved_by": s.approved_by,
        }
        for s in states
    ]
    if as_json:
        print(json.dumps(rows))
        return
    t = Table("id", "purpose", "status", "asked by", "approved by", title="subscriptions")
    for r in rows:
        t.add_row(
            r["id"], r["purpose"], r["status"], r["requested_by"] or "-", r["approved_by"] or "-"
        )
    out.print(t if rows else "no subscriptions")


@app.command("quarantine")
def quarantine(
    store: StoreOpt = None,
    home: HomeOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", help="Show at most this many, newest first")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Every refused inbound message: where it was read and why (reason code, field path), never
    its content. Messages on topics that name no valid source appear here only (no receipt)."""
    event_store = open_store(home_of(home).store_url(store))
    try:
        entries = event_store.quarantine(limit)
    finally:
        event_store.close()
    if as_json:
        print(json.dumps([dataclasses.asdict(e) for e in entries]))
        return
    t = Table(
        "seq", "source", "reason", "field", "topic", "partition", "offset", title="quarantine"
    )
    for e in entries:
        t.add_row(
            str(e.seq),
            e.source_id or "-",
            e.reason,
            e.field_path or "",
            e.topic,
            str(e.partition),
            str(e.offset),
        )
    out.print(t if entries else "the quarantine is empty")


@app.command("retention")
def retention(
    apply_changes: Annotated[
        bool, typer.Option("--apply", help="Destroy or archive what is due (default: dry run)")
    ] = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """The end of each agreement's retention term: per source, how many cases and victim
    records are held and due, and what happens to them (counts only, never a case or a value).
    With --apply (custodians only): due cases are destroyed through the erasure path (final when
    this returns: linkage, erasure and the KEK rotation are run) or archived de-identified, as
    each agreement says. See trust/stewardship/retention.py."""
    import time

    from trust.follow import follow
    from trust.stewardship import retention as kept
    from trust.stewardship.erasure import Erasure
    from trust.stewardship.policy import Policy

    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        if apply_changes:
            acting(event_store, token, Action.APPLY_RETENTION)
        agreements = wiring.trust_agreements(h, event_store)
        now_ms = time.time_ns() // 1_000_000
        if not apply_changes:
            found = kept.review(event_store, agreements, now_ms)
        else:
            the_vault = wiring.vault(h, event_store)
            found = kept.apply(event_store, agreements, now_ms, the_vault)
            if any(f.cases_due for f in found):  # final now, as the running trust would make it
                follow(event_store, wiring.resolver(the_vault, Policy(agreements), event_store))
                follow(event_store, Erasure(the_vault))
                wiring.rotate_kek_if_due(the_vault, wiring.key_provider(h), event_store)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    finally:
        event_store.close()
    rows = [{**dataclasses.asdict(f), "action": f.action} for f in found]
    if as_json:
        print(json.dumps({"applied": apply_changes, "sources": rows}))
        return
    title = "retention applied" if apply_changes else "retention (dry run: --apply to act)"
    t = Table(
        "source", "agreement", "term", "cases held", "due", "victims due", "action", title=title
    )
    for f in found:
        version = "-" if f.agreement_version is None else f"v{f.agreement_version}"
        t.add_row(
            f.source_id,
            version,
            f.term or "-",
            str(f.cases_held),
            str(f.cases_due),
            str(f.victims_due),
            f.action,
        )
    out.print(t if rows else "no source holds data or has an agreement")
