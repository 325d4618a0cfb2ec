"""Government side: `tiptrust subscribe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from consumers.subscriber import Subscriber
from consumers.writers import ReleaseWriter
from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, LogOpt, console, fail, home_of, out, valid_name
from transport import open_log, topics
from trust.release.streams import STREAMS


def register(app: typer.Typer) -> None:
    app.command("subscribe")(subscribe)
    app.command("streams")(streams)


def streams(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """The release streams the trust declares: name, title, dimensions, k, and whether every
    margin and the total are published (with secondary suppression) or the cells only."""
    rows = [
        {
            "stream": s.name,
            "title": s.title,
            "unit": s.unit,
            "dimensions": list(s.dimensions),
            "k": s.k,
            "margins": s.margins,
        }
        for s in STREAMS.values()
    ]
    if as_json:
        print(json.dumps(rows))
        return
    t = Table("stream", "title", "dimensions", "k", "published", title="release streams")
    for r in rows:
        t.add_row(
            str(r["stream"]),
            str(r["title"]),
            " x ".join(s for s in STREAMS[str(r["stream"])].dimensions),
            str(r["k"]),
            "cells, margins, total" if r["margins"] else "cells, total",
        )
    out.print(t)


def subscribe(
    stream: Annotated[
        str,
        typer.Option(
            "--stream", callback=valid_name, help="Release stream, e.g. victims_by_sex_age_form"
        ),
    ],
    consumer: Annotated[
        str, typer.Option("--consumer", callback=valid_name, help="Your consumer id, e.g. ministry")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write releases (CSV + JSON)")],
    trust_key: Annotated[
        Path | None,
        typer.Option(
            "--trust-key", help="Trust release public key (PEM) [default: from the home's trust]"
        ),
    ] = None,
    log: LogOpt = None,
    home: HomeOpt = None,
) -> None:
    """Receive a stream's releases, verify the trust's signature, write them; refuse altered ones.

    Exits 6 (refused) when a message failed verification, or when a release arrived for a
    sequence already held with different signed content: then nothing after it is read or
    committed, and the held files stay as they were.
    """
    if stream not in STREAMS:
        raise fail(
            f"no release stream {stream!r}: the trust declares {', '.join(sorted(STREAMS))} "
            "(tiptrust streams lists them)",
            Exit.USAGE,
        )
    h = home_of(home)
    try:
        keys = wiring.release_public_keys(trust_key or h.release_keys)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    topic = topics.release(consumer, stream)
    with open_log(h.log_url(log)) as event_log:
        if topic not in event_log.list_topics(topics.RELEASE_PREFIX):
            raise fail(
                f"nothing to receive: there is no release topic {topic}. The trust has made no "
                f"release for {consumer} on {stream}: no such subscription, no source's agreement "
                "allows this consumer and purpose, or no release yet",
                Exit.NOT_SET_UP,
            )
        report = Subscriber(event_log, stream, consumer, keys, ReleaseWriter(out_dir)).run_once()
    for path in report.written:
        out.print(f"wrote {path}")
    for sequence in report.duplicates:
        out.print(f"duplicate: sequence {sequence} arrived again with the same signed bytes; kept")
    for offset, reason in report.refused:
        console.print(f"[red]refused[/red] release at offset {offset}: {escape(reason)}")
    if report.conflict is not None:
        console.print(f"[red]refused, stopped:[/red] {escape(report.conflict.message)}")
    out.print(
        f"{consumer}: {report.received} received, {len(report.written)} written, "
        f"{len(report.duplicates)} duplicate, {len(report.refused)} refused"
        + (", stopped at a conflicting release" if report.conflict is not None else "")
    )
    if report.refused or report.conflict is not None:
        raise typer.Exit(int(Exit.REFUSED))
