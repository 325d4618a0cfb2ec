"""Government side: `tiptrust streams`, `tiptrust subscribe`, `tiptrust chart`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from consumers.errors import ConsumerReason, ReleaseFileError
from consumers.subscriber import Subscriber
from consumers.writers import CHARTS, ReleaseWriter, read_release_file
from schemas.release import Release, ReleaseRejected, verify_release
from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, LogOpt, console, fail, home_of, out, valid_name
from tiptrust.cli.principal_cmd import TokenOpt, acting_in, runs_the_trust
from transport import open_log, topics
from trust.release.streams import CATALOGUE as STREAMS  # count and estimate streams


def register(app: typer.Typer) -> None:
    app.command("subscribe")(subscribe)
    app.command("streams")(streams)
    app.command("chart")(chart)


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
            "estimate": s.estimate is not None,
            "synthetic": s.synthetic is not None,
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
            "estimate and its interval"
            if r["estimate"]
            else "synthetic records (k-anonymous)"
            if r["synthetic"]
            else "cells, margins, total"
            if r["margins"]
            else "cells, total",
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
    charts: Annotated[
        bool,
        typer.Option(
            "--charts", help="Also draw each release's charts (PNG and SVG) into <stream>/charts/"
        ),
    ] = False,
    log: LogOpt = None,
    home: HomeOpt = None,
    token: TokenOpt = None,
) -> None:
    """Receive a stream's releases, verify the trust's signature, write them; refuse altered ones.

    In a home that runs the trust, only the consumer itself receives: the command needs the
    token of the principal named --consumer (exit 7 otherwise). On a ministry's own machine the
    log's access control decides who reads its topics.

    Each release is written as NNNNNN.csv, .metadata.json, .parquet and .json beside a
    README.txt that explains the folder; with --charts also its charts (as `tiptrust chart`).

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
    if runs_the_trust(h):
        from trust.stewardship.principals import Action

        acting_in(h, None, token, Action.RECEIVE_RELEASES, consumer=consumer)
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
        report = Subscriber(
            event_log, stream, consumer, keys, ReleaseWriter(out_dir, charts=charts)
        ).run_once()
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


def held_release(release_file: Path, trust_key: Path | None) -> Release:
    """A release file a consumer holds, its signature verified first when ``trust_key`` is given;
    else exit 2 (no such file), 5 (the key cannot be read) or 6 (not a release, or refused)."""
    try:
        release = read_release_file(release_file)
    except ReleaseFileError as exc:
        missing = exc.code is ConsumerReason.RELEASE_FILE_MISSING
        raise fail(exc.message, Exit.USAGE if missing else Exit.REFUSED) from None
    if trust_key is not None:
        try:
            verify_release(release.encoded(), wiring.release_public_keys(trust_key))
        except wiring.SetupError as exc:
            raise fail(str(exc), Exit.NOT_SET_UP) from None
        except ReleaseRejected as exc:
            raise fail(f"{release_file}: {exc.message}", Exit.REFUSED) from None
    return release


def chart(
    release_file: Annotated[
        Path,
        typer.Argument(
            metavar="RELEASE",
            help="A release NNNNNN.json written by `tiptrust subscribe`",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the charts [default: charts/ beside RELEASE]"),
    ] = None,
    counts: Annotated[
        bool,
        typer.Option("--counts", help="Counts instead of shares (rates stay rates)"),
    ] = False,
    trust_key: Annotated[
        Path | None,
        typer.Option(
            "--trust-key",
            help="Verify the release's signature with this trust release public key (PEM) first",
        ),
    ] = None,
) -> None:
    """Draw a release's charts as PNG and SVG: shares (or rates) by each dimension and, for a
    release by year, each category's share of each year; suppressed numbers drawn as no data;
    title, caveat, source, date and k on every chart.

    Exits 2 when RELEASE does not exist, 6 when it is not a release or its signature fails.
    """
    release = held_release(release_file, trust_key)
    from consumers.charts import write_charts  # matplotlib: only for this command

    folder = out_dir if out_dir is not None else release_file.parent / CHARTS
    for path in write_charts(release, folder, counts=counts):
        out.print(f"wrote {path}")
