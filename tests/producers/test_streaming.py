"""An export is mapped as it is read: the same records and problems as mapping it whole, with
a case's rows anywhere in the file, and each case built at its last row."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.mapping import Mapping
from producers.readers import Row, read_rows
from producers.simulate import SOURCES, simulate
from producers.simulate.faults import bad_rows
from producers.workflow import read_export


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(7, 1500, out)
    return out


def _shuffled(src: Path, dst: Path, seed: int) -> None:
    """The export with its rows in a random order (a case's rows end up far apart)."""
    with src.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header, body = next(reader), list(reader)
    random.Random(seed).shuffle(body)
    with dst.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *body])


@pytest.mark.parametrize("source", SOURCES)
def test_streamed_export_maps_as_the_whole_file_does(
    sim: Path, source: str, tmp_path: Path
) -> None:
    mapping_path = sim / source / "mapping.yaml"
    mapping = Mapping.load(mapping_path)
    export = tmp_path / "export.csv"
    _shuffled(sim / source / "records.csv", export, seed=len(source))
    bad_rows(export, export, 6, seed=2, mapping=mapping)
    whole = mapping.for_source(source).map_rows(read_rows(export))
    assert whole.problems, "the faults should withhold some cases"

    streamed = read_export(source, export, mapping_path)
    messages = list(streamed.stream())

    assert streamed.rows_read == sum(1 for _ in read_rows(export))
    assert streamed.cases >= len(whole.records)
    by_case = {m.partition_key: (m.rows, m.datum) for m in messages}
    assert len(by_case) == len(messages)
    assert by_case == {r.case_id: (r.rows, r.record) for r in whole.records}
    assert streamed.problems == whole.problems  # the same problems, sorted by row
    assert streamed.defaulted == whole.defaulted


def test_a_case_is_emitted_at_its_last_row_and_not_before(sim: Path) -> None:
    mapping = Mapping.load(sim / "police" / "mapping.yaml").for_source("police")
    case_column = mapping.case_column
    assert case_column is not None
    clean = [r for r in read_rows(sim / "police" / "records.csv") if mapping.map_rows([r]).records]
    cases = ("A", "B", "A", "C", "B")
    data = [
        Row(n, {**r.values, case_column: c})
        for n, (r, c) in enumerate(zip(clean, cases, strict=False), start=1)
    ]
    last = {1: False, 2: False, 3: True, 4: True, 5: True}
    pulled: list[int] = []

    def rows() -> Iterator[Row]:
        for r in data:
            pulled.append(r.number)
            yield r

    stream = iter(mapping.map_stream(rows(), last.__getitem__))
    first = next(stream)
    assert (first.case_id, first.rows, pulled) == ("A", (1, 3), [1, 2, 3])
    second = next(stream)
    assert (second.case_id, second.rows, pulled) == ("C", (4,), [1, 2, 3, 4])
    assert [(r.case_id, r.rows) for r in stream] == [("B", (2, 5))]
    whole = {r.case_id: r.record for r in mapping.map_rows(data).records}
    assert whole["A"] == first.record and whole["C"] == second.record
