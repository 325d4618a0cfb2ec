"""How an accepted record lies in ``stored_events``: its JSON part is exactly what the one
converter makes of the event (less the record, which is the Avro body), built without it."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given
from hypothesis import strategies as st

from trust.convert import converter
from trust.store.events import SealedBlob
from trust.store.stored import decode, event_row

from .builders import accepted

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_blobs = st.dictionaries(_text, st.builds(SealedBlob, _text, _text, _text), max_size=3)


@given(sealed=_blobs, event_id=_text, case_id=_text)
def test_the_stored_json_of_an_accepted_record_is_the_converters(
    sealed: dict[str, SealedBlob], event_id: str, case_id: str
) -> None:
    event = accepted(case_id=case_id or "c", event_id=event_id or "e", sealed=sealed)
    row = event_row(event, 1, "t", 0, 0)
    expected = converter.unstructure(dataclasses.replace(event, record={}))
    del expected["record"]
    stored = json.loads(row["payload"])
    assert stored.pop("v") == 2
    assert stored == expected
    assert decode(
        row["event_type"], json.loads(row["payload"]), row["body"], row["body_schema"]
    ) == (event)
