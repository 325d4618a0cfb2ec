"""`tiptrust synthesize`: k-anonymous synthetic microdata from a categorical CSV."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tiptrust.cli.common import Exit, console, fail, out

if TYPE_CHECKING:  # numpy loads only when synthesising
    from trust.synthesize import Table


class Mode(StrEnum):
    default = "default"
    pairs = "pairs"
    classic = "classic"


def register(app: typer.Typer) -> None:
    """Add the `synthesize` command to the umbrella app."""
    app.command("synthesize")(synthesize_command)


def _read(path: Path) -> Table:
    """The CSV as a table; exits USAGE on anything that is not a readable categorical CSV."""
    from trust.synthesize import SynthesisError, Table

    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise fail(f"{path}: no header row", Exit.USAGE)
            rows = [row for row in reader if row]
    except FileNotFoundError:
        raise fail(f"{path}: no such file", Exit.USAGE) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise fail(f"{path}: not a UTF-8 CSV ({type(exc).__name__})", Exit.USAGE) from None
    try:
        return Table.from_rows([h.strip() for h in header], rows)
    except SynthesisError as exc:
        raise fail(f"{path}: {exc}", Exit.USAGE) from None


def _write_csv(path: Path, header: list[str], rows: Iterable[Sequence[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def synthesize_command(
    input_path: Annotated[
        Path, typer.Option("--input", help="Sensitive categorical CSV (an empty cell is missing)")
    ],
    k: Annotated[
        int, typer.Option("--k", min=1, help="Privacy resolution: every combination ≥ k people")
    ],
    length: Annotated[
        int,
        typer.Option(
            "--length", min=1, help="Reporting length: longest combination in aggregate and report"
        ),
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Synthetic CSV to write")],
    mode: Annotated[Mode, typer.Option("--mode", help="Synthesis mode")] = Mode.default,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same output)")] = 0,
    report_path: Annotated[
        Path | None, typer.Option("--report", help="Write the utility report here (JSON)")
    ] = None,
    aggregate_path: Annotated[
        Path | None,
        typer.Option("--aggregate-out", help="Write the companion aggregate here (CSV)"),
    ] = None,
) -> None:
    """Synthesise microdata in which every attribute combination describes at least k people.

    The output has the input's columns; each single attribute's count is its input count rounded down to a multiple of k. An independent checker verifies the output before it is written.
    """
    from trust.synthesize import (
        UtilityReport,
        check,
        companion_aggregate,
        length_utility,
        synthesize,
    )

    table = _read(input_path)
    if table.n_rows == 0:
        raise fail(f"{input_path}: no data rows", Exit.USAGE)
    with Progress(
        TextColumn(f"[bold]synthesizing[/bold] ({mode.value}, k={k})"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("synthesize", total=1.0)
        started = time.perf_counter()
        synthetic = synthesize(
            table, k, mode.value, seed, lambda f: progress.update(task, completed=f)
        )
        seconds = time.perf_counter() - started
        progress.update(task, completed=1.0)
    sensitive_rows = list(table.rows())
    synthetic_rows = list(synthetic.rows())
    verdict = check(table.columns, sensitive_rows, synthetic.columns, synthetic_rows, k)
    if not verdict.ok or verdict.single_count_mismatches:
        # never reached by a correct synthesiser: refuse rather than release
        raise fail(
            f"the checker refused the output: {verdict.leaks} leaking combinations, "
            f"{verdict.single_count_mismatches} single counts off; nothing written",
            Exit.REFUSED,
        )
    _write_csv(out_path, list(table.columns), synthetic_rows)
    report = UtilityReport(
        k=k,
        length=length,
        mode=mode.value,
        seconds=seconds,
        rows_in=table.n_rows,
        rows_out=synthetic.n_rows,
        leaks=verdict.leaks,
        lengths=length_utility(table, synthetic, k, length),
    )
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if aggregate_path is not None:
        rows = [(a.combination, str(a.count)) for a in companion_aggregate(table, k, length)]
        _write_csv(aggregate_path, ["combination", "count"], rows)
    out.print(
        f"{table.n_rows} rows → {synthetic.n_rows} synthetic rows ({mode.value}, k={k}) in "
        f"{seconds:.2f} s, 0 leaks; → {out_path}",
        highlight=False,
        soft_wrap=True,
    )
