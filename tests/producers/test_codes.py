"""Loose code matching and the code lists a mapping can name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.codes import HTCDS_LIST_OF, CodeListError, loose, named_codes
from producers.mapping import TARGETS
from schemas.codelists import htcds_labels

SEX = TARGETS["$.victims[].sex"]


@st.composite
def disguised(draw: st.DrawFn, word: str) -> str:
    """``word`` with random letter case, and spaces or underscores between its letters."""
    out = []
    for ch in word:
        out.append(ch.upper() if draw(st.booleans()) else ch.lower())
        out.append(draw(st.sampled_from(["", "", " ", "_", "  "])))
    return draw(st.sampled_from(["", " ", "\t"])) + "".join(out)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_loose_keys_ignore_case_spaces_and_underscores(data: st.DataObject) -> None:
    word = data.draw(st.sampled_from(sorted(TARGETS["$.event.methods_of_control"].symbols)))
    assert loose(data.draw(disguised(word))) == loose(word)


@pytest.mark.parametrize(("a", "b"), [("-99", "99"), ("Adult", "Adults"), ("F", "M"), ("1", "l")])
def test_loose_keys_keep_what_tells_values_apart(a: str, b: str) -> None:
    assert loose(a) != loose(b)


def test_htcds_gender_labels_and_names_map_to_their_codes() -> None:
    table = named_codes("htcds:Gender", SEX.symbols, SEX.enum_name)
    assert table["Not Specified/Unknown"] == "NonSpecifiedUnknown"
    assert table["Non-Conforming"] == "NonConforming"
    assert table["Feminine"] == "Feminine"
    assert named_codes("htcds:prs_Gender", SEX.symbols, SEX.enum_name) == table
    assert set(table.values()) <= SEX.symbols


def test_every_htcds_list_named_for_an_ics_tip_list_shares_its_codes() -> None:
    enums = {t.enum_name: t for t in TARGETS.values() if t.kind == "code"}
    for enum_name, field in HTCDS_LIST_OF.items():
        target = enums[enum_name]
        table = named_codes(f"htcds:{field}", target.symbols, enum_name)
        if field != "Country":
            assert set(table.values()) == set(htcds_labels(field)) & target.symbols
        assert all(table[code] == code for code in table.values())  # the codes name themselves


def test_country_names_and_codes() -> None:
    target = TARGETS["$.victims[].citizenships"]
    table = named_codes("htcds:Country", target.symbols, "Country")
    assert (table["France"], table["FR"], table["Côte d'Ivoire"]) == ("FR", "FR", "CI")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("htcds:Type", "ambiguous"),
        ("htcds:Shoes", "not an HTCDS"),
        ("iso:Gender", "unknown code list"),
        ("htcds:org_Type", "has no code"),  # HTCDS organisation types are not ICS-TIP sexes
    ],
)
def test_bad_list_names(name: str, needle: str) -> None:
    with pytest.raises(CodeListError, match=needle):
        named_codes(name, SEX.symbols, SEX.enum_name)


def test_ics_tip_is_the_targets_own_codes() -> None:
    assert named_codes("ics-tip", SEX.symbols, SEX.enum_name) == {s: s for s in SEX.symbols}
