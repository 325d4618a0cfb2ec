"""Corrupt an agency export on purpose, so tests and the demo can show rows being rejected."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

from producers.mapping import Mapping
from schemas.errors import ReasonCode

UNKNOWN_CODE = "#not-a-code#"
BAD_DATE = "not a date"
BAD_AGE = "999"


@dataclass(frozen=True, slots=True)
class Fault:
    """One corrupted row: where, how, and the problem the mapper must report for it."""

    row: int
    kind: str  # unknown_code | bad_date | out_of_range | missing_victim_id
    column: str
    path: str  # the ICS-TIP path as written in the mapping (``[]`` without an index)
    code: ReasonCode


def bad_rows(
    path_in: Path | str,
    path_out: Path | str,
    n: int,
    seed: int,
    *,
    mapping: Mapping | None = None,
) -> list[Fault]:
    """Copy a CSV export to ``path_out`` with exactly ``n`` distinct rows corrupted.

    Faults cycle through an unknown code, an unparseable date, age (or year) 999 and an empty
    victim id, using the columns of ``mapping`` (default: ``mapping.yaml`` beside ``path_in``).
    Returns the faults by row number; every other byte of the export is unchanged in meaning.
    """
    src = Path(path_in)
    m = mapping if mapping is not None else Mapping.load(src.parent / "mapping.yaml")
    raw = src.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    records = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    header, body = records[0], records[1:]
    if not 0 <= n <= len(body):
        raise ValueError(f"cannot corrupt {n} rows of an export with {len(body)}")
    position = {name: i for i, name in enumerate(header)}

    kinds: list[tuple[str, str, str, ReasonCode, str]] = []  # kind, column, path, code, value
    coded = [f for f in m.fields if f.codes is not None and f.column in position]
    if coded:
        f = coded[0]
        kinds.append(
            ("unknown_code", f.column, f.target.path, ReasonCode.UNKNOWN_CODE, UNKNOWN_CODE)
        )
    dated = [f for f in m.fields if f.target.kind == "date" and f.column in position]
    if dated:
        f = dated[0]
        kinds.append(("bad_date", f.column, f.target.path, ReasonCode.BAD_FORMAT, BAD_DATE))
    ints = [f for f in m.fields if f.target.kind == "int" and f.column in position]
    if ints:
        f = ints[0]
        kinds.append(("out_of_range", f.column, f.target.path, ReasonCode.OUT_OF_RANGE, BAD_AGE))
    if m.victim_column is not None:  # None: ids hash each row, no id cell to empty
        kinds.append(
            (
                "missing_victim_id",
                m.victim_column,
                "$.victims[].victim_id",
                ReasonCode.MISSING_VALUE,
                "",
            )
        )

    rng = random.Random(f"{seed}:faults")
    chosen = sorted(rng.sample(range(1, len(body) + 1), n))
    faults: list[Fault] = []
    for i, row in enumerate(chosen):
        kind, column, path, code, value = kinds[i % len(kinds)]
        cells = body[row - 1]
        cells.extend([""] * (len(header) - len(cells)))
        cells[position[column]] = value
        faults.append(Fault(row, kind, column, path, code))

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    out = Path(path_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(buf.getvalue(), encoding="utf-8-sig" if bom else "utf-8", newline="")
    return faults
