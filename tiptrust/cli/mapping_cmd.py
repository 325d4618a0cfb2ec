"""`tiptrust mapping …`: write, check and look up the mapping of an agency export.

- ``mapping targets [--codes]``: every ICS-TIP field a mapping can fill, with its codes and labels;
- ``mapping init --input FILE --out MAP.yaml``: a proposed mapping, every guess marked for review;
- ``mapping check --input FILE --mapping MAP.yaml``: a dry run that sends nothing.

What these print about an export is column names, row numbers, counts and the values of coded
fields (sex, country, forms of exploitation …) — never a value of an identifying field.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Column, Table

from tiptrust.cli.common import Exit, console, fail, out
from tiptrust.cli.produce import DelimiterOpt, EncodingOpt, FormatOpt, SheetOpt

if TYPE_CHECKING:
    from producers.mapping import MappedBatch

app = typer.Typer(
    help="Write, check and look up the mapping of an agency export.", no_args_is_help=True
)

#: Unmatched values of a coded column are listed only while they look like codes: at most this
#: many distinct values and none longer than MAX_VALUE_CHARS (else the column may hold free text).
MAX_DISTINCT_SHOWN = 50
MAX_VALUE_CHARS = 60
TOP_VALUES = 15

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object")]


@app.command("targets")
def targets(
    codes: Annotated[
        bool, typer.Option("--codes", help="Also list every code with its HTCDS label")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every ICS-TIP field a mapping can fill: its path, type and code list."""
    from producers.codes import HTCDS_LIST_OF
    from producers.mapping import ORGANISATION_TYPE, TARGETS
    from schemas.codelists import htcds_labels

    rows: list[dict[str, Any]] = []
    for t in (*TARGETS.values(), ORGANISATION_TYPE):
        htcds = HTCDS_LIST_OF.get(t.enum_name, "")
        labels = htcds_labels(htcds) if htcds else {}
        path = "organisation_type (top level)" if t is ORGANISATION_TYPE else t.path
        entry: dict[str, Any] = {
            "path": path,
            "type": ("list of " if t.array else "") + t.kind,
            "code_list": t.enum_name or None,
            "named_list": f"htcds:{htcds}" if htcds else None,
        }
        if codes and t.kind == "code":
            entry["codes"] = {s: labels.get(s, "") for s in sorted(t.symbols)}
        rows.append(entry)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(
        Column("target", no_wrap=True, overflow="fold"),
        "type",
        "code list",
        Column("codes: by name", overflow="fold"),
    )
    for r in rows:
        table.add_row(r["path"], r["type"], r["code_list"] or "", r["named_list"] or "")
        for code, label in (r.get("codes") or {}).items():
            table.add_row("", "", f"  {code}", label)
    out.print(table)


@app.command("init")
def init(
    input_path: Annotated[Path, typer.Option("--input", help="The agency export")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the mapping (MAP.yaml)")],
    source: Annotated[
        str | None,
        typer.Option("--source", help="Your source id [default: none, publish --source decides]"),
    ] = None,
    encoding: EncodingOpt = None,
    delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None,
    input_format: FormatOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
) -> None:
    """Propose a mapping from the export's header and values; every guess is marked for review.

    Recognises the CTDC global dataset and HTCDS v2.0 layouts by their column names; otherwise
    matches column names to targets (common and multilingual names, then by resemblance) and
    values to codes. Check the result with `tiptrust mapping check` before publishing.
    """
    from producers.assist import propose, render
    from producers.mapping import Mapping, MappingError
    from producers.readers import InputOptions, ReaderError, open_table

    if out_path.exists() and not force:
        raise fail(f"{out_path} exists (--force overwrites it)", Exit.USAGE)
    options = InputOptions(encoding, delimiter, sheet, input_format)
    try:
        table = open_table(input_path, options)
        rows = list(table.rows)
    except ReaderError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    detected = InputOptions(
        encoding or (table.encoding if table.encoding not in (None, "utf-8-sig") else None),
        delimiter or (table.delimiter if table.delimiter not in (None, ",") else None),
        sheet,
        input_format,
    )
    proposal = propose(
        table.header,
        rows,
        source_id=source,
        list_separator=table.list_separator,
        options=detected,
    )
    text = render(proposal, input_path.name)
    try:  # what is written must load: a proposal is never a broken file
        Mapping.from_dict(yaml.safe_load(text), origin=out_path.name)
    except MappingError as exc:  # pragma: no cover - a bug in the proposer, not in the input
        raise fail(f"the proposed mapping does not validate: {exc}", Exit.USAGE) from None
    out_path.write_text(text, encoding="utf-8")
    fields = len(proposal.entries)
    out.print(
        f"{out_path}: {fields} fields proposed for {len(table.header)} columns "
        f"(layout: {proposal.layout}); {proposal.guesses} entries to review, "
        f"{len(proposal.unmapped)} columns not mapped. "
        f"Next: tiptrust mapping check --input {input_path} --mapping {out_path}"
    )


@app.command("check")
def check(
    input_path: Annotated[Path, typer.Option("--input", help="The agency export")],
    mapping_path: Annotated[Path, typer.Option("--mapping", help="The mapping file (MAP.yaml)")],
    source: Annotated[
        str | None,
        typer.Option("--source", help="The publishing source [default: the mapping's]"),
    ] = None,
    encoding: EncodingOpt = None,
    delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None,
    input_format: FormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dry run: which rows would publish or be withheld, and why. Sends nothing.

    Also shows how much of each target the mapping fills, and which values of coded fields match
    no code (never a value of an identifying field).

    Exit codes: 0 every row would publish; 3 some rows would be withheld; 2 bad mapping or input.
    """
    from producers.mapping import Mapping, MappingError
    from producers.readers import InputOptions, ReaderError, open_table

    try:
        mapping = Mapping.load(mapping_path)
        mapping = mapping.for_source(source or mapping.source_id or "dry_run")
        options = InputOptions(encoding, delimiter, sheet, input_format)
        table = open_table(input_path, options.over(mapping.input_options))
        bound = mapping.bind(
            table.header, list_separator=table.list_separator, short_names=table.format == "odk"
        )
        rows = list(table.rows)
    except (MappingError, ReaderError) as exc:
        raise fail(str(exc), Exit.USAGE) from None
    batch = bound.map_rows(rows, dry_run=True)
    report = _check_report(bound, batch, len(rows), table.format)
    if as_json:
        print(json.dumps(report))
    else:
        _print_check(report)
    if report["rows_withheld"]:
        raise typer.Exit(int(Exit.ROWS_REJECTED))


def _check_report(mapping: Any, batch: MappedBatch, rows: int, fmt: str) -> dict[str, Any]:
    import re

    published = sum(len(r.rows) for r in batch.records)
    reasons: Counter[tuple[str, str, str]] = Counter()
    examples: dict[tuple[str, str, str], list[int]] = {}
    withheld: set[int] = set()
    for p in batch.problems:
        key = (re.sub(r"\[\d+\]", "[]", p.path), p.code.value, p.expected)
        reasons[key] += 1
        examples.setdefault(key, [])
        if p.row is not None:
            withheld.add(p.row)
            if len(examples[key]) < 5:
                examples[key].append(p.row)
    dry = batch.dry_run
    assert dry is not None
    fields = []
    specs = list(mapping.fields)
    if mapping.organisation_field is not None:
        specs.insert(0, mapping.organisation_field)
    for spec in specs:
        path = spec.target.path
        entry: dict[str, Any] = {
            "target": path,
            "columns": list(spec.read_columns),
            "rows_filled": dry.filled.get(path, 0),
            "share": round(dry.filled.get(path, 0) / rows, 4) if rows else 0.0,
            "defaulted": batch.defaulted.get(path, 0),
        }
        if spec.target.kind == "code":
            entry["unmatched"] = _shown(dry.unmapped.get(path, Counter()))
        fields.append(entry)
    return {
        "format": fmt,
        "rows": rows,
        "cases": len(batch.records),
        "rows_published": published,
        "rows_withheld": len(withheld),
        "ids": "row hash" if mapping.ids_from_content else "columns",
        "reasons": [
            {"field": f, "reason": r, "expected": e, "rows": n, "first_rows": examples[(f, r, e)]}
            for (f, r, e), n in reasons.most_common()
        ],
        "fields": fields,
    }


def _shown(values: Counter[str]) -> dict[str, Any]:
    """Unmatched values of a coded field, by frequency, unless they look like free text."""
    distinct = len(values)
    total = sum(values.values())
    if distinct > MAX_DISTINCT_SHOWN or any(len(v) > MAX_VALUE_CHARS for v in values):
        return {"distinct": distinct, "values": total, "shown": {}, "hidden": "looks like text"}
    return {
        "distinct": distinct,
        "values": total,
        "shown": dict(values.most_common(TOP_VALUES)),
        "hidden": "",
    }


def _print_check(report: dict[str, Any]) -> None:
    out.print(
        f"{report['rows']} rows ({report['format']}): {report['rows_published']} would publish "
        f"as {report['cases']} cases, {report['rows_withheld']} would be withheld"
        + (" — ids: hash of each row's mapped cells" if report["ids"] == "row hash" else "")
    )
    if report["reasons"]:
        t = Table(
            "field", "reason", "expected", "rows", "first rows", title="why rows are withheld"
        )
        for r in report["reasons"]:
            rows = ", ".join(str(n) for n in r["first_rows"])
            t.add_row(r["field"], r["reason"], escape(r["expected"]), str(r["rows"]), rows)
        out.print(t)
    t = Table("target", "columns", "rows filled", "defaulted", title="what the mapping fills")
    for f in report["fields"]:
        cols = ", ".join(f["columns"][:3]) + (" …" if len(f["columns"]) > 3 else "")
        share = f"{f['rows_filled']} ({f['share']:.0%})"
        t.add_row(f["target"], escape(cols), share, str(f["defaulted"] or ""))
    out.print(t)
    for f in report["fields"]:
        unmatched = f.get("unmatched")
        if not unmatched or not unmatched["distinct"]:
            continue
        head = f"{f['target']}: {unmatched['distinct']} values match no code"
        if unmatched["hidden"]:
            console.print(f"{head} (not shown: {unmatched['hidden']})", highlight=False)
            continue
        listed = ", ".join(f"{v!r} x{n}" for v, n in unmatched["shown"].items())
        console.print(f"{head}: {escape(listed)}", highlight=False)
