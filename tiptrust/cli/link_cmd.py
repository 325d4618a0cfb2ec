"""`tiptrust link …`: record linkage — which records are the same person."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tiptrust.cli.common import Exit, console, fail, out

if TYPE_CHECKING:  # pandas, numpy and the string metrics load only when linking
    from trust.linkage.batch import BatchInput

app = typer.Typer(
    help="Link records of the same person: batch linkage of CSV files, explanations, review.",
    no_args_is_help=True,
)


@app.command()
def batch(
    inputs: Annotated[
        list[Path],
        typer.Option(
            "--input",
            help="A CSV file with columns id, given_name, surname, date_of_birth, sex, "
            "nationality, document_number [, address, postcode]; repeat for several files",
        ),
    ],
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write id_l,id_r,probability (same person)")
    ],
    dedupe: Annotated[
        bool,
        typer.Option(
            "--dedupe",
            help="Also link records within each input (required with a single input)",
        ),
    ] = False,
    review_out: Annotated[
        Path | None,
        typer.Option("--review-out", help="Where to write the pairs left for review"),
    ] = None,
    upper: Annotated[
        float | None,
        typer.Option(
            "--upper", help="Match probability from which records are joined [default: 0.9]"
        ),
    ] = None,
    lower: Annotated[
        float | None,
        typer.Option(
            "--lower", help="Match probability from which a pair goes to review [default: 0.5]"
        ),
    ] = None,
) -> None:
    """Find the records of the same person in CSV files, by probabilistic record linkage.

    Writes one row per pair of records placed in the same person, with id_l < id_r and the
    pair's match probability (for a pair joined only through other records: the lowest
    probability on the path that joined them). With several inputs and no --dedupe, only pairs
    across inputs are linked. Pairs between --lower and --upper that were not joined are written
    to --review-out when given.

    Exit codes: 0 done; 2 bad input (missing column, unreadable date, repeated id …), named by
    file, row and column — never by value.
    """
    from trust.linkage.batch import link_batch, read_batch_csv, write_pairs
    from trust.linkage.errors import LinkageError
    from trust.linkage.settings import LinkageSettings

    try:
        defaults = LinkageSettings()
        settings = LinkageSettings(
            upper=defaults.upper if upper is None else upper,
            lower=defaults.lower if lower is None else lower,
        )
        if len(inputs) == 1 and not dedupe:
            raise fail("one input can only be deduplicated: add --dedupe", Exit.USAGE)
        names = _display_names(inputs)
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]link batch[/bold] {task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("read", total=None)
            batches: list[BatchInput] = [
                read_batch_csv(path, name) for path, name in zip(inputs, names, strict=True)
            ]
            result = link_batch(
                batches,
                dedupe=dedupe,
                settings=settings,
                progress=lambda stage: progress.update(task, description=stage),
            )
            progress.update(task, description="write")
            write_pairs(out_path, result.pairs)
            if review_out is not None:
                write_pairs(review_out, result.review)
    except LinkageError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except OSError as exc:
        raise fail(
            f"cannot write the output: {(exc.strerror or 'error').lower()}", Exit.USAGE
        ) from None
    records = sum(len(b.records) for b in batches)
    out.print(
        f"{records} records, {len(result.clustering.persons)} persons; "
        f"{len(result.pairs)} same-person pairs written to {out_path}"
        + (f", {len(result.review)} for review to {review_out}" if review_out else "")
        + f"; model {result.linker.model_version}",
        highlight=False,
        soft_wrap=True,
    )


def _display_names(paths: list[Path]) -> list[str]:
    """File names, or full paths where two inputs share a name."""
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]
