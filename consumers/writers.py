"""Write verified releases to files a person can open cold, and a program can read.

Layout, per stream folder ``<out>/<stream>/`` and release ``NNNNNN`` (its sequence, 6 digits):

* ``NNNNNN.csv``: one row per aggregate — cells, margins, total — with the stream's dimensions
  as columns (``Total`` where an aggregate is not broken down by that dimension), then ``value``
  (empty when suppressed), ``exact`` and ``suppressed``;
* ``NNNNNN.metadata.json``: what the CSV's columns and numbers mean — title, unit, period,
  dimensions, labels, hierarchies, k, the disclosure method and the parameters the release
  states, the caveat, the counting rule, sources, and what ``suppressed``, an empty ``value`` and
  ``exact=false`` mean (:func:`release_metadata`);
* ``NNNNNN.parquet``: the CSV's rows plus a ``<dimension>_label`` column per dimension, with the
  same description in its Arrow schema metadata (key ``tiptrust.release``) and each column's
  meaning in the field metadata (``description``);
* ``NNNNNN.json``: the whole release as signed (signature as hex), enough to verify it again
  with :func:`release_from_json`;
* for a release of synthetic records, ``NNNNNN.aggregate.csv``: the companion aggregate the same
  signed release carries (:func:`companion_csv`), the counts of real persons to read beside the
  synthetic records;
* with ``charts=True``, ``charts/NNNNNN.<view>.png`` and ``.svg`` (:mod:`consumers.charts`);
* ``latest.json`` naming the newest sequence written, and ``README.txt``, which says to a person
  who opens only the folder what every file, column and number is.

Every file is written to a temporary name and renamed into place, so a reader never sees half a
file.

**One sequence, one release.** The ``.json`` is the record of what this consumer holds for a
sequence; it is written first and never replaced. A release arriving for a held sequence is
compared with it by :func:`signed_digest` (SHA-256 of the release's signed Avro bytes, signature
included):

* the same digest is a re-send (the trust re-sends exactly the bytes it recorded, e.g. after a
  crash; a log redelivers after one of ours): nothing is rewritten; any of the sequence's other
  files that is missing (an earlier write stopped between files, or the files came from an older
  tiptrust that wrote fewer) and a ``latest.json`` left behind are completed, and the result is
  reported as a duplicate;
* a different digest raises :class:`consumers.errors.ReleaseConflict` and touches nothing.

There is no separate index: the held ``.json`` carries the signature, so its digest is recomputed
from it, and files and index can never disagree.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from consumers.errors import ConsumerReason, ReleaseConflict, ReleaseFileError
from schemas.errors import ContractError
from schemas.release import LEGACY_RELEASE_SCHEMA, RELEASE_SCHEMA, Release

#: The CSV's word for "all categories" of a dimension an aggregate is not broken down by.
TOTAL = "Total"

#: The folder, beside a stream's files, that holds its charts.
CHARTS = "charts"

#: Metadata keys that name a parameter of the disclosure method (k is always one), as the
#: release states them; every other metadata entry is descriptive.
METHOD_PARAMETER_PREFIXES = (
    "k",
    "protection",
    "rounding",
    "perturbation",
    "epsilon",
    "delta",
    "privacy",
    "budget",
    "noise",
    "dp_",
)

SUPPRESSED_MEANING = (
    "withheld to protect the persons counted: it is below {k} persons, or it would let a "
    "number below {k} be worked out from the others. It is not zero and not small-but-known; "
    "never read an empty value as 0."
)

EXACT_MEANING = (
    "'true' when the value is the count as made; 'false' when it is suppressed, rounded or "
    "perturbed by the disclosure control (an inexact value is close to the count, not equal)."
)


#: ``method_name`` of a release that publishes a multiple-systems estimate (stream
#: ``prevalence_estimate``): its numbers are a detected total, a model's estimate and interval.
ESTIMATE_METHOD = "multiple_systems_estimation"

NO_ESTIMATE_MEANING = (
    "no estimate: the linked lists do not support one (the release's metadata gives the reason, "
    "no_estimate_reason), or, for ci_high alone, the data put no upper limit on the total "
    "(ci_high_unbounded). It is not zero."
)


#: ``method_name`` of a release of k-anonymous synthetic records (stream ``synthetic_microdata``):
#: its aggregates are distinct synthetic records and how many records are so, written out as
#: one CSV row per synthetic record.
SYNTHETIC_METHOD = "k_anonymous_synthesis"

SYNTHETIC_MEANING = (
    "a synthetic record, not a real person: every combination of its attributes is shared by "
    "at least {k} real persons; an empty attribute was suppressed by the synthesis (it is not "
    "'unknown': 'Unknown' is a value of its own)"
)


#: The metadata entry of a synthetic-records release that carries its companion aggregate: JSON,
#: ``[[columns, values, count], …]``, one entry per combination of attributes.
SYNTHETIC_AGGREGATE = "synthesis_companion_aggregate"

SYNTHETIC_AGGREGATE_MEANING = (
    "the number of real persons (not synthetic records) who have every attribute of the "
    "combination, rounded down to a multiple of {k}: the true number is between it and it + "
    "{k1}. Combinations of up to {length} attributes are listed when at least {k} persons have "
    "them and the trust's disclosure control (suppression of counts below {k}, then of others "
    "so that none of those can be worked out from the rest) publishes them; a combination that "
    "is not listed (there are no empty or null rows) is held by fewer than {k} persons, by none, "
    "or by more but hidden, so never read a missing row as 0"
)


def is_synthetic(release: Release) -> bool:
    """Whether ``release`` publishes synthetic records rather than counts."""
    return release.metadata.get("method_name") == SYNTHETIC_METHOD


def synthetic_records(release: Release) -> list[tuple[str, ...]]:
    """The synthetic records of ``release``, one per record, ``""`` where suppressed."""
    out: list[tuple[str, ...]] = []
    for a in release.aggregates:
        by = dict(zip(a.dimensions, a.key, strict=True))
        row = tuple(by.get(d, "") for d in release.dimensions)
        out += [row] * int(a.value or 0)
    return out


def companion_counts(release: Release) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
    """The companion aggregate a synthetic-records release carries, as (columns, values, count)
    per combination in the release's order; empty when it carries none (releases made before
    the aggregate was added, and every other kind)."""
    text = release.metadata.get(SYNTHETIC_AGGREGATE)
    if not is_synthetic(release) or not text:
        return []
    return [(tuple(c), tuple(v), int(n)) for c, v, n in json.loads(text)]


def companion_csv(release: Release) -> str:
    """The companion aggregate as CSV text: ``combination`` (``column:value;column:value``, as
    ``tiptrust synthesize --aggregate-out`` writes it), one column per dimension (its value in
    the combination, ``Total`` when the combination does not involve it), then ``count``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["combination", *release.dimensions, "count"])
    for columns, values, count in companion_counts(release):
        by = dict(zip(columns, values, strict=True))
        w.writerow(
            [
                ";".join(f"{c}:{v}" for c, v in zip(columns, values, strict=True)),
                *(by.get(d, TOTAL) for d in release.dimensions),
                str(count),
            ]
        )
    return buf.getvalue()


def _aggregate_length(release: Release) -> int:
    """The reporting length the companion aggregate goes up to (the longest listed)."""
    stated = release.metadata.get("synthesis_reporting_length", "")
    if stated.isdigit():
        return int(stated)
    return max((len(c) for c, _, _ in companion_counts(release)), default=0)


def companion_description(release: Release) -> dict[str, Any]:
    """What ``NNNNNN.aggregate.csv`` holds, for ``NNNNNN.metadata.json``."""
    k = release.k
    meaning = SYNTHETIC_AGGREGATE_MEANING.format(k=k, k1=k - 1, length=_aggregate_length(release))
    return {
        "file": f"{_stem(release)}.aggregate.csv",
        "combinations": len(companion_counts(release)),
        "columns": {
            "combination": "the attributes combined, 'column:value' joined by ';', in the "
            "order of the dimensions",
            **{
                d: f"the {d.replace('_', ' ')} of the combination (a code; its label is in the "
                f"labels); '{TOTAL}' when the combination does not involve {d}"
                for d in release.dimensions
            },
            "count": meaning,
        },
    }


#: The method name of a cumulative monthly series under continual release.
CONTINUAL_METHOD = "dp_continual"


def is_cumulative(release: Release) -> bool:
    """Whether ``release`` is a cumulative series: each month's value counts everyone up to
    that month's end, so months are not added up and the total is the latest month's."""
    return release.metadata.get("method_name") == CONTINUAL_METHOD


def is_estimate(release: Release) -> bool:
    """Whether ``release`` publishes a multiple-systems estimate rather than counts."""
    return release.metadata.get("method_name") == ESTIMATE_METHOD


def estimate_assumptions(release: Release) -> dict[str, str]:
    """The assumptions an estimate release states (metadata ``assumption_*``), by name."""
    return {
        key.removeprefix("assumption_"): value
        for key, value in sorted(release.metadata.items())
        if key.startswith("assumption_")
    }


@dataclass
class Written:
    """What one :meth:`ReleaseSink.write` did: the paths written, and whether it was a re-send."""

    paths: list[Path] = field(default_factory=list)
    duplicate: bool = False


class ReleaseSink(Protocol):
    """Where a subscriber puts verified releases.

    Raises :class:`consumers.errors.ReleaseConflict` for a release that must not replace one it
    holds; the subscriber then stops without committing the message.
    """

    def write(self, release: Release) -> Written: ...


def signed_digest(release: Release) -> str:
    """SHA-256 (hex) of the release's signed bytes: its Avro encoding, key id and signature in.

    For every release the trust publishes (:func:`schemas.release.sign_release`) this is the
    SHA-256 of the published message itself.
    """
    return hashlib.sha256(release.encoded()).hexdigest()


def release_to_json(release: Release) -> dict[str, Any]:
    """The release as JSON-ready data, mirroring the wire fields (signature as hex), with its
    ``format``."""
    d = release.to_avro()
    d["format"] = release.format
    d["issued_at_ms"] = d.pop("issued_at")
    d["issued_at"] = dt.datetime.fromtimestamp(release.issued_at_ms / 1000, tz=dt.UTC).isoformat(
        timespec="milliseconds"
    )
    d["signature"] = release.signature.hex()
    return d


def release_from_json(d: dict[str, Any]) -> Release:
    """A release read back from :func:`release_to_json` output (verify it before use); JSON
    without ``format`` is of format 1 (written by tiptrust 0.1)."""
    wire = dict(d)
    form = int(wire.pop("format", 1))
    schema = RELEASE_SCHEMA if form == 2 else LEGACY_RELEASE_SCHEMA
    wire["issued_at"] = wire.pop("issued_at_ms")
    wire["signature"] = bytes.fromhex(wire["signature"])
    return Release.from_avro(schema.decode(schema.encode(wire)), form)


def read_release_file(path: Path) -> Release:
    """The release in a ``NNNNNN.json`` written by the subscriber (:func:`release_to_json`).

    It is decoded, not verified: verify the signature with
    :func:`schemas.release.verify_release` on ``release.encoded()`` when the file may have been
    changed since the subscriber verified it.

    Raises:
        ReleaseFileError: ``RELEASE_FILE_MISSING`` (no such file) or ``NOT_A_RELEASE`` (not JSON,
            or JSON that is not a release).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise ReleaseFileError(ConsumerReason.RELEASE_FILE_MISSING, path) from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise ReleaseFileError(ConsumerReason.NOT_A_RELEASE, path) from None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise TypeError("not an object")
        return release_from_json(doc)
    except (ValueError, KeyError, TypeError, AttributeError, ContractError):
        raise ReleaseFileError(ConsumerReason.NOT_A_RELEASE, path) from None


def release_csv(release: Release) -> str:
    """The release's aggregates as CSV text: one column per dimension (``Total`` where the
    aggregate is not broken down by it), ``value`` (empty when suppressed), ``exact``,
    ``suppressed``; the cells first, then the margins, then the total. Synthetic records: one
    row per record, one column per attribute (empty where suppressed)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if is_synthetic(release):
        w.writerow(release.dimensions)
        w.writerows(synthetic_records(release))
        return buf.getvalue()
    w.writerow([*release.dimensions, "value", "exact", "suppressed"])
    n = len(release.dimensions)
    for row in _rows(release):
        w.writerow(
            [
                *(TOTAL if c is None else c for c in row[:n]),
                "" if row[n] is None else str(row[n]),
                "true" if row[n + 1] else "false",
                "true" if row[n] is None else "false",
            ]
        )
    return buf.getvalue()


def _stem(release: Release) -> str:
    return f"{release.sequence:06d}"


def _value_meaning(release: Release) -> str:
    if is_estimate(release):
        return (
            f"the number, in {release.unit}: 'observed' is the exact count of detected victims; "
            "'estimate', 'ci_low' and 'ci_high' are a statistical model's estimate of all "
            "victims, detected and not, and its interval (one decimal); empty when there is "
            + NO_ESTIMATE_MEANING
        )
    return (
        f"the number, in {release.unit}; empty when suppressed. "
        + ("" if _whole_numbers(release) else "A rate, as the unit says, not a count.")
    ).strip()


def _whole_numbers(release: Release) -> bool:
    """Whether the values are counts (Avro ``long``), not rates (``double``)."""
    return all(a.value is None or isinstance(a.value, int) for a in release.aggregates)


def column_descriptions(release: Release) -> dict[str, str]:
    """What each column of the release's CSV (and Parquet) holds, by column name."""
    cols = {
        d: (
            f"the {d.replace('_', ' ')} category (a code; its label is in the labels); "
            f"'{TOTAL}' when the number is not broken down by {d} (a margin, or the grand total "
            f"when every dimension says '{TOTAL}')"
        )
        for d in release.dimensions
    }
    if is_synthetic(release):
        meaning = SYNTHETIC_MEANING.format(k=release.k)
        return {
            d: f"the {d.replace('_', ' ')} of {meaning} (a code; its label is in the labels)"
            for d in release.dimensions
        }
    cols["value"] = _value_meaning(release)
    cols["exact"] = EXACT_MEANING
    cols["suppressed"] = "'true' when the number is " + SUPPRESSED_MEANING.format(k=release.k)
    if is_estimate(release):
        cols["exact"] = "'true' for the detected count; 'false' for a model's output"
        cols["suppressed"] = "'true' when the value is empty: " + NO_ESTIMATE_MEANING
    return cols


def method_parameters(release: Release) -> dict[str, str]:
    """The disclosure method's parameters as the release states them: k, and every metadata
    entry named like a parameter (:data:`METHOD_PARAMETER_PREFIXES`)."""
    params = {"k": str(release.k)}
    for key, value in sorted(release.metadata.items()):
        if key != "k" and key.lower().startswith(METHOD_PARAMETER_PREFIXES):
            params[key] = value
    return params


def release_metadata(release: Release) -> dict[str, Any]:
    """The description of one release's numbers that goes beside them (``NNNNNN.metadata.json``
    and the Parquet schema): everything a reader needs, no number of the table."""
    stem = _stem(release)
    described: dict[str, Any] = {
        "describes": [f"{stem}.csv", f"{stem}.parquet"],
        "title": release.title,
        "unit": release.unit,
        "stream": release.stream,
        "sequence": release.sequence,
        "release_id": release.release_id,
        "issued_at": _iso(release.issued_at_ms),
        "period": {"start": release.period_start, "end": release.period_end},
        "dimensions": list(release.dimensions),
        "columns": column_descriptions(release),
        "total_word": TOTAL,
        "k": release.k,
        "method": {"name": release.method, "parameters": method_parameters(release)},
        "caveat": release.caveat,
        "counting_rule": release.metadata.get("counting_rule", ""),
        "suppressed": "A suppressed number (empty value, suppressed=true) is "
        + SUPPRESSED_MEANING.format(k=release.k),
        "exact_false": EXACT_MEANING,
        "sources": {"named": list(release.sources), "count": release.source_count},
        "labels": {d: dict(codes) for d, codes in release.labels.items()},
        "hierarchies": {
            d: {p: list(children) for p, children in parents.items()}
            for d, parents in release.hierarchies.items()
        },
        # the companion aggregate is its own file (below), not a line of the metadata
        "release_metadata": {
            key: value
            for key, value in sorted(release.metadata.items())
            if key != SYNTHETIC_AGGREGATE
        },
        "signed": {
            "key_id": release.signing_key_id,
            "release_file": f"{stem}.json",
            "how": "the .json holds the release as the trust signed it; `tiptrust subscribe` "
            "verified the signature before writing any of these files",
        },
    }
    if companion_counts(release):
        aggregate = companion_description(release)
        described["describes"].append(aggregate["file"])
        described["companion_aggregate"] = aggregate
    if is_estimate(release):
        described["suppressed"] = "An empty value is " + NO_ESTIMATE_MEANING
        described["estimate"] = {
            "exists": release.metadata.get("estimate_exists") == "true",
            "reason": release.metadata.get("no_estimate_reason", ""),
            "model": release.metadata.get("model", ""),
            "interval_method": release.metadata.get("interval_method", ""),
            "assumptions": estimate_assumptions(release),
        }
    return described


def release_parquet(release: Release) -> bytes:
    """The CSV's rows as Parquet, plus a ``<dimension>_label`` column per dimension; the
    :func:`release_metadata` in the schema metadata (key ``tiptrust.release``, JSON) and each
    column's meaning in its field metadata (``description``)."""
    import pyarrow as pa  # heavy: only when a release is written
    import pyarrow.parquet as pq

    described = column_descriptions(release)
    meta = {"tiptrust.release": json.dumps(release_metadata(release), ensure_ascii=False)}
    if is_synthetic(release):  # the records, as the CSV has them, with labels
        records = synthetic_records(release)
        data: dict[str, list[str]] = {}
        for i, d in enumerate(release.dimensions):
            labels = release.labels.get(d, {})
            data[d] = [r[i] for r in records]
            data[f"{d}_label"] = [labels.get(r[i], r[i]) for r in records]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pydict(data).replace_schema_metadata(meta), sink)
        return bytes(sink.getvalue().to_pybytes())
    rows = _rows(release)
    n = len(release.dimensions)
    columns: dict[str, list[Any]] = {}
    fields = []
    for i, d in enumerate(release.dimensions):
        labels = release.labels.get(d, {})
        columns[d] = [TOTAL if r[i] is None else r[i] for r in rows]
        columns[f"{d}_label"] = [TOTAL if r[i] is None else labels.get(r[i], r[i]) for r in rows]
        fields.append(pa.field(d, pa.string(), False, {"description": described[d]}))
        fields.append(
            pa.field(f"{d}_label", pa.string(), False, {"description": f"the label of {d}"})
        )
    whole = _whole_numbers(release)
    columns["value"] = [r[n] for r in rows]
    columns["exact"] = [r[n + 1] for r in rows]
    columns["suppressed"] = [r[n] is None for r in rows]
    fields += [
        pa.field(
            "value",
            pa.int64() if whole else pa.float64(),
            True,
            {"description": described["value"]},
        ),
        pa.field("exact", pa.bool_(), False, {"description": described["exact"]}),
        pa.field("suppressed", pa.bool_(), False, {"description": described["suppressed"]}),
    ]
    schema = pa.schema(fields, metadata=meta)
    table = pa.Table.from_pydict(columns, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _rows(release: Release) -> list[tuple[Any, ...]]:
    """One row per aggregate, cells first, then the margins, then the total: each dimension's
    category (None where not broken down by it), the value, whether exact."""
    rows = []
    for a in sorted(release.aggregates, key=lambda a: -len(a.dimensions)):
        by = dict(zip(a.dimensions, a.key, strict=True))
        rows.append((*(by.get(d) for d in release.dimensions), a.value, a.exact))
    return rows


def readme_text(release: Release) -> str:
    """What a person who opens only the stream's folder needs to read its files."""
    stem = _stem(release)
    k = release.k
    period = (
        "not stated"
        if release.period_start is None
        else f"{release.period_start} to {release.period_end}"
    )
    lines = [
        release.title,
        "=" * len(release.title),
        "",
        f"Unit: {release.unit}. Period: {period}. Stream {release.stream}; the newest release "
        f"here is number {release.sequence} ({stem}), issued {_iso(release.issued_at_ms)} by "
        f"the trust, signed (key {release.signing_key_id}).",
        "",
        "How to read these numbers",
        "-------------------------",
        release.caveat,
        "",
        "What one count is: " + release.metadata.get("counting_rule", f"see {stem}.json"),
        "",
        *(
            _estimate_lines(release)
            if is_estimate(release)
            else _synthetic_lines(release)
            if is_synthetic(release)
            else [
                "Suppressed numbers",
                "------------------",
                f"An empty value (suppressed = true) is a number "
                f"{SUPPRESSED_MEANING.format(k=k)} "
                f"In short: no number published here is below {k} persons.",
            ]
        ),
        "",
        "Files (NNNNNN is the release number; each release has all of them)",
        "-------------------------------------------------------------------",
        "NNNNNN.csv            one row per published number (the columns are below)",
        "NNNNNN.metadata.json  what that release's numbers and columns mean, for programs: title, "
        "unit, period, k, method and its parameters, caveat, counting rule, sources, labels, "
        "hierarchies",
        "NNNNNN.parquet        the same rows with each code's label beside it, for R, Python or "
        "spreadsheets; the same description is in its schema metadata",
        "NNNNNN.json           the release exactly as the trust signed it, with the signature",
        *(
            [
                "NNNNNN.aggregate.csv  the companion aggregate: counts of real persons by "
                "combination of attributes, rounded down (see above); signed with the records, "
                "in NNNNNN.json"
            ]
            if companion_counts(release)
            else []
        ),
        f"{CHARTS + '/':<22}charts of a release, if drawn (`tiptrust chart NNNNNN.json`, or "
        f"`tiptrust subscribe --charts`): NNNNNN.<view>.png and .svg, shares by default",
        "latest.json           names the newest release",
        "",
        "Columns of NNNNNN.csv",
        "---------------------",
        "Each row is one synthetic record (see above)."
        if is_synthetic(release)
        else f"Each row is one published number: every cell of the table (broken down by "
        f"{', '.join(release.dimensions)}), every margin (a sub-total: the columns it is not "
        f"broken down by say '{TOTAL}') and the grand total (every column says '{TOTAL}'), "
        "cells first.",
    ]
    lines += [f"  {name}: {meaning}" for name, meaning in column_descriptions(release).items()]
    lines.append(
        "NNNNNN.parquet has the same columns and, after each dimension's, its label ("
        + ", ".join(f"{d}_label" for d in release.dimensions)
        + f"; '{TOTAL}' where not broken down)."
    )
    params = ", ".join(f"{key} = {value}" for key, value in method_parameters(release).items())
    lines += [
        "",
        "Disclosure control",
        "------------------",
        f"{release.method} ({params})."
        + (
            ""
            if is_synthetic(release) or is_estimate(release)
            else f" Numbers below {k} persons are withheld (suppressed), and others too where "
            "they would let one be worked out."
        ),
    ]
    if release.hierarchies:
        lines += ["", "Categories that add up others", "-----------------------------"]
        for dim, parents in release.hierarchies.items():
            for parent, children in parents.items():
                lines.append(f"  {dim}: {parent} = " + " + ".join(children))
    if release.labels:
        lines += ["", "Codes and their labels", "----------------------"]
        for dim in release.dimensions:
            for code, label in release.labels.get(dim, {}).items():
                if label and label != code:
                    lines.append(f"  {dim}: {code} = {label}")
        lines.append("  (a code not listed is its own label)")
    lines += [
        "",
        "Sources",
        "-------",
        f"{', '.join(release.sources) or 'not named under their agreements'} "
        f"({release.source_count} in all).",
        "",
    ]
    return "\n".join(lines)


def _synthetic_lines(release: Release) -> list[str]:
    """The README's section on synthetic records: what a row is and is not."""
    utility = [
        f"  {key.removeprefix('synthesis_utility_')}: {value}"
        for key, value in sorted(release.metadata.items())
        if key.startswith("synthesis_utility_")
    ]
    lines = [
        "Synthetic records",
        "-----------------",
        f"Each row of NNNNNN.csv is {SYNTHETIC_MEANING.format(k=release.k)}. Each attribute's "
        f"count over the records is the true count rounded down to a multiple of {release.k}; "
        "combinations of attributes are kept only approximately. Utility against the real "
        "persons, per number of attributes combined:",
        *utility,
    ]
    if companion_counts(release):
        k = release.k
        meaning = SYNTHETIC_AGGREGATE_MEANING.format(
            k=k, k1=k - 1, length=_aggregate_length(release)
        )
        lines += [
            "",
            "Counts beside the records (NNNNNN.aggregate.csv)",
            "------------------------------------------------",
            f"Each row is one combination of attributes and its count: {meaning}. Use these "
            "counts for tables of up to that many attributes, and the synthetic records for "
            "everything else (longer combinations, record-level models). The counts are in "
            "the same signed release as the records. The columns: combination (the "
            "attributes, 'column:value' joined by ';'), one column per attribute "
            f"('{TOTAL}' when the combination does not involve it), count.",
        ]
    return lines


def _estimate_lines(release: Release) -> list[str]:
    """The README's section on an estimate: what the numbers are and what they assume."""
    lines = [
        "An estimate and its interval",
        "----------------------------",
        "'observed' counts the victims the agencies detected; 'estimate' is a multiple-systems "
        "estimate of all victims, detected and not, from how the agencies' lists of linked "
        "persons overlap; 'ci_low' to 'ci_high' is its interval "
        f"({release.metadata.get('interval_method', '')}, level "
        f"{release.metadata.get('interval_level', '')}). Use the estimate only with its "
        "interval. An empty value is " + NO_ESTIMATE_MEANING,
        "The estimate holds only as far as these assumptions do:",
    ]
    lines += [f"  {name}: {text}" for name, text in estimate_assumptions(release).items()]
    return lines


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _write_tmp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def atomic_write(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole, replacing what is there: written to a temporary name in the
    same folder, flushed, renamed into place."""
    tmp = _write_tmp(path, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def _atomic_create(path: Path, data: bytes) -> bool:
    """Put ``data`` at ``path`` whole, only if nothing is there; False if something already was.

    The complete temporary file is hard-linked into place, so of two writers racing for the same
    name exactly one wins and neither replaces the other. On a file system without hard links it
    falls back to a checked rename (the race window is then the check).
    """
    tmp = _write_tmp(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _json_bytes(d: Any) -> bytes:
    return (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class ReleaseWriter:
    """Writes each release's files under ``out_dir/<stream>/`` and updates ``latest.json``.

    A sequence's files are written once: a re-send of the same signed release is a duplicate
    (nothing rewritten, missing files completed), a different release for a held sequence raises
    :class:`~consumers.errors.ReleaseConflict` (see the module docstring). ``latest.json`` and
    ``README.txt`` only move forward, to the highest sequence written. ``charts``: also draw the
    release's charts (:func:`consumers.charts.write_charts`) into ``<stream>/charts/``.
    """

    def __init__(self, out_dir: Path, *, charts: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.charts = charts

    def write(self, release: Release) -> Written:
        """Write ``release``, or recognise it as held; return what was written.

        Raises:
            ReleaseConflict: a different release is held for this stream and sequence (or the
                held one cannot be read); no file was changed.
            OSError: a file could not be written; writing the same release again completes it.
        """
        folder = self.out_dir / release.stream
        folder.mkdir(parents=True, exist_ok=True)
        stem = _stem(release)
        csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
        others: dict[Path, Callable[[], bytes]] = {
            csv_path: lambda: release_csv(release).encode("utf-8"),
            folder / f"{stem}.metadata.json": lambda: _json_bytes(release_metadata(release)),
            folder / f"{stem}.parquet": lambda: release_parquet(release),
        }
        if companion_counts(release):  # synthetic records: their counts beside them
            others[folder / f"{stem}.aggregate.csv"] = lambda: companion_csv(release).encode(
                "utf-8"
            )
        digest = signed_digest(release)
        result = Written()
        # the .json first: once it is in place, this sequence is held
        if _atomic_create(json_path, _json_bytes(release_to_json(release))):
            result.paths.append(json_path)
        else:
            self._check_held(release, json_path, digest)
            result.duplicate = True
        for path, content in others.items():
            if not result.duplicate or not path.exists():  # a re-send completes what is missing
                atomic_write(path, content())
                result.paths.append(path)
        if self.charts:
            from consumers.charts import write_charts  # matplotlib: only when charts are asked

            result.paths += write_charts(release, folder / CHARTS, missing_only=True)
            if is_estimate(release):  # and the estimates over time, this one included
                from consumers.estimate_chart import write_folder_chart

                result.paths += write_folder_chart(folder, folder / CHARTS)
        result.paths.sort(key=lambda p: p != csv_path)  # the CSV first, as ever
        latest = folder / "latest.json"
        latest_sequence = self._latest_sequence(latest)
        if latest_sequence < release.sequence or (
            latest_sequence == release.sequence and not result.duplicate
        ):
            readme = folder / "README.txt"
            atomic_write(readme, readme_text(release).encode("utf-8"))
            result.paths.append(readme)
            pointer = {
                "stream": release.stream,
                "sequence": release.sequence,
                "release_id": release.release_id,
                "issued_at_ms": release.issued_at_ms,
                "csv": csv_path.name,
                "json": json_path.name,
                "metadata": f"{stem}.metadata.json",
                "parquet": f"{stem}.parquet",
            }
            atomic_write(latest, _json_bytes(pointer))
            result.paths.append(latest)
        return result

    @staticmethod
    def _check_held(release: Release, json_path: Path, digest: str) -> None:
        try:
            held = release_from_json(json.loads(json_path.read_text(encoding="utf-8")))
        except Exception:  # missing, not JSON, not a release: anything but a comparable one
            raise ReleaseConflict(
                ConsumerReason.HELD_UNREADABLE,
                stream=release.stream,
                sequence=release.sequence,
                held=json_path,
                new_digest=digest,
            ) from None
        held_digest = signed_digest(held)
        if held_digest != digest:
            raise ReleaseConflict(
                ConsumerReason.SEQUENCE_CONFLICT,
                stream=release.stream,
                sequence=release.sequence,
                held=json_path,
                held_digest=held_digest,
                new_digest=digest,
            )

    @staticmethod
    def _latest_sequence(latest: Path) -> int:
        try:
            return int(json.loads(latest.read_text(encoding="utf-8"))["sequence"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            return 0  # an unreadable pointer is replaced by a good one
