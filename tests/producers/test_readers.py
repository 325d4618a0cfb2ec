"""Rows of CSV and JSON Lines exports: numbering, empty cells, BOM, malformed input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.readers import ReaderError, Row, read_rows
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


@pytest.mark.parametrize("name", ["x.xlsx", "x.txt", "noext"])
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
