"""Rows of an agency export (CSV or JSON Lines), each with its data-row number.

A row number is what an agency needs to find a rejected row again ("row 17"); a row's values are
never put into an error, since they may be names or dates of birth.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ReasonCode

__all__ = ["ReaderError", "Row", "read_rows"]


class ReaderError(Exception):
    """The export cannot be read as rows. Carries a row number when one is known, never a value."""

    code: ReasonCode = ReasonCode.BAD_FORMAT

    def __init__(self, message: str, *, row: int | None = None) -> None:
        where = f"row {row}: " if row is not None else ""
        super().__init__(where + message)
        self.message = message
        self.row = row


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its 1-based number (header not counted) and its cells by column name.

    Empty cells are ``None``; every other cell is the text as written (not stripped).
    """

    number: int
    values: Mapping[str, str | None]


def read_rows(path: str | Path) -> Iterator[Row]:
    """Yield the data rows of an agency export, numbered from 1.

    - ``.csv``: UTF-8 (a byte-order mark is allowed, as Excel writes one), the first record is the
      header and is not counted, so data row 1 is the second record of the file (spreadsheet row
      ``number + 1`` when no cell spans lines). Blank records are skipped but keep their number. A
      record with more cells than the header is a :class:`ReaderError`; missing trailing cells
      are ``None``.
    - ``.jsonl``: one JSON object per line; ``number`` is the line number. Blank lines are skipped.
      Strings are kept, numbers and booleans become their JSON text, ``null`` becomes ``None``;
      arrays and objects are a :class:`ReaderError`.

    Empty strings become ``None`` in both. Any other extension raises :class:`ReaderError`
    (code ``BAD_FORMAT``) before anything is read.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _read_csv(p)
    if suffix == ".jsonl":
        return _read_jsonl(p)
    raise ReaderError(f"unsupported file type {suffix or '(none)'!r}: expected .csv or .jsonl")


def _read_csv(path: Path) -> Iterator[Row]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise ReaderError(f"header is not valid CSV ({_csv_reason(e)})") from None
            _check_header(header)
            width = len(header)
            number = 0
            while True:
                number += 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    raise ReaderError(f"not valid CSV ({_csv_reason(e)})", row=number) from None
                if not cells:
                    continue
                n = len(cells)
                if n > width:
                    raise ReaderError(
                        f"{n} cells, expected at most {width} (the header's)", row=number
                    )
                if n < width:
                    cells.extend([""] * (width - n))
                pairs = zip(header, cells, strict=True)
                yield Row(number, {k: (v if v else None) for k, v in pairs})
    except UnicodeDecodeError:
        raise ReaderError("not UTF-8 text") from None


def _csv_reason(error: csv.Error) -> str:
    # csv.Error messages describe the syntax ("unexpected end of data"), not the cell contents.
    return str(error).split(":")[0]


def _check_header(header: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(header, start=1):
        if not name:
            raise ReaderError(f"header column {i} is empty: expected a column name")
        if name in seen:
            raise ReaderError(f"header column {i} repeats an earlier column name")
        seen.add(name)


def _read_jsonl(path: Path) -> Iterator[Row]:
    try:
        with path.open("r", encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise ReaderError("not a JSON object", row=number) from None
                if not isinstance(obj, dict):
                    raise ReaderError("not a JSON object", row=number)
                yield Row(number, {k: _json_cell(v, k, number) for k, v in obj.items()})
    except UnicodeDecodeError:
        raise ReaderError("not UTF-8 text") from None


def _json_cell(value: object, key: str, number: int) -> str | None:
    if isinstance(value, str):
        return value if value else None
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ReaderError(
        f"field {key!r}: expected a string, number, boolean or null, not an array or object",
        row=number,
    )
