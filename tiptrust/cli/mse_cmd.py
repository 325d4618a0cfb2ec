"""`tiptrust mse …`: multiple-systems estimation of the victims no list saw."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tiptrust.cli.common import Exit, HomeOpt, StoreOpt, fail, home_of, out

if TYPE_CHECKING:  # statsmodels and scipy take a second to import: only when estimating
    from trust.estimate import PopulationEstimate, SelectionRule
    from trust.estimate.from_trust import TrustHistories

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
        Path | None,
        typer.Option(
            "--histories",
            help="CSV with one 0/1 column per list and a column `count` (persons per history)",
        ),
    ] = None,
    from_trust: Annotated[
        bool,
        typer.Option(
            "--from-trust",
            help="Capture histories from the trust's linked persons (counted as releases count "
            "them) instead of a CSV",
        ),
    ] = False,
    lists: Annotated[
        str | None,
        typer.Option(
            "--lists",
            help="With --from-trust: the lists, comma-separated; a list is a source, or "
            "NAME=SOURCE+SOURCE pools sources (e.g. ngo=ngo_a+ngo_b) [default: every source "
            "with counted persons]",
        ),
    ] = None,
    stratum: Annotated[
        list[str] | None,
        typer.Option(
            "--stratum",
            help="With --from-trust: also estimate per stratum of a combined fact (sex, "
            "age_group, form, year, victimisation); repeat or comma-separate for several",
        ),
    ] = None,
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
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Estimate the total number of victims, observed and hidden, with its interval.

    From a CSV of capture histories (--histories) or from the trust's linked persons
    (--from-trust: one list per source, or per pool of sources given by --lists).

    Exit 0 with "no estimate" and the reason when the lists cannot support one; exit 2 on bad
    input (no `count` column, a flag other than 0/1, fewer than two lists, or fewer than two
    lists with counted persons in the trust); exit 5 when this home has no trust store.
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
    if from_trust == (histories is not None):
        raise fail("give exactly one of --histories FILE.csv and --from-trust", Exit.USAGE)
    if not from_trust and (lists is not None or stratum):
        raise fail("--lists and --stratum go with --from-trust", Exit.USAGE)
    try:
        rule = SelectionRule(
            criterion=Criterion(criterion.value),
            search=None if search is SearchOpt.AUTO else Search(search.value),
            threshold=threshold,
        )
    except EstimateError as exc:
        raise fail(f"{exc} [{exc.code}]", Exit.USAGE) from None
    if histories is None:
        _from_trust(
            rule,
            lists=lists,
            strata=[s.strip() for given in stratum or () for s in given.split(",") if s.strip()],
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            merge_nested=not keep_nested,
            as_json=as_json,
            store=store,
            home=home,
            started=started,
        )
        return
    if not histories.is_file():
        raise fail(f"{histories}: no such file", Exit.USAGE)
    try:
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


def _parse_lists(text: str) -> tuple[list[str], dict[str, str]]:
    """``police,ngo=ngo_a+ngo_b`` -> the lists in order and each pooled source's list."""
    names: list[str] = []
    list_of: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, pooled = item.partition("=")
        name = name.strip()
        sources = [s.strip() for s in pooled.split("+") if s.strip()] if sep else []
        if not name or (sep and not sources):
            raise fail(
                "--lists: expected SOURCE or NAME=SOURCE+SOURCE, comma-separated", Exit.USAGE
            )
        for source in sources:
            if source in list_of:
                raise fail(f"--lists: source {source!r} is in two lists", Exit.USAGE)
            list_of[source] = name
        names.append(name)
    if not names:
        raise fail("--lists: no list given", Exit.USAGE)
    return names, list_of


def _from_trust(
    rule: SelectionRule,
    *,
    lists: str | None,
    strata: list[str],
    bootstrap: int,
    seed: int,
    level: float,
    merge_nested: bool,
    as_json: bool,
    store: str | None,
    home: str | None,
    started: float,
) -> None:
    """``mse estimate --from-trust``: histories from the store's projections, then estimates."""
    from sqlalchemy.exc import DBAPIError

    from trust.estimate import EstimateError, estimate_population
    from trust.estimate.from_trust import histories_from_trust
    from trust.store.eventstore import open_store

    names, list_of = _parse_lists(lists) if lists is not None else (None, {})
    h = home_of(home)
    url = h.store_url(store)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise fail(f"no trust store in {h.root}: run the trust first", Exit.NOT_SET_UP)
    try:
        event_store = open_store(url)
        try:
            got = histories_from_trust(event_store, names, list_of, strata)
        finally:
            event_store.close()
        pooled = estimate_population(
            got.pooled,
            rule,
            bootstrap=bootstrap,
            seed=seed,
            level=level,
            merge_nested=merge_nested,
        )
        per_stratum = [
            (
                key,
                estimate_population(
                    table,
                    rule,
                    bootstrap=bootstrap,
                    seed=seed,
                    level=level,
                    merge_nested=merge_nested,
                ),
            )
            for key, table in got.tables.items()
            if got.strata
        ]
    except EstimateError as exc:
        raise fail(f"trust store: {exc} [{exc.code}]", Exit.USAGE) from None
    except DBAPIError as exc:
        raise fail(
            f"the event store failed ({type(exc.orig).__name__}): run again when it is back",
            Exit.DELIVERY_FAILED,
        ) from None
    if as_json:
        doc = {**_result_json(pooled), **_trust_json(got)}
        if got.strata:
            doc["strata"] = [
                {"stratum": dict(zip(got.strata, key, strict=True)), **_result_json(r)}
                for key, r in per_stratum
            ]
            estimates = [r.estimate for _, r in per_stratum]
            doc["stratified_estimate"] = (
                None
                if any(e is None for e in estimates)
                else round(sum(e for e in estimates if e is not None), 3)
            )
        doc["seconds"] = round(time.perf_counter() - started, 4)
        print(json.dumps(doc))
        return
    sources = Table("", "", show_header=False, box=None)
    for name in got.lists:
        pooled_from = got.list_sources.get(name, ())
        label = name if pooled_from == (name,) else f"{name} ({', '.join(pooled_from)})"
        sources.add_row(label, f"{got.persons_per_list[name]:,} persons")
    sources.add_row("persons", f"{got.persons:,} counted ({got.unlinked:,} records not linked)")
    out.print(sources)
    _show(pooled)
    for key, r in per_stratum:
        out.print()
        out.print(", ".join(f"{d} = {v}" for d, v in zip(got.strata, key, strict=True)))
        _show(r, assumptions=False)


def _result_json(result: PopulationEstimate) -> dict[str, Any]:
    doc = result.to_json()
    doc.pop("seconds", None)
    return doc


def _trust_json(got: TrustHistories) -> dict[str, Any]:
    return {
        "persons": got.persons,
        "sources": list(got.sources),
        "list_sources": {name: list(s) for name, s in got.list_sources.items()},
        "persons_per_list": dict(got.persons_per_list),
        "records": got.records,
        "unlinked_records": got.unlinked,
        "strata_by": list(got.strata),
    }


def _show(result: PopulationEstimate, assumptions: bool = True) -> None:
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
    if not assumptions:
        return
    out.print(
        "Assumes a closed population, list dependence the model can express, and no "
        "unmodelled heterogeneity in who gets listed."
    )


@app.command("chart")
def chart(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="INPUT...",
            help="A folder of prevalence_estimate releases written by `tiptrust subscribe`, "
            "release files NNNNNN.json, or outputs of `tiptrust mse estimate --json` (in the "
            "order given; such an output is labelled by its file name)",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where to write prevalence_estimate.png and .svg")
    ] = Path("charts"),
    title: Annotated[
        str, typer.Option("--title", help="The chart's title")
    ] = "Detected and estimated victims of trafficking",
) -> None:
    """Draw the annex 7 chart: detected victims and the estimate of all victims over time, with
    the interval as a band; the caveat, assumptions, sources and date under it. PNG and SVG.

    Exits 2 when an input does not exist or holds no estimate, 6 when a file is neither an
    estimate release nor an estimate's JSON.
    """
    from consumers.errors import ConsumerReason, ReleaseFileError
    from consumers.estimate_chart import (
        EstimatePoint,
        NotAnEstimate,
        held_releases,
        point_from_json,
        point_from_release,
        write_chart,
    )
    from consumers.writers import read_release_file

    points: list[EstimatePoint] = []
    try:
        for given in inputs:
            if given.is_dir():
                points += [point_from_release(r) for r in held_releases(given)]
                continue
            if not given.is_file():
                raise fail(f"{given}: no such file or folder", Exit.USAGE)
            try:
                doc = json.loads(given.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise fail(f"{given}: not JSON", Exit.REFUSED) from None
            if isinstance(doc, dict) and "aggregates" in doc:
                points.append(point_from_release(read_release_file(given)))
            elif isinstance(doc, dict):
                points.append(point_from_json(doc, given.stem))
            else:
                raise fail(f"{given}: not an estimate", Exit.REFUSED)
    except ReleaseFileError as exc:
        missing = exc.code is ConsumerReason.RELEASE_FILE_MISSING
        raise fail(exc.message, Exit.USAGE if missing else Exit.REFUSED) from None
    except NotAnEstimate as exc:
        raise fail(str(exc), Exit.REFUSED) from None
    if not points:
        raise fail("no estimate to draw in the inputs given", Exit.USAGE)
    for path in write_chart(points, out_dir, title=title):
        out.print(f"wrote {path}")
