"""Agency-side commands: `tiptrust simulate`, `tiptrust publish`, `tiptrust notify`, `tiptrust receipts`."""

from __future__ import annotations

import json
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.mapping import MappingError
from producers.publisher import PublishReport
from producers.readers import InputOptions, ReaderError
from producers.simulate import simulate as run_simulation
from producers.workflow import (
    consent_withdrawal,
    disposal_request,
    publish_export,
    publish_messages,
    read_export,
    retraction,
)
from schemas.receipt import Receipt, ReceiptRejected, verify_receipt
from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, LogOpt, console, fail, home_of, out, valid_name
from tiptrust.cli.principal_cmd import TokenOpt, acting_in, runs_the_trust
from transport import open_log, topics
from transport.errors import TransportError


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("publish")(publish)
    app.command("notify")(notify)
    app.command("receipts")(receipts)


def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the agencies' exports")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files)")] = 1,
    persons: Annotated[int, typer.Option("--persons", help="Size of the hidden population")] = 2000,
    home: HomeOpt = None,
) -> None:
    """Simulate a hidden population and five agencies' exports, mapping files and agreements."""
    summary = run_simulation(seed, persons, out_dir)
    table = Table("source", "rows")
    for source, rows in sorted(summary.rows.items()):
        table.add_row(source, str(rows))
    out.print(table)
    out.print(
        f"{summary.persons} persons in {summary.events} events → {out_dir} (truth in truth.csv)"
    )


def publish_rows(
    home_dir: str | None,
    source: str,
    input_path: Path,
    mapping_path: Path,
    log_url: str | None,
    show_progress: bool,
    resend: bool = False,
    options: InputOptions | None = None,
) -> tuple[PublishReport, int, dict[str, int]]:
    """Map, validate and publish one export; returns the report, the number of rows read and the
    values that took a field's ``default:`` code, by target path.

    A thin wrapper over :func:`producers.workflow.publish_export` that finds the keys in a home.
    """
    h = home_of(home_dir)
    export = read_export(source, input_path, mapping_path, options)
    setup = wiring.source_setup(h, source)
    with Progress(
        TextColumn(f"[bold]{source}[/bold] publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
        transient=True,
    ) as progress:
        # the cases the export holds (known once read; a withheld case never advances the bar)
        task = progress.add_task("publish", total=export.cases)
        report = publish_export(
            setup,
            h.log_url(log_url),
            export,
            resend=resend,
            on_progress=lambda n: progress.advance(task, n),
        )
    return report, export.rows_read, export.defaulted


EncodingOpt = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="The export's text encoding (utf-8, utf-16, cp1252, latin-1 …) "
        "[default: the mapping's, else detected: UTF-8 with or without BOM, UTF-16]",
    ),
]
DelimiterOpt = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        help="CSV delimiter: one character, or tab [default: the mapping's, else detected "
        "among , ; tab |]",
    ),
]
SheetOpt = Annotated[
    str | None,
    typer.Option("--sheet", help=".xlsx: the sheet to read, by name [default: the first]"),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="csv, odk, xlsx or jsonl [default: the mapping's, else by extension; odk when the "
        "header is an ODK/XLSForm export's]",
    ),
]


# --- publish --watch: unattended publishing (the watcher is producers/watch.py) -----------------

WatchOpt = Annotated[
    Path | None,
    typer.Option(
        "--watch",
        metavar="DIR",
        help="Publish, unattended, every export that lands in DIR; file it in DIR/done/ or "
        "DIR/failed/ with a report",
    ),
]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.1, help="--watch: seconds between looks at DIR")
]
SettleOpt = Annotated[
    float,
    typer.Option(
        "--settle", min=0.0, help="--watch: seconds a file must stay unchanged before it is taken"
    ),
]
OnceOpt = Annotated[
    bool, typer.Option("--once", help="--watch: take what is there now, then exit (cron, tests)")
]


def publish_watch(
    home_dir: str | None,
    source: str,
    folder: Path,
    mapping_path: Path,
    log_url: str | None,
    options: InputOptions,
    interval: float,
    settle: float,
    once: bool,
    as_json: bool,
) -> None:
    """`publish --watch`: run the folder watcher until SIGTERM/SIGINT, or one look (``once``).

    One status line per filed export (or its report as one JSON line); a log outage is said once
    when it starts, the file waiting in ``.processing/`` for the next look.
    """
    import signal
    import threading

    from rich.markup import escape

    from producers.watch import Cycle, Watcher, WatchError

    h = home_of(home_dir)
    try:
        setup = wiring.source_setup(h, source)
        watcher = Watcher(
            setup, h.log_url(log_url), mapping_path, folder, options=options, settle=settle
        )
        watcher.lock()
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    except WatchError as exc:
        raise fail(str(exc), Exit.REFUSED if exc.code == "busy" else Exit.USAGE) from None
    outage: list[str | None] = [None]

    def show(cycle: Cycle) -> None:
        for r in cycle.filed:
            if as_json:
                print(json.dumps(r.to_json()), flush=True)
                continue
            colour = {"published": "green", "partly_published": "yellow"}.get(r.status, "red")
            detail = (
                r.error["code"]
                if r.error
                else f"{r.rows_read} rows, {r.rows_published} published, {r.rows_withheld} withheld"
            )
            again = " (finished after a restart)" if r.recovered else ""
            out.print(
                f"[{colour}]{r.status}[/{colour}] {escape(r.file)}: {detail} → "
                f"{escape(r.moved_to)}{again}"
            )
        if cycle.delivery_failed and cycle.delivery_failed != outage[0]:
            console.print(
                f"[yellow]the log did not acknowledge ({cycle.delivery_failed}); the export "
                "waits in .processing/ and is tried again at the next look[/yellow]"
            )
        outage[0] = cycle.delivery_failed

    stop = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, lambda _n, _f: stop.set()) for s in signals}
    try:
        if once:
            cycle = watcher.run_once(stop)
            show(cycle)
            if cycle.unsettled and not as_json:
                out.print(f"{cycle.unsettled} file(s) still changing: left for the next look")
        else:
            if not as_json:
                out.print(
                    f"watching {escape(str(folder))} for {source} every {interval:g} s "
                    f"(a file is taken after {settle:g} s unchanged); SIGTERM or Ctrl-C stops"
                )
            watcher.run(stop, interval, show)
            return
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        watcher.unlock()
    if cycle.delivery_failed:
        raise typer.Exit(int(Exit.DELIVERY_FAILED))
    if any(r.status != "published" for r in cycle.filed):
        raise typer.Exit(int(Exit.ROWS_REJECTED))


def publish(
    source: Annotated[
        str, typer.Option("--source", callback=valid_name, help="Your registered source id")
    ],
    mapping_path: Annotated[Path, typer.Option("--mapping", help="The mapping file (MAP.yaml)")],
    input_path: Annotated[
        Path | None,
        typer.Option("--input", help="The agency export (.csv, .xlsx or .jsonl); or --watch"),
    ] = None,
    log: LogOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object")
    ] = False,
    resend: Annotated[
        bool,
        typer.Option(
            "--resend",
            help="Send every valid row again, even if already sent to this log (same event ids)",
        ),
    ] = False,
    encoding: EncodingOpt = None,
    delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None,
    input_format: FormatOpt = None,
    watch: WatchOpt = None,
    interval: IntervalOpt = 10.0,
    settle: SettleOpt = 2.0,
    once: OnceOpt = False,
) -> None:
    """Validate every row, then publish the good ones encrypted and signed; report the bad ones.

    Rows already sent to this log (--log) are not sent again, unless --resend: use it when the
    trust refused events for a reason you have since fixed (e.g. no agreement in force yet; see
    `tiptrust receipts`). --resend seals every valid row afresh (new batch, fresh encryption) with
    the event ids it had, and sends it again: the trust accepts what it refused before, and
    answers what it had already accepted with a duplicate-event receipt (it keeps one copy).

    Exit codes: 0 all published; 3 some rows rejected (the rest published); 4 the log did not
    acknowledge (kept in the outbox, resent on the next run); 5 not set up; 2 bad mapping or input
    (a mapped column missing from the export included: nothing is sent).

    --watch DIR publishes, unattended, every export that lands in DIR and files it in DIR/done/
    or DIR/failed/ with a report beside it (see `producers/watch.md`); --once looks once and
    exits: 4 if a file waits for the log, 3 if a file had rows withheld or failed, else 0.
    """
    options = InputOptions(encoding, delimiter, sheet, input_format)
    if watch is not None:
        if input_path is not None or resend:
            raise fail("--watch takes no --input and no --resend", Exit.USAGE)
        publish_watch(
            home, source, watch, mapping_path, log, options, interval, settle, once, as_json
        )
        return
    if input_path is None:
        raise fail("give --input FILE, or --watch DIR", Exit.USAGE)
    try:
        report, rows, defaulted = publish_rows(
            home,
            source,
            input_path,
            mapping_path,
            log,
            show_progress=not as_json,
            resend=resend,
            options=options,
        )
    except (MappingError, ReaderError) as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    except TransportError as exc:
        raise fail(
            f"the log did not acknowledge ({exc.code}); sealed events kept in the outbox",
            Exit.DELIVERY_FAILED,
        ) from None
    problems = sorted(report.problems, key=lambda p: (p.row or 0, p.path))
    if as_json:
        print(
            json.dumps(
                {
                    "source": source,
                    "rows": rows,
                    "rows_published": report.rows_published,
                    "rows_rejected": len(report.rejected_rows),
                    "events_published": report.published,
                    "events_unchanged": report.unchanged,
                    "events_resent": report.resent,
                    "events_republished": report.republished,
                    "defaulted": defaulted,
                    "problems": [
                        {
                            "row": p.row,
                            "field": p.path,
                            "reason": p.code.value,
                            "expected": p.expected,
                        }
                        for p in problems
                    ],
                }
            )
        )
    else:
        if problems:
            table = Table(
                "row",
                "field",
                "reason",
                "expected",
                title=f"{len(report.rejected_rows)} rows not published",
            )
            for p in problems[:200]:
                table.add_row(str(p.row), p.path, p.code.value, p.expected)
            console.print(table)
            if len(problems) > 200:
                console.print(f"… and {len(problems) - 200} more problems")
        for path, n in sorted(defaulted.items()):
            console.print(f"{path}: {n} values not in the mapping's codes took its default code")
        out.print(
            f"{source}: {rows} rows read, {report.rows_published} published as {report.published} events, "
            f"{report.unchanged} unchanged since last run, {report.resent} resent from the outbox, "
            + (f"{report.republished} sent again (--resend), " if resend else "")
            + f"{len(report.rejected_rows)} rows rejected"
        )
    if report.rejected_rows:
        raise typer.Exit(int(Exit.ROWS_REJECTED))


class NoticeKind(StrEnum):
    retraction = "retraction"
    consent_withdrawal = "consent-withdrawal"
    disposal = "disposal"


def notify(
    source: Annotated[
        str, typer.Option("--source", callback=valid_name, help="Your registered source id")
    ],
    kind: Annotated[NoticeKind, typer.Option("--kind", help="What to tell the trust")],
    case: Annotated[str, typer.Option("--case", help="Your case id")],
    victim: Annotated[
        str | None, typer.Option("--victim", help="Your victim id within the case")
    ] = None,
    log: LogOpt = None,
    home: HomeOpt = None,
    resend: Annotated[
        bool,
        typer.Option("--resend", help="Send it again even if already sent to this log"),
    ] = False,
    token: TokenOpt = None,
) -> None:
    """Retract a case record, or tell the trust that a person withdrew consent or asked for erasure.

    Only the source's data steward does this: in a home that runs the trust, the command needs
    the token of a data steward of --source (exit 7 otherwise).

    A notice already sent to this log is not sent again, unless --resend (same event id, sealed
    afresh): use it when the trust refused it for a reason you have since fixed.
    """
    from trust.stewardship.principals import Action

    h = home_of(home)
    if runs_the_trust(h):
        acting_in(h, None, token, Action.ACT_FOR_SOURCE, source=source)
    if kind is NoticeKind.retraction:
        message = retraction(case)
    elif kind is NoticeKind.consent_withdrawal:
        if victim is None:
            raise fail("--victim is needed for a consent withdrawal", Exit.USAGE)
        message = consent_withdrawal(case, victim)
    else:
        message = disposal_request(case, victim)
    try:
        setup = wiring.source_setup(h, source)
        report = publish_messages(setup, h.log_url(log), [message], resend=resend)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    except TransportError as exc:
        raise fail(
            f"the log did not acknowledge ({exc.code}); sealed events kept in the outbox",
            Exit.DELIVERY_FAILED,
        ) from None
    if report.problems:
        raise fail("; ".join(str(p) for p in report.problems), Exit.USAGE)
    if report.published:
        out.print(f"{source}: {kind.value} for case {case} sent ({report.published} event)")
    else:
        out.print(
            f"{source}: {kind.value} for case {case} was already sent to this log "
            "(--resend sends it again)"
        )


def receipts(
    source: Annotated[
        str, typer.Option("--source", callback=valid_name, help="Your registered source id")
    ],
    trust_key: Annotated[
        Path | None,
        typer.Option(
            "--trust-key",
            help="The trust's release public key (PEM or folder) [default: from the home's trust]",
        ),
    ] = None,
    log: LogOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per receipt")] = False,
) -> None:
    """Show the trust's receipts for this source: what was rejected, why, and where.

    Only receipts signed by the trust are shown; anything else on the topic is counted and
    named as not issued by the trust.
    """
    h = home_of(home)
    try:
        keys = wiring.release_public_keys(trust_key or h.release_keys)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    with open_log(h.log_url(log)) as event_log:
        records = event_log.read_all(topics.rejected(source))
    found: list[Receipt] = []
    forged = 0
    for r in records:
        try:
            found.append(verify_receipt(r.value, keys))
        except ReceiptRejected:
            forged += 1
    if forged:
        console.print(
            f"[yellow]{forged} message(s) on {topics.rejected(source)} were not issued by the "
            "trust (unsigned or not verifiable): not shown[/yellow]"
        )
    if as_json:
        for rc in found:
            print(
                json.dumps(
                    {
                        "source_id": rc.source_id,
                        "event_id": rc.event_id,
                        "reason": rc.reason,
                        "field_path": rc.field_path,
                        "detail": rc.detail,
                        "topic": rc.topic,
                        "partition": rc.partition,
                        "offset": rc.offset,
                        "received_at": rc.received_at.isoformat(),
                    }
                )
            )
        return
    if not found:
        out.print(f"no receipts for {source}")
        return
    table = Table(
        "event id", "reason", "field", "detail", "position", title=f"receipts for {source}"
    )
    for rc in found[-200:]:
        table.add_row(
            rc.event_id or "-",
            rc.reason,
            rc.field_path or "-",
            rc.detail,
            f"{rc.topic}:{rc.partition}:{rc.offset}",
        )
    out.print(table)
    counts = Counter(rc.reason for rc in found)
    out.print(", ".join(f"{n} {reason}" for reason, n in counts.most_common()))
