"""The fast path says "no problem" only where the walk finds none, and otherwise the validator
reports exactly what the walk reports (same paths, codes and texts, same order) — in the trust's
mode (decoded records) and in the producer's (records as mapped, fields with defaults left out,
values of any type)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import default_registry
from schemas.validate import Validator, _compile, validator_for

from .conftest import sample_record

CASE = default_registry().current("case_record")
DECODED = validator_for(CASE, decoded=True)
PRODUCER = validator_for(CASE)
TODAY = dt.date.today()


def _decoded(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as the trust has it: through the Avro codec (every field present)."""
    return CASE.decode(CASE.encode(record))


def _base() -> dict[str, Any]:
    rec = sample_record()
    second = copy.deepcopy(rec["victims"][0])
    second["victim_id"] = "V-2"
    second["identifiers"]["shared_ids"] = [{"scheme": "nrm", "value": "N-7"}]
    rec["victims"].append(second)
    rec["event"]["regions_of_exploitation"] = ["Noord-Holland"]
    rec["event"]["end_date"] = dt.date(2022, 6, 1)
    return _decoded(rec)


BASE = _base()
# the producer's record: as a mapping makes it, fields with a default mostly left out
MAPPED = sample_record()


def _outcome(fn: Any, datum: Any) -> tuple[str, Any]:
    try:
        return "problems", [(p.path, p.code, p.expected) for p in fn(datum)]
    except Exception as exc:  # the walk may raise on shapes the decoder never makes
        return "raised", type(exc)


texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["x" * 128, "x" * 129, "y" * 1000, "y" * 1001, "a\tb", "a\nb", "a\x7fb"]),
)
ints = st.one_of(st.none(), st.integers(-3, 125), st.integers(1940, 2110))
dates = st.one_of(
    st.none(),
    st.dates(dt.date(1890, 1, 1), dt.date(2030, 12, 31)),
    st.sampled_from([dt.date(1899, 12, 31), dt.date(1900, 1, 1), TODAY, TODAY + dt.timedelta(2)]),
)
odd: st.SearchStrategy[Any] = st.sampled_from(
    [None, 7, 2.5, "text", b"bytes", [], {}, True, dt.datetime(2020, 1, 1)]
)
codes = st.sampled_from(["Feminine", "Masculine", "Unknown", "F", "", "feminine"])

# (where, field): "$" the record, "re" the reporting entity, "ev" the event, "v0"/"v1" a victim,
# "id0" the first victim's identifiers, "doc0" its first document, "p0" the perpetrator
SLOTS: dict[str, st.SearchStrategy[Any]] = {
    "$.case_id": texts,
    "re.source_id": st.one_of(texts, st.sampled_from(["police", "ngo_haven-2", "police\n"])),
    "re.date_recorded": dates,
    "ev.year_of_exploitation": ints,
    "ev.start_date": dates,
    "ev.end_date": dates,
    "ev.regions_of_exploitation": st.lists(texts, max_size=3),
    "ev.forms_of_exploitation": st.sampled_from([["Other"] * 64, ["Other"] * 65, []]),
    "v0.victim_id": st.one_of(texts, st.just("V-2")),
    "v1.victim_id": st.one_of(texts, st.just("V-1")),
    "v0.age_at_identification": ints,
    "v0.age_range_lower": ints,
    "v0.age_range_upper": ints,
    "v0.majority_status": st.sampled_from(["Adult", "Minor", "Unknown"]),
    "v1.age_first_trafficked": ints,
    "id0.given_names": st.one_of(st.none(), texts),
    "id0.surnames": st.one_of(st.none(), texts),
    "id0.phone": st.one_of(st.none(), texts),
    "id0.date_of_birth": dates,
    "doc0.number": texts,
    "p0.perpetrator_id": texts,
    "v0.sex": codes,
    "p0.sex": codes,
    "re.organisation_type": st.sampled_from(["Police", "NGO", "police", "Unknown"]),
    "v0.citizenships": st.lists(st.sampled_from(["NG", "NL", "XX", "Unknown"]), max_size=3),
}


def _parent(rec: dict[str, Any], where: str) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "$": rec,
        "re": rec["reporting_entity"],
        "ev": rec["event"],
        "v0": rec["victims"][0],
        "v1": rec["victims"][-1],
        "id0": rec["victims"][0]["identifiers"],
        "doc0": rec["victims"][0]["identifiers"]["documents"][0],
        "p0": rec["perpetrators"][0],
    }
    return parts[where]  # type: ignore[no-any-return]


@st.composite
def changed_records(draw: st.DrawFn, oddities: bool, base: dict[str, Any] = BASE) -> dict[str, Any]:
    rec = copy.deepcopy(base)
    for slot in draw(st.lists(st.sampled_from(sorted(SLOTS)), max_size=4, unique=True)):
        where, name = slot.split(".")
        _parent(rec, where)[name] = draw(SLOTS[slot])
    if oddities:  # what the decoder never makes: a value of another type, a field missing
        for slot in draw(st.lists(st.sampled_from(sorted(SLOTS)), max_size=2, unique=True)):
            where, name = slot.split(".")
            if draw(st.booleans()):
                _parent(rec, where)[name] = draw(odd)
            else:
                _parent(rec, where).pop(name, None)
    if draw(st.booleans()):
        rec["victims"].append(copy.deepcopy(rec["victims"][0]))  # a repeated victim id
    return rec


def test_a_valid_record_is_cleared_by_the_fast_path_in_both_modes() -> None:
    assert DECODED._is_clean(BASE)
    assert DECODED.problems(BASE) == [] == DECODED._walk(BASE)
    for rec in (BASE, MAPPED):
        assert PRODUCER._is_clean(rec)
        assert PRODUCER.problems(rec) == [] == PRODUCER._walk(rec)


@settings(max_examples=300, deadline=None)
@given(changed_records(oddities=False))
def test_the_fast_path_agrees_with_the_walk(rec: dict[str, Any]) -> None:
    walk = DECODED._walk(rec)
    assert DECODED._is_clean(rec) == (walk == [])
    assert _outcome(DECODED.problems, rec) == _outcome(DECODED._walk, rec)


@settings(max_examples=200, deadline=None)
@given(changed_records(oddities=True))
def test_on_any_shape_the_validator_reports_what_the_walk_reports(rec: dict[str, Any]) -> None:
    walked = _outcome(DECODED._walk, rec)
    if DECODED._is_clean(rec):
        assert walked == ("problems", [])
    assert _outcome(DECODED.problems, rec) == walked


def test_too_many_victims_and_a_long_list_are_seen_by_the_fast_path() -> None:
    rec = copy.deepcopy(BASE)
    rec["victims"] = [{**rec["victims"][0], "victim_id": f"V-{i}"} for i in range(201)]
    assert not DECODED._is_clean(rec)
    assert [p.path for p in DECODED.problems(rec)] == ["$.victims"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(changed_records(oddities=False), changed_records(oddities=False, base=MAPPED)))
def test_the_producers_fast_path_agrees_with_the_walk(rec: dict[str, Any]) -> None:
    walk = PRODUCER._walk(rec)
    assert PRODUCER._is_clean(rec) == (walk == [])
    assert _outcome(PRODUCER.problems, rec) == _outcome(PRODUCER._walk, rec)


@settings(max_examples=200, deadline=None)
@given(st.one_of(changed_records(oddities=True), changed_records(oddities=True, base=MAPPED)))
def test_on_any_shape_the_producer_reports_what_the_walk_reports(rec: dict[str, Any]) -> None:
    walked = _outcome(PRODUCER._walk, rec)
    if PRODUCER._is_clean(rec):
        assert walked == ("problems", [])
    assert _outcome(PRODUCER.problems, rec) == walked


def _walkable(name: str) -> bool:
    try:  # the walk supports [null, T] unions only (a release's value is not validated)
        _compile(default_registry().current(name).model.root)
    except ValueError:
        return False
    return True


@given(
    st.sampled_from([n for n in sorted(default_registry().names) if _walkable(n)]), st.booleans()
)
def test_every_validated_schema_compiles_a_fast_path(name: str, decoded: bool) -> None:
    v = Validator(default_registry().current(name), decoded=decoded)
    assert not v._is_clean(None) and not v._is_clean({})


def test_a_small_schema_is_cleared_or_refused_like_the_walk() -> None:
    for decoded in (False, True):
        retraction = validator_for(default_registry().current("record_retraction"), decoded=decoded)
        datum = {"case_id": "C-1", "reason": "Other"}
        assert retraction._is_clean(datum) and retraction.problems(datum) == []
        bad = {"case_id": "C\x00", "reason": "Other"}
        assert not retraction._is_clean(bad)
        assert [p.path for p in retraction.problems(bad)] == ["$.case_id"]


# --- the producer's one pass: the rules checked as the record is written ------------------------

REGISTRY = default_registry()
ENCODE_VALID = PRODUCER.content_encoder(REGISTRY)


def _one_pass_agrees(rec: dict[str, Any]) -> None:
    """Bytes only for a record without a problem, and then the very bytes the two passes give;
    a record without a problem that the encoder writes itself always gets them."""
    assert ENCODE_VALID is not None
    got = ENCODE_VALID(rec)
    problems = _outcome(PRODUCER.problems, rec)
    if got is not None:
        assert problems == ("problems", [])
        assert got == REGISTRY.encode_with_content("case_record", rec)
    elif problems == ("problems", []):
        assert not CASE.encode_written(rec)[1]  # not one the generated encoder writes


def test_a_valid_record_takes_the_one_pass() -> None:
    assert ENCODE_VALID is not None
    assert PRODUCER.content_encoder(REGISTRY) is ENCODE_VALID  # compiled once
    assert ENCODE_VALID(BASE) == REGISTRY.encode_with_content("case_record", BASE)
    assert ENCODE_VALID(MAPPED) is None  # fields left out: checked and encoded the usual way
    assert DECODED.content_encoder(REGISTRY) is None  # the trust's checks are not the producer's


@settings(max_examples=300, deadline=None)
@given(st.one_of(changed_records(oddities=False), changed_records(oddities=True)))
def test_the_one_pass_writes_only_what_has_no_problem_and_as_two_passes(
    rec: dict[str, Any],
) -> None:
    _one_pass_agrees(rec)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r["victims"][0]["identifiers"].update(
            shared_ids=[{"scheme": "nrm", "value": "N"}]
        ),
        lambda r: r["victims"][0].update(majority_status="Minor", age_at_identification=None),
        lambda r: r["victims"][0].update(age_range_lower=3, age_range_upper=9),
        lambda r: r.update(case_id="C\u00a0\u2028 1"),  # not printable, yet no control character
        lambda r: r.update(case_id="C\x7f1"),
        lambda r: r["event"].update(start_date=dt.date(2022, 7, 1)),  # after its end date
        lambda r: r["event"].update(start_date=TODAY + dt.timedelta(days=3)),
        lambda r: r["event"].update(start_date=19000),  # a day count: fastavro's, not a date
        lambda r: r["reporting_entity"].update(source_id="police\n"),
        lambda r: r["victims"][0].update(age_at_identification=True),
        lambda r: r["victims"][1].update(victim_id=r["victims"][0]["victim_id"]),
        lambda r: r["event"].update(forms_of_exploitation=["Other"] * 65),
    ],
)
def test_each_rule_and_the_content_bytes_in_the_one_pass(change: Any) -> None:
    rec = copy.deepcopy(BASE)
    change(rec)
    _one_pass_agrees(rec)
