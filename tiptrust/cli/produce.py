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

from producers.mapping import Mapping, MappingError
from producers.outbox import Outbox
from producers.publisher import Outgoing, Publisher, PublishReport
from producers.readers import ReaderError, read_rows
from producers.simulate import simulate as run_simulation
from schemas.codec import default_registry
from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, LogOpt, console, fail, home_of, out
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
    """Simulate a hidden population and five agencies' exports with their mapping files."""
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
) -> tuple[PublishReport, int]:
    """Map, validate and publish one export; returns the report and the number of rows read."""
    h = home_of(home_dir)
    mapping = Mapping.load(mapping_path)
    if mapping.source_id != source:
        raise MappingError(f"{mapping_path} is for source {mapping.source_id}, not {source}")
    rows = list(read_rows(input_path))
    batch = mapping.map_rows(rows)
    messages = [
        Outgoing("RecordUpsert", f"case:{m.case_id}", m.record, m.rows, partition_key=m.case_id)
        for m in batch.records
    ]
    key = wiring.source_signing_key(h, source)
    trust_key = wiring.source_trust_key(h, source)
    with open_log(h.log_url(log_url)) as log, Outbox(h.outbox(source)) as outbox:
        publisher = Publisher(log=log, source_key=key, trust_key=trust_key, outbox=outbox)
        with Progress(
            TextColumn(f"[bold]{source}[/bold] publishing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not show_progress,
            transient=True,
        ) as progress:
            task = progress.add_task("publish", total=len(messages))
            report = publisher.publish(messages, on_progress=lambda n: progress.advance(task, n))
    report.merge_problems(batch.problems)
    return report, len(rows)


def publish(
    source: Annotated[str, typer.Option("--source", help="Your registered source id")],
    input_path: Annotated[Path, typer.Option("--input", help="The agency export (.csv or .jsonl)")],
    mapping_path: Annotated[Path, typer.Option("--mapping", help="The mapping file (MAP.yaml)")],
    log: LogOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object")
    ] = False,
) -> None:
    """Validate every row, then publish the good ones encrypted and signed; report the bad ones.

    Exit codes: 0 all published; 3 some rows rejected (the rest published); 4 the log did not
    acknowledge (kept in the outbox, resent on the next run); 5 not set up; 2 bad mapping or input.
    """
    try:
        report, rows = publish_rows(
            home, source, input_path, mapping_path, log, show_progress=not as_json
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
        out.print(
            f"{source}: {rows} rows read, {report.rows_published} published as {report.published} events, "
            f"{report.unchanged} unchanged since last run, {report.resent} resent from the outbox, "
            f"{len(report.rejected_rows)} rows rejected"
        )
    if report.rejected_rows:
        raise typer.Exit(int(Exit.ROWS_REJECTED))


class NoticeKind(StrEnum):
    retraction = "retraction"
    consent_withdrawal = "consent-withdrawal"
    disposal = "disposal"


def notify(
    source: Annotated[str, typer.Option("--source", help="Your registered source id")],
    kind: Annotated[NoticeKind, typer.Option("--kind", help="What to tell the trust")],
    case: Annotated[str, typer.Option("--case", help="Your case id")],
    victim: Annotated[
        str | None, typer.Option("--victim", help="Your victim id within the case")
    ] = None,
    log: LogOpt = None,
    home: HomeOpt = None,
) -> None:
    """Retract a case record, or tell the trust that a person withdrew consent or asked for erasure."""
    h = home_of(home)
    if kind is NoticeKind.retraction:
        message = Outgoing(
            "RecordRetraction",
            f"case:{case}",
            {"case_id": case, "reason": "Unknown"},
            partition_key=case,
        )
    elif kind is NoticeKind.consent_withdrawal:
        if victim is None:
            raise fail("--victim is needed for a consent withdrawal", Exit.USAGE)
        message = Outgoing(
            "ConsentWithdrawal",
            f"case:{case}:{victim}",
            {"case_id": case, "victim_id": victim, "withdrawn_scopes": ["All"]},
            partition_key=case,
        )
    else:
        message = Outgoing(
            "DisposalRequest",
            f"case:{case}:{victim or ''}",
            {"case_id": case, "victim_id": victim, "basis": "Unknown"},
            partition_key=case,
        )
    try:
        key = wiring.source_signing_key(h, source)
        trust_key = wiring.source_trust_key(h, source)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    with open_log(h.log_url(log)) as event_log, Outbox(h.outbox(source)) as outbox:
        report = Publisher(
            log=event_log, source_key=key, trust_key=trust_key, outbox=outbox
        ).publish([message])
    if report.problems:
        raise fail("; ".join(str(p) for p in report.problems), Exit.USAGE)
    out.print(f"{source}: {kind.value} for case {case} sent ({report.published} event)")


def receipts(
    source: Annotated[str, typer.Option("--source", help="Your registered source id")],
    log: LogOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per receipt")] = False,
) -> None:
    """Show the trust's receipts for this source: what was rejected, why, and where."""
    h = home_of(home)
    schema = default_registry().current("receipt")
    with open_log(h.log_url(log)) as event_log:
        records = event_log.read_all(topics.rejected(source))
    found = [schema.decode(r.value) for r in records]
    if as_json:
        for r in found:
            print(
                json.dumps(
                    {k: v for k, v in r.items() if k != "received_at"}
                    | {"received_at": str(r["received_at"])}
                )
            )
        return
    if not found:
        out.print(f"no receipts for {source}")
        return
    table = Table(
        "event id", "reason", "field", "detail", "position", title=f"receipts for {source}"
    )
    for r in found[-200:]:
        table.add_row(
            r["event_id"] or "-",
            r["reason"],
            r["field_path"] or "-",
            r["detail"],
            f"{r['topic']}:{r['partition']}:{r['offset']}",
        )
    out.print(table)
    counts = Counter(r["reason"] for r in found)
    out.print(", ".join(f"{n} {reason}" for reason, n in counts.most_common()))
