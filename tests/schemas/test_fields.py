"""Minimisation by allow-list of field paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import default_registry
from schemas.fields import Pruner, field_paths
from schemas.validate import validator_for

from .conftest import sample_record

CASE = default_registry().current("case_record")
PATHS = [p for p in field_paths(CASE)]


def test_identifiers_are_dropped_unless_shared() -> None:
    rec = Pruner(CASE, ["$.event", "$.victims[].sex"]).prune(sample_record())
    assert rec["victims"][0]["identifiers"] is None
    assert rec["victims"][0]["sex"] == "Feminine"
    assert rec["victims"][0]["age_at_identification"] is None
    assert rec["victims"][0]["victim_id"] == "V-1"  # ids carry structure
    assert rec["perpetrators"] == []


def test_a_shared_leaf_keeps_only_that_leaf() -> None:
    rec = Pruner(CASE, ["$.victims[].identifiers.surnames"]).prune(sample_record())
    assert rec["victims"][0]["identifiers"]["surnames"] == "Okafor"
    assert rec["victims"][0]["identifiers"]["given_names"] is None
    assert rec["victims"][0]["identifiers"]["documents"] == []


def test_everything_shared_is_identity() -> None:
    rec = sample_record()
    assert Pruner(CASE, ["$"]).prune(rec) is rec


def test_unknown_paths_are_refused() -> None:
    with pytest.raises(ValueError):
        Pruner(CASE, ["$.victims[].shoe_size"])


@given(st.sets(st.sampled_from(PATHS), max_size=8))
def test_pruned_records_are_valid_and_never_gain_data(allowed: set[str]) -> None:
    rec = sample_record()
    pruned = Pruner(CASE, allowed).prune(rec)
    assert validator_for(CASE).problems(pruned) == []
    encoded = CASE.encode(pruned)
    for secret in (b"Amina", b"Okafor", b"A1234567"):
        if secret in encoded:
            assert any(p.startswith("$.victims[].identifiers") or p == "$.victims" for p in allowed)


def test_a_required_record_not_shared_is_pruned_not_kept_whole() -> None:
    # the event is a required field: its record stays, its contents are minimised like any other
    rec = Pruner(CASE, ["$.victims[].sex"]).prune(sample_record())
    assert rec["event"]["start_date"] is None
    assert rec["event"]["forms_of_exploitation"] == []
    assert rec["event"]["country_of_exploitation"] == "Unknown"
    assert rec["reporting_entity"]["source_id"] == "police"  # an id: structure
    assert rec["reporting_entity"]["legal_basis"] == "Unknown"
    assert rec["case_id"] == "C-1"
    assert validator_for(CASE).problems(rec) == []
    shared = Pruner(CASE, ["$.event.start_date"]).prune(sample_record())
    assert shared["event"]["start_date"] == sample_record()["event"]["start_date"]
    assert shared["event"]["year_of_exploitation"] is None
