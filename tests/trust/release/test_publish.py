"""Building and emitting signed releases onto a real (SQLite) event log."""

from __future__ import annotations

import dataclasses

import pytest

from schemas.keys import SigningKey
from schemas.release import CAVEAT, verify_release
from trust.release.aggregate import FORM_RULE, PersonFacts, aggregate
from trust.release.disclosure import PRIMARY_METHOD, DisclosurePolicy, primary_suppression
from trust.release.errors import UnprotectedTable
from trust.release.publish import ReleaseSigner, build_release, table_digest
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM, StreamSpec
from trust.stewardship.policy import ReleasePlan, Subscription

SPEC = VICTIMS_BY_SEX_AGE_FORM
T0 = 1_760_000_000_000


RULE = "one count per test person"


def persons(n_fem: int = 12, n_masc: int = 3) -> list[PersonFacts]:
    fem = [
        PersonFacts(("f", str(i)), "Feminine", 30, ("ForcedLabour",), 2022) for i in range(n_fem)
    ]
    masc = [
        PersonFacts(("m", str(i)), "Masculine", 15, ("ForcedBegging",), 2023) for i in range(n_masc)
    ]
    return fem + masc


def test_build_release_carries_annex5_metadata() -> None:
    table = primary_suppression(aggregate(persons(), SPEC), SPEC.k)
    r = build_release(
        SPEC,
        table,
        counting_rule=RULE,
        sequence=3,
        sources=["src-b", "src-a", "src-a"],
        issued_at_ms=T0,
        release_id="rid",
    )
    assert (r.stream, r.sequence, r.release_id, r.issued_at_ms) == (SPEC.name, 3, "rid", T0)
    assert (r.title, r.unit, r.dimensions) == (SPEC.title, SPEC.unit, SPEC.dimensions)
    assert (r.period_start, r.period_end) == (2022, 2023)
    assert r.k == 10 and r.method == PRIMARY_METHOD and r.caveat == CAVEAT
    assert r.sources == ("src-a", "src-b") and r.source_count == 2
    assert r.total == 15 and r.format == 2
    assert r.labels["form"]["ForcedLabour"] == "Forced labour"
    assert r.labels["form"]["Multiple"] == "Several forms recorded"
    assert r.labels["age_group"]["45+"] == "45 years and over"
    assert set(r.labels) == set(SPEC.dimensions)
    m = r.metadata
    assert m["originating_organisation"] == "tiptrust trust"
    assert m["counting_rule"] == RULE
    assert m["form_rule"] == FORM_RULE and "Multiple" in m["form_rule"]
    assert m["period"] == "2022-2023" and m["number_of_sources"] == "2"
    assert m["date_submitted"].startswith("2025-10-09T")
    assert m["content_digest"] == table_digest(table)
    published = {c.key: c.value for c in r.cells() if not c.suppressed}
    assert published == {("2022", "Feminine", "25-34", "ForcedLabour"): 12}


def test_tables_not_protected_for_the_stream_are_refused() -> None:
    counts = aggregate(persons(), SPEC)
    with pytest.raises(UnprotectedTable):
        build_release(
            SPEC,
            primary_suppression(counts, 5),
            counting_rule=RULE,
            sequence=1,
            sources=[],
            issued_at_ms=T0,
            release_id="r",
        )
    other = StreamSpec("other_stream", "t", "u", SPEC.dimensions)
    with pytest.raises(UnprotectedTable):
        build_release(
            other,
            primary_suppression(counts, 10),
            counting_rule=RULE,
            sequence=1,
            sources=[],
            issued_at_ms=T0,
            release_id="r",
        )
    tampered = primary_suppression(counts, 10)
    cells = tuple(dataclasses.replace(c, count=1, suppressed=False) for c in tampered.cells)
    with pytest.raises(UnprotectedTable):
        build_release(
            SPEC,
            dataclasses.replace(tampered, cells=cells),
            counting_rule=RULE,
            sequence=1,
            sources=[],
            issued_at_ms=T0,
            release_id="r",
        )


def test_signer_signs_and_skips_unchanged_or_too_soon() -> None:
    key = SigningKey.generate("trust")
    spec = dataclasses.replace(SPEC, min_interval_s=60.0)
    policy = DisclosurePolicy(spec.k)
    emitter = ReleaseSigner(key)
    plan = ReleasePlan(
        subscription=Subscription("ministry", spec.name, "statistics"),
        spec=spec,
        sources=("src-a",),
        sources_left_out=0,
        k=spec.k,
        agreement_versions=(("src-a", 1),),
    )
    first = emitter.maybe_sign(
        policy.apply(aggregate(persons(), spec)),
        plan,
        counting_rule=RULE,
        last_digest=None,
        last_issued_ms=None,
        now_ms=T0,
        sequence=1,
    )
    assert first is not None
    assert first.release.signing_key_id == key.key_id and first.release.signature
    assert verify_release(first.raw_bytes, {key.key_id: key.public}) == first.release
    assert first.digest == first.release.metadata["content_digest"]

    # unchanged figures: skipped however long after
    same = policy.apply(aggregate(persons(), spec))
    assert (
        emitter.maybe_sign(
            same,
            plan,
            counting_rule=RULE,
            last_digest=first.digest,
            last_issued_ms=T0,
            now_ms=T0 + 3_600_000,
            sequence=2,
        )
        is None
    )
    # a change only inside suppressed cells (same total) publishes nothing new
    moved = [*persons()[:-1], PersonFacts(("m", "2"), "Masculine", 40, ("Servitude",), 2023)]
    assert table_digest(policy.apply(aggregate(moved, spec))) == first.digest

    changed = policy.apply(aggregate(persons(n_fem=20), spec))
    assert (
        emitter.maybe_sign(
            changed,
            plan,
            counting_rule=RULE,
            last_digest=first.digest,
            last_issued_ms=T0,
            now_ms=T0 + 59_999,
            sequence=2,
        )
        is None
    )  # min_interval_s not yet passed
    second = emitter.maybe_sign(
        changed,
        plan,
        counting_rule=RULE,
        last_digest=first.digest,
        last_issued_ms=T0,
        now_ms=T0 + 60_000,
        sequence=2,
    )
    assert second is not None and second.digest != first.digest
    assert second.release.sequence == 2 and second.release.issued_at_ms == T0 + 60_000
