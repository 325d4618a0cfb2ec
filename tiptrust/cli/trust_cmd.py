"""`tiptrust trust …`: register sources, run the trust, rebuild its projections."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, LogOpt, StoreOpt, console, fail, home_of, out
from transport import open_log
from trust.ingest.worker import IngestStats
from trust.stewardship.agreement import Agreement, AgreementError, load_agreement
from trust.store.eventstore import open_store
from trust.store.projections import rebuild as rebuild_projections
from trust.store.projections import snapshot

app = typer.Typer(
    help="Run the trust: register sources, ingest, release, rebuild.", no_args_is_help=True
)


def default_agreement(source_id: str) -> Agreement:
    return Agreement(
        source_id=source_id,
        version=1,
        in_force_from=dt.date(2000, 1, 1),
        in_force_until=None,
        fields_shared=("$",),
        consumers_allowed=("ministry",),
        min_cell_size=10,
    )


@app.command("register")
def register(
    source: Annotated[str, typer.Option("--source", help="The source id to register")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The source's Ed25519 public key (PEM)")
    ],
    agreement: Annotated[
        Path | None, typer.Option("--agreement", help="Its data-sharing agreement (YAML)")
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Register a source's signing key and data-sharing agreement with the trust."""
    h = home_of(home)
    try:
        a = load_agreement(agreement) if agreement else default_agreement(source)
    except AgreementError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    if a.source_id != source:
        raise fail(f"agreement is for {a.source_id}, not {source}", Exit.USAGE)
    key = wiring.register_source(h, source, public_key, a)
    out.print(
        f"registered {source} (key {key.key_id}, agreement v{a.version} from {a.in_force_from})"
    )


def _stats_table(total: IngestStats, releases: int) -> Table:
    t = Table("messages", "accepted", "rejected", "releases", title="trust ingest")
    t.add_row(
        str(total.messages), str(total.accepted), str(sum(total.rejected.values())), str(releases)
    )
    return t


@app.command("run")
def run(
    log: LogOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep running after catching up")
    ] = False,
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="Stop after this long")
    ] = None,
    release_every: Annotated[
        float, typer.Option("--release-every", help="Seconds between release checks")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    batch: Annotated[int, typer.Option("--batch", help="Messages per store transaction")] = 1000,
) -> None:
    """Ingest every inbound topic into the event store and emit releases that changed."""
    h = home_of(home)
    try:
        with open_log(h.log_url(log)) as event_log:
            event_store = open_store(h.store_url(store))
            runner = wiring.build_trust_runner(
                h, event_log, event_store, release_every_s=release_every, batch=batch
            )
            total = IngestStats()
            with Live(
                _stats_table(total, 0), console=console, transient=True, auto_refresh=not as_json
            ) as live:

                def on_step(s: IngestStats) -> None:
                    total.add(s)
                    if not as_json:
                        live.update(_stats_table(total, 0))

                summary = runner.run(
                    until_caught_up=not follow, max_seconds=max_seconds, on_step=on_step
                )
            runner.worker.close()
            event_store.close()
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
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


@app.command("rebuild")
def rebuild(store: StoreOpt = None, home: HomeOpt = None) -> None:
    """Rebuild every projection from the event store and check it equals the live one."""
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    before = snapshot(event_store.engine)
    replayed = rebuild_projections(event_store.engine)
    after = snapshot(event_store.engine)
    event_store.close()

    def digest(s: dict[str, list[tuple[object, ...]]]) -> str:
        return hashlib.sha256(json.dumps(s, sort_keys=True, default=str).encode()).hexdigest()[:16]

    same = before == after
    out.print(
        f"replayed {replayed} events; projections {digest(before)} → {digest(after)}: {'identical' if same else 'DIFFERENT'}"
    )
    if not same:
        raise typer.Exit(int(Exit.REFUSED))


@app.command("status")
def status(store: StoreOpt = None, home: HomeOpt = None) -> None:
    """Counts of stored events by type and rejections by reason."""
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    out.print({"events": event_store.count_by_type(), "rejected": event_store.rejection_counts()})
    event_store.close()
