"""CLK-mode linkage: normalisation equal to the plain linker's, Dice levels, blocking without
values, a CLK-only run beside unchanged plain defaults, and quality within 0.03 F1 of plain."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.clk import ClkEncoder, ClkParameters, birth_digits, fold_name
from trust.linkage.blocking import KeyedHasher, blocking_keys
from trust.linkage.clk import (
    BirthDateDiceComparison,
    ClkExact,
    ClkLinker,
    ClkMinHash,
    ClkRecord,
    ClkTable,
    DiceComparison,
    clk_settings,
    encode_record,
    link_clk_batch,
    prepare_clk,
)
from trust.linkage.comparison import PairView, default_comparisons
from trust.linkage.errors import LinkageError
from trust.linkage.normalise import fold, parse_date
from trust.linkage.record import LinkRecord, RecordTable, prepare
from trust.linkage.settings import LinkageSettings

ENCODER = ClkEncoder(b"c" * 32)
HASHER = KeyedHasher(b"b" * 32)


def clk(record_id: str, given: str = "", surname: str = "", dob: str = "", **kw: str) -> ClkRecord:
    return encode_record(ENCODER, LinkRecord(record_id, given, surname, dob, **kw))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_schemas_fold_is_the_plain_linkers(text: str) -> None:
    assert fold_name(text) == fold(text)


@pytest.mark.parametrize(
    "text", ["1990-03-08", "1990", "1990-03", "1990-??-12", "19900308", "08/03/1990", "1990-13-01"]
)
def test_schemas_date_reading_is_the_plain_linkers(text: str) -> None:
    parsed = parse_date(text)
    assert birth_digits(text) == ("" if parsed is None else parsed.digits())


def levels(comparison: object, a: ClkRecord, b: ClkRecord) -> int:
    table = ClkTable.of([prepare_clk(a), prepare_clk(b)])
    view = PairView(table, np.array([0], dtype=np.intp), np.array([1], dtype=np.intp))
    return int(comparison.compare(view)[0])  # type: ignore[attr-defined]


def test_dice_levels() -> None:
    c = DiceComparison("surname")
    assert c.levels[0] == "identical" and c.levels[-1] == "other"
    assert levels(c, clk("a", surname="Kovalenko"), clk("b", surname="KOVALENKO")) == 1
    typo = levels(c, clk("a", surname="Kovalenko"), clk("b", surname="Kowalenko"))
    assert 1 < typo < len(c.levels)
    assert levels(c, clk("a", surname="Kovalenko"), clk("b", surname="Smith")) == len(c.levels)
    assert levels(c, clk("a", surname="Kovalenko"), clk("b")) == 0


def test_birth_date_levels_see_a_day_month_swap() -> None:
    c = BirthDateDiceComparison()
    assert levels(c, clk("a", dob="1987-10-04"), clk("b", dob="1987-10-04")) == 1
    assert c.levels[levels(c, clk("a", dob="1987-10-04"), clk("b", dob="1987-04-10")) - 1] == (
        "day_month_swapped"
    )
    assert levels(c, clk("a", dob="1987-10-04"), clk("b", dob="1961-03-27")) == len(c.levels)


def test_plain_tables_and_records_compare_as_no_data() -> None:
    table = RecordTable.of([prepare(LinkRecord("a", "Ann")), prepare(LinkRecord("b", "Ann"))])
    view = PairView(table, np.array([0], dtype=np.intp), np.array([1], dtype=np.intp))
    assert DiceComparison("given_name").compare(view).tolist() == [0]
    mixed = ClkTable.of([prepare(LinkRecord("a", "Ann")), prepare_clk(clk("b", "Ann"))])
    assert mixed.clk_given_name_count.tolist()[0] == 0


def test_encodings_under_different_parameters_are_not_compared() -> None:
    other = encode_record(ClkEncoder(b"c" * 32, ClkParameters(bits=512)), LinkRecord("b", "Ann"))
    with pytest.raises(LinkageError):
        ClkTable.of([prepare_clk(clk("a", "Ann")), prepare_clk(other)])


def test_blocking_without_values() -> None:
    a, b = (
        prepare_clk(clk("a", "Nataliia", "Kovalenko")),
        prepare_clk(clk("b", "Natalia", "Kovalenko")),
    )
    c = prepare_clk(clk("c", "Ryan", "Taylor"))
    rule = ClkMinHash(("given_name", "surname"))
    ka, kb, kc = ({k.digest for k in blocking_keys(r, (rule,), HASHER)} for r in (a, b, c))
    assert len(ka) == rule.bands and ka & kb and not ka & kc
    exact = ClkExact(("date_of_birth",), with_sex=True)
    d1 = prepare_clk(clk("d1", dob="1990-01-02", sex="F"))
    d2 = prepare_clk(clk("d2", dob="1990-01-02", sex="F"))
    assert blocking_keys(d1, (exact,), HASHER) == blocking_keys(d2, (exact,), HASHER)
    assert blocking_keys(prepare(LinkRecord("p", "Ann")), (rule, exact), HASHER) == ()
    # a digest holds no encoding: keys are 128-bit HMAC outputs
    assert all(len(k.digest) == 32 for k in blocking_keys(a, (rule,), HASHER))


def test_clk_settings_beside_unchanged_plain_defaults() -> None:
    s = clk_settings()
    assert [c.name for c in s.comparisons] == [
        "given_name",
        "surname",
        "date_of_birth",
        "document_number",
        "sex",
        "nationality",
    ]
    assert LinkageSettings().comparisons == default_comparisons()
    assert clk_settings(upper=0.95).upper == 0.95


def test_batch_links_encoded_records_and_explains_without_values() -> None:
    people = [
        ("Amina", "Hotak", "2004-10-12", "F", "AF"),
        ("Jun", "Huang", "1979-08-18", "M", "CN"),
        ("Erion", "Cela", "1987-05-25", "M", "AL"),
        ("Mei", "Chen", "1977-03-16", "F", "CN"),
    ]
    a = [clk(f"a{i}", g, s, d, sex=x, nationality=n) for i, (g, s, d, x, n) in enumerate(people)]
    b = [
        clk("b0", "AMINA", "HOTAK", "2004-10-12", sex="F", nationality="AF"),
        clk("b1", "Jun", "Huang", "1979-18-08", sex="M", nationality="CN"),
        clk("b2", "Ardit", "Hoxha", "1981-07-29", sex="M", nationality="AL"),
    ]
    result = link_clk_batch([a, b], dedupe=False, key=b"b" * 32)
    assert ("a0", "b0") in {(p.id_l, p.id_r) for p in result.pairs}
    assert all(p.id_l[0] != p.id_r[0] for p in result.pairs)
    linker = result.linker
    assert isinstance(linker, ClkLinker)
    score = linker.score(prepare_clk(a[0]), prepare_clk(b[0]))
    assert {t.level for t in score.explanation.terms} <= {
        lv for c in clk_settings().comparisons for lv in c.levels
    } | {"no_data"}
    assert "Amina" not in repr(score) and "Hotak" not in repr(score)
    with pytest.raises(LinkageError):
        link_clk_batch([a], dedupe=False)


def test_simulator_clk_f1_within_003_of_plain() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from benchmarks.linkage_clk import compare

    out = compare(500, 11, ClkParameters(), same_fields=False, key=b"b" * 32, clk_key=b"c" * 32)
    assert out["plain"]["f1"] - out["clk"]["f1"] <= 0.03, out
