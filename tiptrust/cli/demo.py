"""`tiptrust demo`: the whole vertical slice in one command (the README's first command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from tiptrust.cli.common import HomeOpt, LogOpt, console, home_of, out
from transport import display_url


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    home: HomeOpt = None,
    log: LogOpt = None,
    persons: Annotated[
        int, typer.Option("--persons", help="Size of the simulated hidden population")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed")] = 7,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object")
    ] = False,
) -> None:
    """Agencies publish encrypted, signed records; the trust ingests and releases; a ministry subscribes."""
    from tiptrust.demo import run_demo

    h = home_of(home)
    with console.status("starting", spinner="dots") as status:

        def step(message: str) -> None:
            status.update(message)
            if not as_json:
                console.log(message)

        summary = run_demo(Path(h.root), log_url=log, persons=persons, seed=seed, step=step)
    if as_json:
        print(json.dumps(summary.to_json()))
        return
    agencies = Table(
        "agency", "rows", "published events", "rows rejected at source", title="agencies"
    )
    for source, s in sorted(summary.by_source.items()):
        agencies.add_row(
            source, str(s["rows"]), str(s["published_events"]), str(s["rows_rejected"])
        )
    out.print(agencies)
    trust = Table("reason", "messages", title="trust receipts (rejected, kept, sender told why)")
    for reason, n in sorted(summary.rejected.items()):
        trust.add_row(reason, str(n))
    out.print(trust)
    out.print(
        Panel.fit(
            f"published {summary.published} events · accepted {summary.accepted} · "
            f"rejected {sum(summary.rejected.values())} · releases {summary.releases}\n"
            f"persons after linkage {summary.persons} (victim records "
            f"{summary.victim_records}; the simulator's truth: {summary.true_persons} distinct "
            f"persons; {summary.reviews_open} records await review)\n"
            f"log {display_url(summary.log_url)}\nministry files in {summary.out_dir}\n"
            + "\n".join(summary.release_files)
            + f"\n{summary.seconds:.1f} s",
            title="tiptrust demo",
        )
    )
    out.print(
        "the demo trust's custodian token, shown once (give it through TIPTRUST_TOKEN to "
        f"`tiptrust link review … --home {h.root / 'demo'}`):"
    )
    print(summary.custodian_token)
