"""Rows of CSV, ODK, Excel and JSON Lines exports: numbering, empty cells, encodings and
delimiters (detected or named), malformed input."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.readers import (
    DELIMITERS,
    CellDate,
    DecodeError,
    InputOptions,
    ReaderError,
    Row,
    detect_delimiter,
    detect_encoding,
    open_table,
    read_rows,
)
from schemas.errors import ReasonCode


def write_csv(path: Path, rows: list[list[str]], *, bom: bool = False) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8-sig" if bom else "utf-8", newline="")
    return path


def test_csv_round_trip_numbers_rows_from_one_after_the_header(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv",
        [["case", "name", "age"], ["c1", "Ana", "30"], ["c1", "", "31"], ["c2", "Bo", ""]],
    )
    rows = list(read_rows(path))
    assert rows == [
        Row(1, {"case": "c1", "name": "Ana", "age": "30"}),
        Row(2, {"case": "c1", "name": None, "age": "31"}),
        Row(3, {"case": "c2", "name": "Bo", "age": None}),
    ]


def test_csv_with_bom_keeps_first_column_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["case_ref", "b"], ["1", "2"]], bom=True)
    (row,) = read_rows(path)
    assert row.values == {"case_ref": "1", "b": "2"}


def test_csv_blank_records_are_skipped_but_keep_their_number(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n\n3,4\n", encoding="utf-8")
    assert [r.number for r in read_rows(path)] == [1, 3]


def test_csv_short_rows_are_padded_and_long_rows_rejected_with_row_number(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1\n1,2,3,4\n", encoding="utf-8")
    rows = read_rows(path)
    assert next(rows) == Row(1, {"a": "1", "b": None, "c": None})
    with pytest.raises(ReaderError) as e:
        next(rows)
    assert e.value.row == 2
    assert e.value.code is ReasonCode.BAD_FORMAT


def test_csv_duplicate_header_is_rejected(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["a", "a"], ["1", "2"]])
    with pytest.raises(ReaderError, match="repeats"):
        list(read_rows(path))


def test_csv_not_utf8_is_bad_format(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("name\nJosé\n".encode("latin-1"))
    with pytest.raises(ReaderError) as e:
        list(read_rows(path))
    assert e.value.code is ReasonCode.BAD_FORMAT
    assert "Jos" not in str(e.value)


def test_jsonl_numbers_lines_and_converts_scalars(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    lines = [
        json.dumps({"case": "c1", "age": 30, "ok": True, "x": None, "e": ""}),
        "",
        json.dumps({"case": "c2", "score": 1.5}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert list(read_rows(path)) == [
        Row(1, {"case": "c1", "age": "30", "ok": "true", "x": None, "e": None}),
        Row(3, {"case": "c2", "score": "1.5"}),
    ]


@pytest.mark.parametrize("line", ["[1, 2]", '{"a": [1]}', "{not json"])
def test_jsonl_rejects_non_objects_and_nested_values(tmp_path: Path, line: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": "1"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ReaderError) as e:
        list(read_rows(path))
    assert e.value.row == 2


@pytest.mark.parametrize("name", ["x.xlsx", "x.txt", "noext"])  # x.xlsx: not a workbook
def test_unknown_extension_is_bad_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(ReaderError) as e:
        read_rows(path)
    assert e.value.code is ReasonCode.BAD_FORMAT


cells = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=8))
def test_arbitrary_text_cells_survive_a_csv_write_and_read(
    tmp_path_factory: pytest.TempPathFactory, table: list[list[str]]
) -> None:
    path = write_csv(tmp_path_factory.mktemp("h") / "x.csv", [["a", "b", "c"], *table], bom=True)
    rows = list(read_rows(path))
    expected = [
        (i, {k: (v or None) for k, v in zip("abc", cells_, strict=True)})
        for i, cells_ in enumerate(table, start=1)
    ]
    assert [(r.number, dict(r.values)) for r in rows] == expected


# --- delimiters and encodings --------------------------------------------------------------------


def write_text(path: Path, rows: list[list[str]], *, delimiter: str, encoding: str) -> Path:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


names = st.text(st.sampled_from("abcdefgh_"), min_size=1, max_size=8)
# cells without any candidate delimiter: quotes, spaces, newlines and non-ASCII text are allowed
plain_cells = st.text(
    st.characters(exclude_categories=["Cs", "Cc"], exclude_characters=",;\t|\x00"), max_size=12
) | st.sampled_from(['"quoted"', "two\nlines", " "])


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(DELIMITERS),
    st.lists(names, min_size=2, max_size=6, unique=True),
    st.data(),
)
def test_the_delimiter_is_detected(delimiter: str, header: list[str], data: st.DataObject) -> None:
    body = data.draw(
        st.lists(st.lists(plain_cells, min_size=len(header), max_size=len(header)), max_size=6)
    )
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows([header, *body])
    assert detect_delimiter(buf.getvalue()) == delimiter


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_a_delimited_file_reads_with_its_detected_delimiter(tmp_path: Path, delimiter: str) -> None:
    path = write_text(
        tmp_path / "x.csv",
        [["case", "sex", "note"], ["c1", "F", "a, b; c | d"], ["c2", "M", ""]],
        delimiter=delimiter,
        encoding="utf-8",
    )
    table = open_table(path)
    assert table.delimiter == delimiter
    assert table.header == ("case", "sex", "note")
    assert [dict(r.values) for r in table.rows] == [
        {"case": "c1", "sex": "F", "note": "a, b; c | d"},
        {"case": "c2", "sex": "M", "note": None},
    ]


def test_a_named_delimiter_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a;b,c\n1;2,3\n", encoding="utf-8")
    assert open_table(path).header == ("a;b", "c")  # detection: two commas-separated columns
    assert open_table(path, InputOptions(delimiter=";")).header == ("a", "b,c")
    assert open_table(path, InputOptions(delimiter="tab")).header == ("a;b,c",)


@pytest.mark.parametrize("bad", ["ab", "a", '"', "\n"])
def test_a_bad_delimiter_option_is_refused(tmp_path: Path, bad: str) -> None:
    path = write_csv(tmp_path / "x.csv", [["a"], ["1"]])
    with pytest.raises(ReaderError, match="delimiter"):
        open_table(path, InputOptions(delimiter=bad))


ROWS = [["case", "name"], ["c1", "José Müller"], ["c2", "Zoë Ørsted"]]


@pytest.mark.parametrize(
    ("written", "option"),
    [
        ("utf-8", None),
        ("utf-8-sig", None),
        ("utf-16", None),  # with a BOM
        ("utf-16-le", None),  # without: found by the zero bytes of the ASCII header
        ("utf-16-be", None),
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8"),  # utf-8 accepts a BOM
        ("latin-1", "latin-1"),
        ("cp1252", "cp1252"),
        ("cp1252", "windows-1252"),
    ],
)
def test_encodings(tmp_path: Path, written: str, option: str | None) -> None:
    path = write_text(tmp_path / "x.csv", ROWS, delimiter=";", encoding=written)
    table = open_table(path, InputOptions(encoding=option))
    assert table.header == ("case", "name")
    assert [r.values["name"] for r in table.rows] == ["José Müller", "Zoë Ørsted"]
    assert table.delimiter == ";"


any_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
latin_text = st.text(st.characters(min_codepoint=1, max_codepoint=255))


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"]), st.data())
def test_encodings_are_detected(encoding: str, data: st.DataObject) -> None:
    header = data.draw(st.lists(names, min_size=1, max_size=4, unique=True))
    # without a BOM, UTF-16 is recognised by a Latin-script start (its zero high bytes)
    body = data.draw(latin_text if encoding in ("utf-16-le", "utf-16-be") else any_text)
    text = ",".join(header) + "\n" + body
    detected = detect_encoding(text.encode(encoding)[:4096])
    assert text.encode(encoding).decode(detected) == text.removeprefix("\ufeff")


def test_a_decoding_failure_names_its_row_and_never_the_text(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    good = "case,name\n" + "".join(f"c{i},Ana\n" for i in range(1, 5000))
    path.write_bytes(good.encode() + "c5000,José\n".encode("latin-1") + b"c5001,Bo\n")
    with pytest.raises(DecodeError) as e:
        list(read_rows(path))
    assert e.value.row == 5000
    assert e.value.code is ReasonCode.BAD_FORMAT
    assert "Jos" not in str(e.value) and "--encoding" in str(e.value)
    # cp1252 has five undefined bytes: a file that is not cp1252 either fails there
    path.write_bytes(b"a,b\n1,2\n3,\x81\n")
    with pytest.raises(DecodeError) as e:
        list(read_rows(path, InputOptions(encoding="cp1252")))
    assert e.value.row == 2


def test_a_decoding_failure_inside_a_multiline_cell_counts_records(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b'a,b\n1,"two\nlines"\n2,\xe9\n')
    with pytest.raises(DecodeError) as e:
        list(read_rows(path))
    assert e.value.row == 2
    path.write_bytes(b"a,\xe9\n1,2\n")
    with pytest.raises(DecodeError, match="header") as e:
        list(read_rows(path))
    assert e.value.row is None


def test_an_unknown_encoding_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["a"], ["1"]])
    with pytest.raises(ReaderError, match="encoding"):
        open_table(path, InputOptions(encoding="klingon"))
    with pytest.raises(ReaderError, match="not a text encoding"):
        open_table(path, InputOptions(encoding="base64"))


def test_empty_header_names_are_numbered(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["", "a", ""], ["1", "2", "3"]])
    table = open_table(path)
    assert table.header == ("column_1", "a", "column_3")
    assert next(table.rows).values == {"column_1": "1", "a": "2", "column_3": "3"}


# --- ODK / XLSForm exports -----------------------------------------------------------------------


def test_an_odk_export_is_recognised_by_its_header(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv",
        [
            ["SubmissionDate", "victim/sex", "victim/forms", "meta/instanceID", "KEY"],
            ["2024-01-01", "female", "forced_labour sexual_exploitation", "uuid:1", "uuid:1"],
        ],
    )
    table = open_table(path)
    assert (table.format, table.list_separator) == ("odk", " ")
    plain = write_csv(tmp_path / "y.csv", [["a/b", "c", "d"], ["1", "2", "3"]])
    assert open_table(plain).format == "csv"  # one grouped name of three, no ODK meta column
    assert open_table(plain, InputOptions(format="odk")).format == "odk"


# --- Excel -----------------------------------------------------------------------------------


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_xlsx_reads_values_dates_and_numbers(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "x.xlsx",
        {
            "Notes": [["ignore me"]],
            "Cases": [
                ["case", "dob", "age", "forms", "ok", "score", "seen", None],
                ["c1", date(2001, 3, 5), 23, "a;b", True, 1.5, datetime(2024, 5, 1, 10, 30)],
                [None],
                [447911123456.0, None, 23.0, "", False, 1e20, datetime(2024, 5, 2)],
            ],
        },
    )
    table = open_table(path, InputOptions(sheet="Cases"))
    assert (table.format, table.list_separator) == ("xlsx", ";")
    assert table.header == ("case", "dob", "age", "forms", "ok", "score", "seen")
    first, second = table.rows
    assert first.number == 1 and second.number == 3  # the empty spreadsheet row keeps its number
    assert dict(first.values) == {
        "case": "c1",
        "dob": "2001-03-05",
        "age": "23",
        "forms": "a;b",
        "ok": "true",
        "score": "1.5",
        "seen": "2024-05-01 10:30:00",
    }
    assert isinstance(first.values["dob"], CellDate)
    assert first.values["dob"].value == date(2001, 3, 5)
    # whole numbers as written (a phone number stored as a number keeps its digits); beyond
    # 2**53 a float has no exact digits, so it is written as the float it is
    assert second.values["case"] == "447911123456" and second.values["age"] == "23"
    assert second.values["score"] == "1e+20"
    assert second.values["ok"] == "false" and second.values["forms"] is None
    assert second.values["seen"] == "2024-05-02"


def test_xlsx_first_sheet_by_default_and_a_missing_sheet_is_named(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "x.xlsx", {"A": [["a"], [1]], "B": [["b"], [2]]})
    assert open_table(path).header == ("a",)
    with pytest.raises(ReaderError, match="no sheet named 'C'; the workbook has A, B"):
        open_table(path, InputOptions(sheet="C"))


def test_xlsx_cells_beyond_the_header_are_refused_with_their_row(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "x.xlsx", {"A": [["a", "b"], [1, 2], [1, 2, "stray"]]})
    rows = open_table(path).rows
    assert next(rows).values == {"a": "1", "b": "2"}
    with pytest.raises(ReaderError) as e:
        next(rows)
    assert e.value.row == 2 and "stray" not in str(e.value)


def test_a_file_that_is_not_a_workbook_is_bad_format(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ReaderError) as e:
        open_table(path)
    assert e.value.code is ReasonCode.BAD_FORMAT


def test_jsonl_header_is_every_key_in_order(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"b": 2, "a": 3}\n', encoding="utf-8")
    assert open_table(path).header == ("a", "b")
