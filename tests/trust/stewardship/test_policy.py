"""The agreement format (every version read, every problem reported at once) and the policy point."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import default_registry
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM
from trust.stewardship.agreement import (
    FORMAT,
    Agreement,
    AgreementError,
    Agreements,
    LinkageTerms,
    NoAgreement,
    PrivacyBudget,
    ReleaseGrant,
    load_agreement,
    parse_agreement,
    save_agreement,
)
from trust.stewardship.policy import NothingToRelease, Policy, Subscription

CASE = default_registry().current("case_record")
SPEC = VICTIMS_BY_SEX_AGE_FORM
DAY = 86_400_000


def ms(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC).timestamp() * 1000)


def agreement(
    source: str,
    *grants: tuple[str, str],
    version: int = 1,
    start: dt.date = dt.date(2020, 1, 1),
    end: dt.date | None = None,
    k: int = 10,
) -> Agreement:
    return Agreement(
        source,
        version,
        start,
        end,
        ("$",),
        tuple(ReleaseGrant(c, (p,)) for c, p in grants),
        k,
    )


FORMAT_1 = """
format: 1
source_id: police
version: 2
in_force_from: 2024-01-01
in_force_until: null
fields_shared: ['$.event', '$.victims[].sex']
releases_allowed:
  - consumer: ministry
    purposes: [statistics, policy]
min_cell_size: 11
"""

FORMAT_0 = """
source_id: police
version: 1
in_force_from: 2024-01-01
in_force_until: null
fields_shared: ['$']
consumers_allowed: [ministry]
min_cell_size: 10
"""


def test_format_1_is_read_and_written_back_in_the_current_format(tmp_path: Path) -> None:
    a = parse_agreement(yaml.safe_load(FORMAT_1))
    assert a.allows("ministry", "policy") and a.allows("ministry", "statistics")
    assert not a.allows("ministry", "immigration_enforcement") and not a.allows("press", "policy")
    assert a.min_cell_size == 11 and a.in_force_from == dt.date(2024, 1, 1)
    save_agreement(tmp_path / "a.yaml", a)
    assert load_agreement(tmp_path / "a.yaml") == a
    written = yaml.safe_load((tmp_path / "a.yaml").read_text())
    assert written["format"] == FORMAT
    assert written["privacy_budget"] is None  # format 1 grants no privacy budget
    assert written["linkage"] == {"link_with": ["*"], "shared_identifiers": [], "encoding": "plain"}
    assert a.linkage == LinkageTerms()  # format 1 links as the defaults say


def test_the_first_format_is_upcast() -> None:
    a = parse_agreement(yaml.safe_load(FORMAT_0))
    assert a.releases_allowed == (ReleaseGrant("ministry", ("statistics",)),)
    assert a.allows("ministry", "statistics") and not a.allows("ministry", "research")


def test_every_problem_is_reported_at_once_by_path() -> None:
    doc = {
        "format": 1,
        "source_id": "police",
        "version": "two",
        "in_force_from": "not a date",
        "releases_allowed": [{"consumer": "ministry"}],
        "min_cell_size": 10,
        "surprise": True,
    }
    with pytest.raises(AgreementError) as info:
        parse_agreement(doc, "police.yaml")
    text = str(info.value)
    assert text.startswith("police.yaml: ")
    for path in ("$.version", "$.in_force_from", "$.releases_allowed", "surprise"):
        assert path in text, path
    assert len(info.value.problems) >= 4


@given(st.text(min_size=5, max_size=40).filter(lambda t: t.strip() == t and ":" not in t))
def test_problems_never_quote_a_value(text: str) -> None:
    # The marker makes the value something no message spells by itself (a bare
    # value such as "fields" is a word of the message "$.fields_shared: ...").
    value = "\u00a4" + text
    doc = {
        "format": 1,
        "source_id": "police",
        "version": value,
        "in_force_from": value,
        "releases_allowed": [{"consumer": value, "purposes": [value]}],
    }
    with pytest.raises(AgreementError) as info:
        parse_agreement(doc)
    assert value not in str(info.value)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(AgreementError, match=r"\$\.format"):
        parse_agreement({"format": 9, "source_id": "police"})


def test_the_agreement_in_force_is_judged_by_the_trusts_clock() -> None:
    old = agreement("police", ("ministry", "statistics"), end=dt.date(2024, 1, 1))
    new = agreement("police", ("ministry", "statistics"), version=2, start=dt.date(2024, 1, 1))
    policy = Policy(Agreements([old, new], CASE))
    assert policy.agreement_for_message("police", ms(dt.date(2023, 6, 1))).version == 1
    assert policy.agreement_for_message("police", ms(dt.date(2024, 6, 1))).version == 2
    with pytest.raises(NoAgreement):
        policy.agreement_for_message("police", ms(dt.date(2019, 6, 1)))
    with pytest.raises(NoAgreement):  # deny by default: registered key, no agreement
        policy.agreement_for_message("ngo", ms(dt.date(2024, 6, 1)))


def test_a_plan_includes_only_sources_that_allow_the_consumer_and_purpose() -> None:
    policy = Policy(
        Agreements(
            [
                agreement("police", ("ministry", "statistics"), k=12),
                agreement("ngo", ("ministry", "research")),
                agreement("court", ("ministry", "statistics")),
                agreement("expired", ("ministry", "statistics"), end=dt.date(2021, 1, 1)),
            ],
            CASE,
        )
    )
    sub = Subscription("ministry", SPEC.name, "statistics")
    plan = policy.plan(
        sub, SPEC, ["police", "ngo", "court", "expired", "unregistered"], ms(dt.date(2025, 1, 1))
    )
    assert plan.sources == ("court", "police")
    assert plan.sources_left_out == 3
    assert plan.k == 12  # the strictest among the included
    assert plan.topic == "tip.release.ministry.victims_by_sex_age_form"
    assert dict(plan.agreement_versions) == {"court": 1, "police": 1}

    with pytest.raises(NothingToRelease):
        policy.plan(
            Subscription("journalist", SPEC.name, "statistics"),
            SPEC,
            ["police", "ngo", "court"],
            ms(dt.date(2025, 1, 1)),
        )


def test_subscription_names_are_validated() -> None:
    with pytest.raises(ValueError):
        Subscription("../../x", SPEC.name, "statistics")
    with pytest.raises(ValueError):
        Subscription("ministry", SPEC.name, "Statistics")


def _linking(source: str, link_with: tuple[str, ...], shared: tuple[str, ...] = ()) -> Agreement:
    import dataclasses

    return dataclasses.replace(
        agreement(source, ("ministry", "statistics")),
        linkage=LinkageTerms(link_with=link_with, shared_identifiers=shared),
    )


def test_two_sources_link_only_when_both_agreements_allow_it() -> None:
    policy = Policy(
        Agreements(
            [
                _linking("police", ("*",), ("nrm_referral",)),
                _linking("nrm", ("police",), ("nrm_referral", "court_reference")),
                _linking("ngo", ()),  # links with nobody
                _linking("court", ("*",), ("court_reference",)),
            ],
            CASE,
        )
    )
    at = ms(dt.date(2025, 1, 1))
    assert policy.may_link("police", "nrm", at) and policy.may_link("nrm", "police", at)
    assert not policy.may_link("ngo", "police", at) and not policy.may_link("police", "ngo", at)
    assert policy.may_link("ngo", "ngo", at)  # its own records always may
    assert not policy.may_link("nrm", "court", at)  # the nrm names only the police
    assert not policy.may_link("police", "unregistered", at)
    assert policy.shared_schemes("police", "nrm", at) == {"nrm_referral"}
    assert policy.shared_schemes("nrm", "court", at) == frozenset()  # not linkable at all


def test_format_2_linkage_terms_are_checked_by_path() -> None:
    doc = yaml.safe_load(FORMAT_1)
    doc["format"] = 2
    doc["linkage"] = {
        "link_with": ["Bad Name"],
        "shared_identifiers": ["ok_scheme"],
        "encoding": "clk",
    }
    with pytest.raises(AgreementError) as info:
        parse_agreement(doc)
    assert info.value.problems == [
        "$.linkage.link_with[0]: a source id or '*'",
        "$.linkage.encoding: one of plain",
    ]
    doc["format"] = 1
    with pytest.raises(AgreementError, match=r"\$\.linkage: needs format 2"):
        parse_agreement(doc)


def test_format_3_grants_a_privacy_budget_that_the_plan_carries() -> None:
    doc = yaml.safe_load(FORMAT_1)
    doc["format"] = 3
    doc["privacy_budget"] = {"epsilon": 1, "delta": 1e-6}
    a = parse_agreement(doc)
    assert a.privacy_budget == PrivacyBudget(1.0, 1e-6)
    assert parse_agreement(a.to_mapping()) == a
    registry = default_registry().current("case_record")
    policy = Policy(Agreements([a], registry))
    sub = Subscription("ministry", VICTIMS_BY_SEX_AGE_FORM.name, "statistics")
    at = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    plan = policy.plan(sub, VICTIMS_BY_SEX_AGE_FORM, ["police"], at)
    assert plan.privacy_budgets == (("police", PrivacyBudget(1.0, 1e-6)),)
    assert policy.privacy_budget("police", at) == PrivacyBudget(1.0, 1e-6)
    assert policy.privacy_budget("nobody", at) is None


def test_a_privacy_budget_needs_format_3_and_is_checked_by_path() -> None:
    doc = yaml.safe_load(FORMAT_1)
    doc["format"] = 2
    doc["privacy_budget"] = {"epsilon": 1.0}
    with pytest.raises(AgreementError, match=r"\$\.privacy_budget: needs format 3"):
        parse_agreement(doc)
    doc["format"] = 3
    doc["privacy_budget"] = {"epsilon": 0, "delta": 1}
    with pytest.raises(AgreementError) as info:
        parse_agreement(doc)
    assert info.value.problems == [
        "$.privacy_budget.epsilon: a number above 0",
        "$.privacy_budget.delta: a number from 0, below 1",
    ]
    doc["privacy_budget"] = {"epsilon": "plenty", "refresh": "monthly"}
    with pytest.raises(AgreementError) as info:
        parse_agreement(doc)
    assert "plenty" not in str(info.value) and "refresh" in str(info.value)
