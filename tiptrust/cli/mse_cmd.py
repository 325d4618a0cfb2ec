"""`tiptrust mse …`: multiple-systems estimation of the victims no list saw."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tiptrust.cli.common import Exit, fail, out

if TYPE_CHECKING:  # statsmodels and scipy take a second to import: only when estimating
    from trust.estimate import PopulationEstimate

app = typer.Typer(
    help="Estimate how many victims no agency detected, from how the agencies' lists overlap.",
    no_args_is_help=True,
)


class CriterionOpt(StrEnum):
    """``trust.estimate.Criterion``'s values (a test keeps them equal)."""

    BIC = "bic"
    AIC = "aic"
    PVALUE = "pvalue"


class SearchOpt(StrEnum):
    AUTO = "auto"
    GREEDY = "greedy"
    EXHAUSTIVE = "exhaustive"


@app.command("estimate")
def estimate(
    histories: Annotated[
        Path,
        typer.Option(
            "--histories",
            help="CSV with one 0/1 column per list and a column `count` (persons per history)",
        ),
    ],
    criterion: Annotated[
        CriterionOpt,
        typer.Option("--criterion", help="How the list dependencies are chosen"),
    ] = CriterionOpt.BIC,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="p-value below which a term is added [default: 0.02 for pvalue; none for "
            "aic/bic, where it also requires each added term to be significant]",
        ),
    ] = None,
    search: Annotated[
        SearchOpt,
        typer.Option("--search", help="Model search [auto: exhaustive up to 4 lists, else greedy]"),
    ] = SearchOpt.AUTO,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap",
            help="Replicates of a BCa bootstrap that repeats the selection [0: profile "
            "likelihood of the chosen model]",
        ),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap")] = 0,
    level: Annotated[float, typer.Option("--level", help="Confidence level")] = 0.95,
    keep_nested: Annotated[
        bool,
        typer.Option(
            "--keep-nested", help="Model a list nested in another as it is instead of merging it"
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the estimate as one JSON object")
    ] = False,
) -> None:
    """Estimate the total number of victims, observed and hidden, with its interval.

    Exit 0 with "no estimate" and the reason when the lists cannot support one; exit 2 on bad
    input (no `count` column, a flag other than 0/1, fewer than two lists).
    """
    from trust.estimate import (
        Criterion,
        EstimateError,
        Search,
        SelectionRule,
        estimate_population,
    )
    from trust.estimate.histories import read_csv

    started = time.perf_counter()
    if not histories.is_file():
        raise fail(f"{histories}: no such file", Exit.USAGE)
    try:
        rule = SelectionRule(
            criterion=Criterion(criterion.value),
            search=None if search is SearchOpt.AUTO else Search(search.value),
            threshold=threshold,
        )
        tables = read_csv(histories)
        result = estimate_population(
            tables[()],
            rule,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            merge_nested=not keep_nested,
        )
    except EstimateError as exc:
        raise fail(f"{histories.name}: {exc} [{exc.code}]", Exit.USAGE) from None
    if as_json:
        print(json.dumps({**result.to_json(), "seconds": round(time.perf_counter() - started, 4)}))
        return
    _show(result)


def _show(result: PopulationEstimate) -> None:
    table = Table("", "", show_header=False, box=None)
    table.add_row("lists", ", ".join(result.lists))
    for nested, into in result.merged:
        table.add_row("merged", f"{nested} into {into} (all of its persons are on {into})")
    table.add_row("observed", f"{result.observed:,}")
    if result.estimate is None or result.hidden is None or result.ci_low is None:
        table.add_row("estimate", "[yellow]no estimate[/yellow]")
        table.add_row("reason", f"{result.reason} [{result.reason_code}]")
        out.print(table)
        return
    high = "unbounded" if result.ci_high is None else f"{result.ci_high:,.0f}"
    table.add_row("estimate", f"{result.estimate:,.0f}")
    table.add_row("hidden", f"{result.hidden:,.0f}")
    table.add_row(
        f"{result.level:.0%} interval",
        f"{result.ci_low:,.0f} to {high} ({result.interval_method})",
    )
    table.add_row("model", " + ".join(result.model) if result.model else "main effects only")
    table.add_row("chosen by", f"{result.criterion} ({result.search})")
    out.print(table)
    out.print(
        "Assumes a closed population, list dependence the model can express, and no "
        "unmodelled heterogeneity in who gets listed."
    )
