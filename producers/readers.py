"""Rows of an agency export (CSV, ODK/XLSForm CSV, Excel ``.xlsx`` or JSON Lines), each with its
data-row number.

A row number is what an agency needs to find a rejected row again ("row 17"); a row's values are
never put into an error, since they may be names or dates of birth.

```python
table = open_table(Path("export.csv"), InputOptions(encoding="cp1252"))  # delimiter detected
table.header        # ('case_ref', 'gender', ...)
for row in table.rows: ...
```
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from schemas.errors import ReasonCode

__all__ = [
    "DELIMITERS",
    "FORMATS",
    "CellDate",
    "DecodeError",
    "InputOptions",
    "ReaderError",
    "Row",
    "Table",
    "detect_delimiter",
    "detect_encoding",
    "open_table",
    "read_rows",
]

#: The delimiters :func:`detect_delimiter` chooses from, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
#: Input formats; ``None`` in :class:`InputOptions` means "by the file's extension and header".
FORMATS = ("csv", "odk", "xlsx", "jsonl")
#: How many characters of a CSV file delimiter detection reads.
SAMPLE_CHARS = 1 << 16
#: Header names that mark an ODK / XLSForm (ODK Central, KoboToolbox) CSV export.
ODK_MARKERS = frozenset(
    {"meta/instanceID", "meta-instanceID", "instanceID", "KEY", "_uuid", "_submission_time"}
)


class ReaderError(Exception):
    """The export cannot be read as rows. Carries a row number when one is known, never a value."""

    code: ReasonCode = ReasonCode.BAD_FORMAT

    def __init__(self, message: str, *, row: int | None = None) -> None:
        where = f"row {row}: " if row is not None else ""
        super().__init__(where + message)
        self.message = message
        self.row = row


class DecodeError(ReaderError):
    """Bytes of the export that are not text in its encoding; ``row`` says where (0: header)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its 1-based number (header not counted) and its cells by column name.

    Empty cells are ``None``; every other cell is the text as written (not stripped).
    """

    number: int
    values: Mapping[str, str | None]


class CellDate(str):
    """A spreadsheet cell that holds a date: its text is the ISO date (or date and time), its
    ``value`` the date itself, so a date target needs no format for it."""

    value: date

    def __new__(cls, moment: date) -> CellDate:
        if isinstance(moment, datetime):
            text = moment.date().isoformat() if moment.time() == time() else moment.isoformat(" ")
            day = moment.date()
        else:
            text, day = moment.isoformat(), moment
        cell = super().__new__(cls, text)
        cell.value = day
        return cell


@dataclass(frozen=True, slots=True)
class InputOptions:
    """How to read an export; ``None`` everywhere means "detect".

    - ``encoding``: any Python text codec name (``utf-8``, ``utf-16``, ``latin-1``, ``cp1252`` …);
      ``utf-8`` also accepts a byte-order mark. Detected: UTF-8 with or without BOM, UTF-16 (by its
      BOM, or by the zero bytes of an ASCII header).
    - ``delimiter``: one character; detected among ``,`` ``;`` tab ``|``.
    - ``sheet``: the ``.xlsx`` sheet, by name; default the first sheet.
    - ``format``: one of :data:`FORMATS`; default by extension, ``odk`` for a ``.csv`` whose header
      is an ODK/XLSForm export's (``group/field`` names and its meta columns).
    """

    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    format: str | None = None

    def over(self, base: InputOptions) -> InputOptions:
        """These options where set, ``base``'s elsewhere (command-line flags over a mapping's)."""
        return InputOptions(
            self.encoding or base.encoding,
            self.delimiter or base.delimiter,
            self.sheet or base.sheet,
            self.format or base.format,
        )

    def checked(self) -> InputOptions:
        """The options with their values checked; raises :class:`ReaderError` naming the bad one."""
        if self.encoding is not None:
            _codec(self.encoding)
        if self.format is not None and self.format not in FORMATS:
            raise ReaderError(f"format: expected one of {', '.join(FORMATS)}")
        if self.delimiter is not None:
            text = _DELIMITER_NAMES.get(self.delimiter.lower(), self.delimiter)
            if len(text) != 1 or text in '"\r\n' or text.isalnum():
                raise ReaderError("delimiter: expected one character such as , ; | or tab")
            return replace(self, delimiter=text)
        return self


_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True, slots=True)
class Table:
    """An opened export: its header, its rows (read as iterated) and how it was read.

    ``list_separator`` is how the format joins the answers of a multi-select cell (``;`` in
    Excel templates, a space in ODK exports, none in plain CSV): list targets without their own
    ``split`` use it.
    """

    format: str
    header: tuple[str, ...]
    rows: Iterator[Row]
    list_separator: str | None = None
    encoding: str | None = None
    delimiter: str | None = None


def read_rows(path: str | Path, options: InputOptions | None = None) -> Iterator[Row]:
    """Yield the data rows of an agency export, numbered from 1 (see :func:`open_table`)."""
    return open_table(path, options).rows


def open_table(path: str | Path, options: InputOptions | None = None) -> Table:
    """Open an agency export; the header is read now, the rows as they are iterated.

    - ``.csv``: the first record is the header and is not counted, so data row 1 is the second
      record of the file (spreadsheet row ``number + 1`` when no cell spans lines). Blank records
      are skipped but keep their number. A record with more cells than the header is a
      :class:`ReaderError`; missing trailing cells are ``None``. Bytes that do not decode are a
      :class:`DecodeError` naming the row they are in.
    - ODK/XLSForm ``.csv``: as CSV; multi-select answers are space-separated.
    - ``.xlsx``: the sheet's first non-empty row is the header; data row ``n`` is the ``n``-th row
      below it. Numbers are read as their value (``23``, not ``23.0``), dates as :class:`CellDate`,
      booleans as ``true``/``false``; multi-select cells are ``;``-separated.
    - ``.jsonl``: one JSON object per line; ``number`` is the line number. Blank lines are skipped.
      Strings are kept, numbers and booleans become their JSON text, ``null`` becomes ``None``;
      arrays and objects are a :class:`ReaderError`. The header is every key, in order of first
      appearance (the file is read through once for it, keeping no row; the rows are read again
      as iterated).

    No format holds more than one row at a time in Python objects (an ``.xlsx`` sheet is held by
    its compiled reader).

    Empty header names become ``column_<n>`` (``n`` counts from 1); a repeated name is an error.
    Empty strings become ``None``. Any other extension raises :class:`ReaderError` (code
    ``BAD_FORMAT``) before anything is read.
    """
    p = Path(path)
    opts = (options or InputOptions()).checked()
    fmt = opts.format
    if fmt is None:
        suffix = p.suffix.lower()
        fmt = {".csv": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl"}.get(suffix, "")
        if not fmt:
            raise ReaderError(
                f"unsupported file type {suffix or '(none)'!r}: expected .csv, .xlsx or .jsonl"
            )
    if fmt == "xlsx":
        return _open_xlsx(p, opts.sheet)
    if fmt == "jsonl":
        return _open_jsonl(p, opts.encoding)
    return _open_csv(p, opts, odk=True if fmt == "odk" else None)


# --- encodings and delimiters --------------------------------------------------------------------


def _codec(name: str) -> str:
    """The codec to open a file with for the encoding the user named (UTF-8 accepts a BOM)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ReaderError(f"encoding: {name!r} is not a known text encoding") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ReaderError(f"encoding: {name!r} is not a text encoding")
    return "utf-8-sig" if info.name == "utf-8" else info.name


def detect_encoding(head: bytes) -> str:
    """The codec of a file that starts with ``head``: by byte-order mark, else UTF-16 if the
    first bytes alternate with zero bytes (a Latin-script header in UTF-16 without a BOM), else
    UTF-8 (with an optional BOM)."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head[: len(head) - len(head) % 2][:64]
    if len(sample) >= 4:  # Latin-1-range text in UTF-16: every other byte is zero, the rest not
        evens, odds = sample[0::2], sample[1::2]
        if not odds.strip(b"\x00") and b"\x00" not in evens:
            return "utf-16-le"
        if not evens.strip(b"\x00") and b"\x00" not in odds:
            return "utf-16-be"
    return "utf-8-sig"


def detect_delimiter(sample: str, *, complete: bool = True) -> str:
    """The delimiter of CSV text, among :data:`DELIMITERS` (``,`` if none splits the header).

    The winner splits the header into at least two columns and gives the most records of the
    header's width (a tie goes to the wider header, then to the earlier delimiter). ``complete``
    is False when ``sample`` is the start of a longer file: its last record may be cut and is not
    counted.
    """
    best: tuple[bool, int, int, int] | None = None
    choice = ","
    for rank, d in enumerate(DELIMITERS):
        records = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=d) if r]
        if not complete and len(records) > 1:
            records.pop()
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        body = records[1:200]
        agree = sum(1 for r in body if len(r) == width)
        score = (agree == len(body), agree, width, -rank)
        if best is None or score > best:
            best, choice = score, d
    return choice


def _decode_error_row(path: Path, codec: str, delimiter: str) -> int:
    """The record (0: header, n: data row n) holding the first bytes that do not decode."""
    data = path.read_bytes()
    try:
        data.decode(codec)
    except UnicodeDecodeError as e:
        prefix = data[: e.start].decode(codec, errors="replace")
    else:  # pragma: no cover - the caller saw the error; nothing to locate
        return 0
    records = list(csv.reader(io.StringIO(prefix, newline=""), delimiter=delimiter))
    if not records:
        return 0
    return len(records) if prefix.endswith(("\n", "\r")) else len(records) - 1


def _decode_failure(path: Path, codec: str, delimiter: str) -> DecodeError:
    row = _decode_error_row(path, codec, delimiter)
    hint = "; name the file's encoding with --encoding (e.g. cp1252 for Windows Latin-1)"
    name = "UTF-8" if codec == "utf-8-sig" else codec
    if row == 0:
        return DecodeError(f"the header is not {name} text{hint}")
    return DecodeError(f"not {name} text{hint}", row=row)


# --- CSV -----------------------------------------------------------------------------------------


def _open_csv(path: Path, opts: InputOptions, *, odk: bool | None) -> Table:
    try:
        with path.open("rb") as raw:
            head = raw.read(SAMPLE_CHARS)
            complete = not raw.read(1)
    except OSError as e:
        raise ReaderError(f"cannot be read ({type(e).__name__})") from None
    codec = _codec(opts.encoding) if opts.encoding else detect_encoding(head)
    delimiter = opts.delimiter
    if delimiter is None:
        text = head.decode(codec, errors="replace")
        delimiter = detect_delimiter(text, complete=complete)
    f = path.open("r", encoding=codec, newline="")
    reader = csv.reader(f, strict=True, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        f.close()
        return Table("csv", (), iter(()), None, codec, delimiter)
    except csv.Error as e:
        f.close()
        raise ReaderError(f"header is not valid CSV ({_csv_reason(e)})") from None
    except UnicodeDecodeError:
        f.close()
        raise _decode_failure(path, codec, delimiter) from None
    names = _header(header)
    is_odk = _looks_odk(names) if odk is None else odk
    fmt, separator = ("odk", " ") if is_odk else ("csv", None)
    return Table(fmt, names, _csv_rows(f, reader, names, path, codec), separator, codec, delimiter)


def _csv_rows(
    f: io.TextIOWrapper, reader: Any, header: tuple[str, ...], path: Path, codec: str
) -> Iterator[Row]:
    width = len(header)
    number = 0
    with f:
        try:
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
            raise _decode_failure(path, codec, reader.dialect.delimiter) from None


def _looks_odk(header: tuple[str, ...]) -> bool:
    grouped = sum(1 for h in header if "/" in h)
    return grouped > 0 and (bool(ODK_MARKERS.intersection(header)) or 2 * grouped > len(header))


def _csv_reason(error: csv.Error) -> str:
    # csv.Error messages describe the syntax ("unexpected end of data"), not the cell contents.
    return str(error).split(":")[0]


def _header(cells: list[Any]) -> tuple[str, ...]:
    names: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(cells, start=1):
        name = _cell_text(cell) or f"column_{i}"
        if name in seen:
            raise ReaderError(f"header column {i} repeats an earlier column name")
        seen.add(name)
        names.append(name)
    return tuple(names)


# --- Excel ---------------------------------------------------------------------------------------


def _open_xlsx(path: Path, sheet: str | None) -> Table:
    from python_calamine import CalamineWorkbook  # a compiled reader: loaded only for .xlsx

    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as e:  # calamine raises its own error types; none carries cell values
        raise ReaderError(f"not a readable .xlsx workbook ({type(e).__name__})") from None
    names: list[str] = list(book.sheet_names)
    if not names:
        raise ReaderError("the workbook has no sheet")
    if sheet is not None and sheet not in names:
        raise ReaderError(f"no sheet named {sheet!r}; the workbook has {', '.join(names)}")
    try:
        opened = book.get_sheet_by_name(sheet or names[0])
        # the row iterator starts at the sheet's first used column: put the empty ones back
        pad: list[Any] = [None] * (opened.start[1] if opened.start else 0)
        grid: Iterator[list[Any]] = (pad + r for r in opened.iter_rows())
        first = next((r for r in grid if any(_cell_text(c) for c in r)), None)
    except Exception as e:
        raise ReaderError(f"the sheet cannot be read ({type(e).__name__})") from None
    if first is None:
        return Table("xlsx", (), iter(()), ";")
    header = _header(_trim(first))
    return Table("xlsx", header, _xlsx_rows(grid, header), ";")


def _trim(cells: list[Any]) -> list[Any]:
    end = len(cells)
    while end and not _cell_text(cells[end - 1]):
        end -= 1
    return cells[:end]


def _xlsx_rows(grid: Iterator[list[Any]], header: tuple[str, ...]) -> Iterator[Row]:
    """The rows below the header (``grid`` is the sheet's row iterator, past the header)."""
    width = len(header)
    for number, cells in enumerate(grid, start=1):
        values = [_cell_text(c) for c in cells]
        if not any(values):
            continue
        if any(values[width:]):
            raise ReaderError(f"a cell right of the header's {width} columns", row=number)
        values.extend([None] * (width - len(values)))
        yield Row(number, dict(zip(header, values[:width], strict=True)))


def _cell_text(value: Any) -> str | None:
    """A spreadsheet cell as the text the mapper reads (``None``: empty)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, date):  # datetime too
        return CellDate(value)
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


# --- JSON Lines ----------------------------------------------------------------------------------


def _open_jsonl(path: Path, encoding: str | None) -> Table:
    codec = _codec(encoding) if encoding else "utf-8-sig"
    keys: dict[str, None] = {}
    for row in _jsonl_rows(path, codec):  # the header: every key; each row checked, then dropped
        keys.update(dict.fromkeys(row.values))
    return Table("jsonl", tuple(keys), _jsonl_rows(path, codec), None, codec)


def _jsonl_rows(path: Path, codec: str) -> Iterator[Row]:
    try:
        with path.open("r", encoding=codec) as f:
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
    except OSError as e:
        raise ReaderError(f"cannot be read ({type(e).__name__})") from None
    except UnicodeDecodeError:
        name = "UTF-8" if codec == "utf-8-sig" else codec
        raise DecodeError(f"not {name} text; name the file's encoding with --encoding") from None


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
