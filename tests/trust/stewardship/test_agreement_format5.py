"""Agreement format 5: perpetrator sharing and naming the source, their defaults, older formats
loading with the terms they were signed under, every problem reported by key path; and the
policy point leaving out of a perpetrator stream the sources that do not share perpetrators."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from schemas.codec import default_registry
from trust.release.streams import PERPETRATORS_BY_ROLE, VICTIMS_BY_YEAR_SEX
from trust.stewardship.agreement import (
    FORMAT,
    Agreement,
    AgreementError,
    Agreements,
    ReleaseGrant,
    parse_agreement,
)
from trust.stewardship.policy import NothingToRelease, Policy, Subscription

FORMAT_5 = """
format: 5
source_id: police
version: 4
in_force_from: 2025-01-01
fields_shared: ['$']
releases_allowed:
  - consumer: ministry
    purposes: ['*']
min_cell_size: 10
perpetrator_sharing: true
may_name_source: true
"""


def doc(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = yaml.safe_load(FORMAT_5)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def test_format_5_is_read_and_round_trips() -> None:
    a = parse_agreement(doc())
    assert (a.perpetrator_sharing, a.may_name_source) == (True, True)
    assert a.to_mapping()["format"] == FORMAT == 6  # written back in the current format
    assert parse_agreement(a.to_mapping()) == a
    assert parse_agreement(yaml.safe_load(a.to_yaml())) == a


def test_format_5_defaults_share_no_perpetrators_and_name_no_source() -> None:
    a = parse_agreement(doc(perpetrator_sharing=None, may_name_source=None))
    assert (a.perpetrator_sharing, a.may_name_source) == (False, False)


@pytest.mark.parametrize("fmt", [0, 1, 2, 3, 4])
def test_older_formats_load_named_and_without_perpetrators(fmt: int) -> None:
    old = doc(format=fmt, perpetrator_sharing=None, may_name_source=None)
    old["releases_allowed"] = [{"consumer": "ministry", "purposes": ["statistics"]}]
    if fmt == 0:
        old.pop("format")
    a = parse_agreement(old)
    # signed when releases named every source they counted, before perpetrator streams
    assert (a.perpetrator_sharing, a.may_name_source) == (False, True)
    assert parse_agreement(a.to_mapping()) == a  # written back in the current format, same terms


def test_format_4_refuses_the_new_keys_by_path() -> None:
    with pytest.raises(AgreementError) as info:
        parse_agreement(doc(format=4))
    assert info.value.problems == [
        "$.perpetrator_sharing: needs format 5",
        "$.may_name_source: needs format 5",
    ]


def test_format_4_keeps_its_wildcard_purpose() -> None:
    a = parse_agreement(doc(format=4, perpetrator_sharing=None, may_name_source=None))
    assert a.allows("ministry", "research")


def test_every_problem_is_reported_at_once_by_path_never_by_value() -> None:
    with pytest.raises(AgreementError) as info:
        parse_agreement(
            doc(perpetrator_sharing="yes-secret", may_name_source=1, min_cell_size=0, extra=1)
        )
    problems = info.value.problems
    assert "$.perpetrator_sharing: true or false" in problems
    assert "$.may_name_source: true or false" in problems
    assert any(p.startswith("$: unknown key(s)") or "extra" in p for p in problems)
    assert not any("yes-secret" in p for p in problems)
    with pytest.raises(AgreementError) as info:
        parse_agreement(doc(perpetrator_sharing="yes", min_cell_size=0))
    assert info.value.problems == [
        "$.perpetrator_sharing: true or false",
        "$.min_cell_size: a whole number from 1",
    ]


# -- the policy point ---------------------------------------------------------------------------

GRANT = (ReleaseGrant("ministry", ("statistics",)),)


def policy(*agreements: Agreement) -> Policy:
    return Policy(Agreements(agreements, default_registry().current("case_record")))


def agreement(source: str, **terms: Any) -> Agreement:
    return Agreement(source, 1, dt.date(2000, 1, 1), None, ("$",), GRANT, **terms)


AT = 1_750_000_000_000


def test_a_perpetrator_stream_leaves_out_sources_that_do_not_share_perpetrators() -> None:
    p = policy(
        agreement("police", perpetrator_sharing=True, min_cell_size=11),
        agreement("court", perpetrator_sharing=True, may_name_source=True),
        agreement("ngo", min_cell_size=20),  # allows the ministry, shares no perpetrators
        Agreement("press", 1, dt.date(2000, 1, 1), None, ("$",), (), perpetrator_sharing=True),
    )
    sub = Subscription("ministry", PERPETRATORS_BY_ROLE.name, "statistics")
    plan = p.plan(sub, PERPETRATORS_BY_ROLE, ["police", "court", "ngo", "press"], AT)
    assert plan.sources == ("court", "police")
    assert plan.sources_left_out == 2 and plan.sources_left_out_perpetrators == 1
    assert plan.k == 11  # the ngo's 20 does not apply: its records are not counted
    assert plan.sources_named == ("court",)
    # the victims' streams count the ngo as before
    victims = Subscription("ministry", VICTIMS_BY_YEAR_SEX.name, "statistics")
    plan = p.plan(victims, VICTIMS_BY_YEAR_SEX, ["police", "court", "ngo"], AT)
    assert plan.sources == ("court", "ngo", "police") and plan.sources_left_out == 0
    assert plan.k == 20


def test_no_perpetrator_release_when_no_allowed_source_shares_them() -> None:
    p = policy(agreement("ngo", may_name_source=True))
    sub = Subscription("ministry", PERPETRATORS_BY_ROLE.name, "statistics")
    with pytest.raises(NothingToRelease, match="shares perpetrator data"):
        p.plan(sub, PERPETRATORS_BY_ROLE, ["ngo"], AT)
