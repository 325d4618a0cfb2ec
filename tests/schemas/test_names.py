"""Name folding, the one rule the linker and CLK producers share: a name and its upper-case
spelling fold alike in any script."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.names import fold_name

names = st.text(alphabet=st.characters(categories=("L", "Zs", "Pd")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(names)
def test_case_does_not_change_the_folded_name(name: str) -> None:
    folded = fold_name(name)
    assert fold_name(name.upper()) == folded == fold_name(name.lower())
    assert set(folded) <= set("abcdefghijklmnopqrstuvwxyz ")
    assert "  " not in folded and folded == folded.strip()


def test_letters_that_lowering_alone_would_lose() -> None:
    assert fold_name("Straße") == fold_name("STRASSE") == "strasse"  # not "stra e"
    assert fold_name("A\u1c80") == fold_name("A\u0412") == "av"  # rounded ve, capital ve
    assert fold_name("Jean-Luc O'Brien") == "jean luc o brien"
