"""The plan that decides from the schemas whether an older released schema holds a record gives
the same answer, and the same content bytes, as the round trip it replaces (encode under the old
schema, resolve back into the current one, compare)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import SchemaRegistry, WireSchema, default_registry, fingerprint_of
from schemas.errors import InvalidRecord
from schemas.lossless import plan_for
from schemas.model import Enum, parse

from .conftest import sample_record

REGISTRY = default_registry()
CASE = REGISTRY.current("case_record")
RELEASED = [s for s in REGISTRY._released["case_record"] if s.fingerprint != CASE.fingerprint]
MAJORITY = next(n.symbols for n in CASE.model._named["MajorityStatus"] if isinstance(n, Enum))


def round_trip(payload: bytes) -> bytes:
    """``content_bytes`` as it was: every old schema tried by a round trip."""
    datum = CASE.decode(payload)
    for old in RELEASED:
        try:
            encoded = old.encode(datum)
        except InvalidRecord:
            continue
        if old.decode(encoded, CASE) == datum:
            return encoded
    return payload


victims = st.fixed_dictionaries(
    {
        "age_range_lower": st.one_of(st.none(), st.integers(0, 17)),
        "age_range_upper": st.one_of(st.none(), st.integers(18, 120)),
        "majority_status": st.sampled_from(MAJORITY),
        "shared_ids": st.lists(
            st.fixed_dictionaries(
                {
                    "scheme": st.sampled_from(["nrm", "ngo"]),
                    "value": st.text("AB1", min_size=1, max_size=4),
                }
            ),
            max_size=2,
        ),
        "age": st.one_of(st.none(), st.integers(0, 90)),
    }
)


@given(st.lists(victims, min_size=1, max_size=3))
def test_the_plan_gives_the_round_trips_bytes(drawn: list[dict[str, Any]]) -> None:
    record = sample_record()
    template = record["victims"][0]
    record["victims"] = []
    for i, v in enumerate(drawn):
        victim = copy.deepcopy(template)
        victim["victim_id"] = f"V-{i}"
        victim["age_at_identification"] = v["age"]
        victim["age_range_lower"] = v["age_range_lower"]
        victim["age_range_upper"] = v["age_range_upper"]
        victim["majority_status"] = v["majority_status"]
        victim["identifiers"]["shared_ids"] = v["shared_ids"]
        record["victims"].append(victim)
    payload = CASE.encode(record)
    assert REGISTRY.content_bytes("case_record", payload) == round_trip(payload)


def test_the_shipped_schemas_differ_only_by_added_fields_so_a_plan_exists() -> None:
    assert RELEASED, "a released case_record schema older than the current one"
    for old in RELEASED:
        plan = plan_for(old.model, CASE.model)
        assert plan is not None and plan.added
        names = {f.name for f in plan.added}
        assert {"shared_ids", "majority_status"} <= names


def _schema(fields: list[dict[str, Any]]) -> WireSchema:
    source = {"type": "record", "name": "R", "namespace": "t", "fields": fields}
    parsed, canonical, fp = fingerprint_of(source)
    return WireSchema("R", source, parsed, canonical, fp)


def test_no_plan_when_a_type_changes_and_the_round_trip_then_decides() -> None:
    old = {"name": "n", "type": "int"}
    new = {"name": "n", "type": "long"}
    assert plan_for(parse(_schema([old]).source), parse(_schema([new]).source)) is None
    added = {"name": "note", "type": ["null", "string"], "default": None}
    plan = plan_for(parse(_schema([old]).source), parse(_schema([old, added]).source))
    assert plan is not None and [f.name for f in plan.added] == ["note"]
    assert plan.holds({"n": 1, "note": None}) and not plan.holds({"n": 1, "note": "x"})
    # through a registry: an old int schema, a current long one (no plan): the round trip
    cur, prev = _schema([new]), _schema([old])
    reg = SchemaRegistry([cur], [prev])
    small, big = cur.encode({"n": 5}), cur.encode({"n": 2**40})
    assert reg.content_bytes("R", small) == prev.encode({"n": 5})
    assert reg.content_bytes("R", big) == big  # the old int cannot hold it
