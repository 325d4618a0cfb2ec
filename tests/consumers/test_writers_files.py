"""A consumer's folder explains itself: README, sidecar metadata, Parquet with the metadata in its
schema, charts on request; a re-send completes whatever files of a held release are missing."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.errors import ConsumerReason, ReleaseFileError
from consumers.writers import (
    CHARTS,
    ReleaseWriter,
    read_release_file,
    readme_text,
    release_csv,
    release_metadata,
    release_parquet,
)
from schemas.release import Release

from .conftest import STREAM, make_release, release_with_margins, signed, snapshot, verified

AGE_LABELS = {"age_group": {"0-17": "Children (0-17 years)", "Unknown": "Age not recorded"}}
AGE_HIERARCHY: dict[str, dict[str, tuple[str, ...]]] = {
    "age_group": {"0-17": ("0-11", "12-17"), "18+": ("18-24", "25-34")}
}
COUNTS: dict[tuple[str, ...], int] = {
    ("2020", "0-11"): 12,
    ("2020", "12-17"): 4,
    ("2020", "18-24"): 31,
    ("2020", "25-34"): 25,
    ("2020", "Unknown"): 2,
}


@pytest.fixture(scope="module")
def release() -> Release:
    return release_with_margins(
        ("year", "age_group"),
        COUNTS,
        hierarchies=AGE_HIERARCHY,
        labels=AGE_LABELS,
        stream="victims_by_year_age_group",
        title="Detected victims by year of exploitation and age group",
    )


def test_the_readme_explains_every_column_k_the_caveat_suppression_and_labels(
    release: Release,
) -> None:
    readme = readme_text(release)
    assert release.title in readme and release.caveat in readme
    assert "below 10 persons" in readme and "no number published here is below 10" in readme
    assert "never read an empty value as 0" in readme
    for column in (*release.dimensions, "value", "exact", "suppressed"):
        assert f"  {column}: " in readme
    assert "'Total' when the number is not broken down by age_group" in readme
    assert "age_group: 0-17 = 0-11 + 12-17" in readme
    assert "age_group: 0-17 = Children (0-17 years)" in readme
    assert "protection_level = 10" in readme and "k = 10" in readme
    for name in ("NNNNNN.metadata.json", "NNNNNN.parquet", "NNNNNN.json", f"{CHARTS}/"):
        assert name in readme
    assert "What one count is: one count per person" in readme


def test_the_sidecar_says_what_the_numbers_are(release: Release) -> None:
    meta = release_metadata(release)
    assert meta["describes"] == ["000001.csv", "000001.parquet"]
    assert meta["k"] == 10 and meta["caveat"] == release.caveat
    assert meta["method"] == {
        "name": "primary suppression below k",
        "parameters": {"k": "10", "protection_level": "10"},
    }
    assert meta["labels"] == AGE_LABELS
    assert meta["hierarchies"] == {
        "age_group": {"0-17": ["0-11", "12-17"], "18+": ["18-24", "25-34"]}
    }
    assert meta["period"] == {"start": 2020, "end": 2020}
    assert meta["counting_rule"] == "one count per person"
    assert set(meta["columns"]) == {"year", "age_group", "value", "exact", "suppressed"}
    assert "below 10" in meta["suppressed"] and "rounded or perturbed" in meta["exact_false"]
    assert meta["sources"] == {"named": ["src-a", "src-b"], "count": 2}
    # it describes the numbers without holding them (total 74, adults 56)
    assert "aggregates" not in meta and not {"74", "56"} & set(re.findall(r"\d+", json.dumps(meta)))


def test_the_parquet_holds_the_csv_rows_with_labels_and_the_metadata(release: Release) -> None:
    table = pq.read_table(io.BytesIO(release_parquet(release)))
    assert table.schema.field("value").type == "int64"
    meta = json.loads(table.schema.metadata[b"tiptrust.release"])
    assert meta == json.loads(json.dumps(release_metadata(release)))
    described = table.schema.field("suppressed").metadata[b"description"].decode()
    assert "below 10" in described
    rows = table.to_pylist()
    expected = list(csv.DictReader(io.StringIO(release_csv(release))))
    assert len(rows) == len(expected) == len(release.aggregates)
    for got, want in zip(rows, expected, strict=True):
        assert got["year"] == want["year"] and got["age_group"] == want["age_group"]
        assert got["value"] == (None if want["value"] == "" else int(want["value"]))
        assert got["exact"] == (want["exact"] == "true")
        assert got["suppressed"] == (want["suppressed"] == "true")
    children = next(r for r in rows if r["age_group"] == "0-17" and r["year"] == "Total")
    assert children["age_group_label"] == "Children (0-17 years)" and children["value"] == 16
    unknown = next(r for r in rows if r["age_group"] == "Unknown" and r["year"] == "2020")
    assert unknown["value"] is None and unknown["suppressed"]
    assert {r["year_label"] for r in rows} == {"2020", "Total"}


def test_a_rate_release_has_float_values_in_parquet() -> None:
    rates = make_release(1, (12, None))
    from dataclasses import replace

    from schemas.release import Aggregate

    rated = replace(
        rates,
        unit="detected victims per 100,000 population",
        aggregates=(*rates.aggregates[:-1], Aggregate((), (), 1.5, True)),
    )
    table = pq.read_table(io.BytesIO(release_parquet(rated)))
    assert table.schema.field("value").type == "double"
    assert table.column("value").to_pylist() == [12.0, None, 1.5]


counts = st.lists(st.one_of(st.none(), st.integers(10, 10**6)), min_size=1, max_size=5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts)
def test_parquet_and_csv_hold_the_same_numbers(values: list[int | None]) -> None:
    release = make_release(3, tuple(values))
    table = pq.read_table(io.BytesIO(release_parquet(release))).to_pylist()
    rows = list(csv.DictReader(io.StringIO(release_csv(release))))
    assert [r["value"] for r in table] == [
        None if r["value"] == "" else int(r["value"]) for r in rows
    ]
    assert [r["suppressed"] for r in table] == [r["suppressed"] == "true" for r in rows]


# --- the writer -----------------------------------------------------------------------------------


def test_a_resend_completes_the_new_files_of_a_held_release(tmp_path: Path) -> None:
    release = verified(signed(make_release(1)))
    writer = ReleaseWriter(tmp_path)
    first = writer.write(release)
    folder = tmp_path / STREAM
    assert [p.name for p in first.paths] == [
        "000001.csv",
        "000001.json",
        "000001.metadata.json",
        "000001.parquet",
        "README.txt",
        "latest.json",
    ]
    before = snapshot(folder)
    for name in ("000001.metadata.json", "000001.parquet"):  # as written by an older tiptrust
        (folder / name).unlink()
    again = writer.write(release)
    assert again.duplicate
    assert [p.name for p in again.paths] == ["000001.metadata.json", "000001.parquet"]
    after = snapshot(folder)
    assert {n: b for n, (b, _) in after.items()} == {n: b for n, (b, _) in before.items()}
    assert after["000001.json"] == before["000001.json"]  # the held release untouched
    latest = json.loads((folder / "latest.json").read_text())
    assert latest["metadata"] == "000001.metadata.json" and latest["parquet"] == "000001.parquet"


def test_the_writer_draws_charts_on_request_and_completes_them(tmp_path: Path) -> None:
    one_way = release_with_margins(
        ("sex",), {("Feminine",): 30, ("Masculine",): 4}, stream="by_sex", title="By sex"
    )
    writer = ReleaseWriter(tmp_path, charts=True)
    first = writer.write(one_way)
    charts = tmp_path / "by_sex" / CHARTS
    drawn = ["000001.by_sex.png", "000001.by_sex.svg"]
    assert [p.name for p in first.paths if p.parent == charts] == drawn
    (charts / drawn[1]).unlink()
    again = writer.write(one_way)
    assert again.duplicate and [p.name for p in again.paths] == [drawn[1]]
    assert ReleaseWriter(tmp_path).write(one_way).paths == []  # without charts: nothing to do


# --- reading a release file back ------------------------------------------------------------------


def test_a_release_file_reads_back_as_the_release(tmp_path: Path) -> None:
    release = verified(signed(make_release(1, (12, None, 30))))
    ReleaseWriter(tmp_path).write(release)
    assert read_release_file(tmp_path / STREAM / "000001.json") == release


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("absent.json", None, ConsumerReason.RELEASE_FILE_MISSING),
        ("broken.json", "{not json", ConsumerReason.NOT_A_RELEASE),
        ("list.json", "[1, 2]", ConsumerReason.NOT_A_RELEASE),
        ("latest.json", '{"stream": "s", "sequence": 1}', ConsumerReason.NOT_A_RELEASE),
        ("binary.json", b"\xff\xfe\x00", ConsumerReason.NOT_A_RELEASE),
        ("folder", "", ConsumerReason.NOT_A_RELEASE),
    ],
)
def test_a_file_that_is_not_a_release_is_refused_by_reason(
    tmp_path: Path, name: str, content: str | bytes | None, code: ConsumerReason
) -> None:
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ReleaseFileError) as caught:
        read_release_file(path)
    assert caught.value.code is code and str(path) in caught.value.message
