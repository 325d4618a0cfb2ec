"""The ``perpetrators_by_role`` stream end to end: perpetrator records counted by the release
stage's shared counts, only from sources whose agreement shares perpetrator data, at the
strictest k, with every margin under secondary suppression and the LP audit, sources named only
when their agreement allows it; and ``tiptrust streams`` lists it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pytest
from typer.testing import CliRunner

from schemas.codec import default_registry
from schemas.keys import SigningKey
from tests.trust.store.builders import accepted, disposal, retracted
from tiptrust.cli import app
from trust.follow import follow
from trust.release import counts as release_counts
from trust.release.aggregate import PerpetratorFacts, cell_key, role_of
from trust.release.counts import PERPETRATOR_RULE, ReleaseCounts
from trust.release.disclosure import audit as audit_module
from trust.release.publish import ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import PERPETRATORS_BY_ROLE, STREAMS, VICTIMS_BY_YEAR_SEX
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import Event, RecordAccepted, SubscriptionAdded, new_event_id
from trust.store.eventstore import EventStore, Position

KEY = SigningKey.generate("trust")
STREAM = PERPETRATORS_BY_ROLE.name
_CASE = default_registry().current("case_record")
GRANT = (ReleaseGrant("ministry", ("statistics",)),)


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def with_perpetrators(ev: RecordAccepted, roles: Sequence[Sequence[str]]) -> RecordAccepted:
    """``ev`` with one perpetrator per entry of ``roles`` (ids p1, p2, ...)."""
    record = dict(ev.record)
    record["perpetrators"] = [
        {
            "perpetrator_id": f"p{i + 1}",
            "sex": "Masculine",
            "age_group": "Age25To34",
            "citizenships": ["NL"],
            "roles": list(r),
            "legal_status": "Suspected",
        }
        for i, r in enumerate(roles)
    ]
    return dataclasses.replace(ev, record=_CASE.decode(_CASE.encode(record)))


def cases(
    source: str, n: int, year: int, roles: Sequence[Sequence[str]], prefix: str
) -> list[Event]:
    return [with_perpetrators(accepted(source, f"{prefix}{i}", year=year), roles) for i in range(n)]


def append(store: EventStore, events: list[Event]) -> None:
    store.append_batch(
        [([ev], Position("t", 0, i)) for i, ev in enumerate(events, start=_next(store))], "ingest"
    )


def _next(store: EventStore) -> int:
    return store.last_seq() + 1


RECRUITER, EXPLOITER, TRANSPORTER = ("RecruiterOrIntermediary",), ("Exploiter",), ("Transporter",)

#: what police and court share, cell by cell (the ngo's 50 exploiters in 2022 are not shared)
TRUTH = {
    ("2022", "RecruiterOrIntermediary"): 30,
    ("2022", "Exploiter"): 15,
    ("2022", "Multiple"): 12,
    ("2023", "RecruiterOrIntermediary"): 20,  # ten cases of two perpetrators each
    ("2023", "Transporter"): 4,
    ("2023", "Exploiter"): 13,  # court's
}


def populate(store: EventStore, *, ngo: bool = True) -> None:
    append(
        store,
        [
            *cases("police", 30, 2022, [RECRUITER], "a"),
            *cases("police", 15, 2022, [EXPLOITER], "b"),
            *cases("police", 12, 2022, [("RecruiterOrIntermediary", "Exploiter")], "c"),
            *cases("police", 10, 2023, [RECRUITER, RECRUITER], "d"),
            *cases("police", 4, 2023, [TRANSPORTER], "e"),
            *cases("court", 13, 2023, [EXPLOITER], "f"),
            *(cases("ngo", 50, 2022, [EXPLOITER], "g") if ngo else []),
        ],
    )


def agreement(source: str, **terms: Any) -> Agreement:
    return Agreement(source, 1, dt.date(2000, 1, 1), None, ("$",), GRANT, **terms)


def make_stage(store: EventStore, *streams: str) -> ReleaseStage:
    agreements = [
        agreement("police", perpetrator_sharing=True, may_name_source=True),
        agreement("court", perpetrator_sharing=True, min_cell_size=12),  # not to be named
        agreement("ngo", may_name_source=True),  # shares no perpetrator data
    ]
    policy = Policy(Agreements(agreements, _CASE))
    for name in streams or (STREAM,):
        store.append(
            [SubscriptionAdded(new_event_id(), "ministry", name, "statistics", 0)], None, "op"
        )
    return ReleaseStage(store=store, signer=ReleaseSigner(KEY), policy=policy, streams=STREAMS)


def test_the_stream_is_released_from_sharing_sources_only_with_margins_audited(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(store)
    audited: list[audit_module.AuditReport] = []
    original = audit_module.assert_protected

    def spy(*args: Any, **kwargs: Any) -> audit_module.AuditReport:
        report = original(*args, **kwargs)
        # the reference audit (one LP per suppressed value) agrees that nothing is pinned
        assert audit_module.naive_audit(*args, **kwargs).passed
        audited.append(report)
        return report

    monkeypatch.setattr("trust.release.disclosure.margins.assert_protected", spy)
    stage = make_stage(store)
    [made] = stage.release_once()
    r = made.release
    assert r.stream == STREAM and r.k == 12  # the court's k is stricter than the stream's
    by = {(a.dimensions, a.key): a.value for a in r.aggregates}
    truth: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {((), ()): sum(TRUTH.values())}
    for (year, role), n in TRUTH.items():
        for key in (
            (("year", "role"), (year, role)),
            (("year",), (year,)),
            (("role",), (role,)),
        ):
            truth[key] = truth.get(key, 0) + n
    for key, value in by.items():
        assert value is None or value == truth.get(key, 0), key
    assert by[((), ())] == 94  # the ngo's 50 perpetrator records are not in it
    assert by[(("year", "role"), ("2023", "Transporter"))] is None  # 4 < k
    assert all(v is None or v >= 12 for v in by.values())
    assert sum(v is not None for v in by.values()) >= 4
    # every cell, every margin and the total: (2 years + Total) x (6 roles + Total)
    assert len(r.aggregates) == 3 * 7
    assert "secondary suppression" in r.method
    assert audited and all(rep.passed for rep in audited)
    # the sources: both counted, only the police named; the ngo left out and said to be
    assert r.source_count == 2 and r.sources == ("police",)
    assert "1 of the 2 sources counted are not named" in r.metadata["sources_not_named"]
    assert r.metadata["sources_left_out"] == "1"
    assert "do not share perpetrator data" in r.metadata["sources_left_out_perpetrators"]
    # what one count is, and the caveat: perpetrator records, never linked across sources
    assert r.metadata["counting_rule"] == PERPETRATOR_RULE
    assert "never linked across sources" in r.metadata["counting_rule"]
    assert r.caveat == PERPETRATORS_BY_ROLE.caveat and "never linked" in r.caveat
    assert "role_rule" in r.metadata and "form_rule" not in r.metadata
    assert r.labels["role"]["OtherRoles"].startswith("Other roles")
    assert stage.release_once() == []  # nothing changed


def test_perpetrator_releases_leave_the_victims_differencing_alone(store: EventStore) -> None:
    # without the ngo: 84 victims (57 in 2022, 27 in 2023) and 94 perpetrator records (57, 37),
    # within k of each other; they count different things, so neither release may hide the
    # other's figures as if one were an earlier value of the same aggregate
    populate(store, ngo=False)
    stage = make_stage(store, STREAM, VICTIMS_BY_YEAR_SEX.name)
    made = {m.release.stream: m.release for m in stage.release_once()}
    perpetrators = {(a.dimensions, a.key): a.value for a in made[STREAM].aggregates}
    victims = {(a.dimensions, a.key): a.value for a in made[VICTIMS_BY_YEAR_SEX.name].aggregates}
    assert perpetrators[((), ())] == 94 and perpetrators[(("year",), ("2023",))] == 37
    assert victims[((), ())] == 84 and victims[(("year",), ("2023",))] == 27


def test_no_release_when_no_allowed_source_shares_perpetrator_data(store: EventStore) -> None:
    append(store, cases("ngo", 20, 2022, [EXPLOITER], "g"))
    stage = make_stage(store)
    assert stage.release_once() == []
    [skip] = stage.skipped
    assert skip.code == "nothing_allowed" and "shares perpetrator data" in skip.reason


def test_the_counts_follow_retraction_and_disposal_of_a_case(store: EventStore) -> None:
    append(store, cases("police", 3, 2022, [RECRUITER, EXPLOITER], "a"))
    counts = ReleaseCounts(STREAMS)

    def cells() -> dict[tuple[str, ...], int]:
        follow(store, counts)
        with store.engine.connect() as conn:
            return release_counts.cell_counts(conn, PERPETRATORS_BY_ROLE, ["police"])

    assert cells() == {("2022", "RecruiterOrIntermediary"): 3, ("2022", "Exploiter"): 3}
    store.append([retracted("police", "a0")], None, "ingest")
    assert cells() == {("2022", "RecruiterOrIntermediary"): 2, ("2022", "Exploiter"): 2}
    # a victim's own disposal concerns the victim only; the whole case's takes its perpetrators
    store.append([disposal("police", "a1", "v1")], None, "ingest")
    assert cells() == {("2022", "RecruiterOrIntermediary"): 2, ("2022", "Exploiter"): 2}
    store.append([disposal("police", "a1", None)], None, "ingest")
    assert cells() == {("2022", "RecruiterOrIntermediary"): 1, ("2022", "Exploiter"): 1}
    # a new version of a case that drops a perpetrator takes it out of the counts
    store.append(
        [with_perpetrators(accepted("police", "a2", year=2023), [TRANSPORTER])], None, "ingest"
    )
    assert cells() == {("2023", "Transporter"): 1}
    # the victims' stream counts the victims alone: a0 retracted, a1 disposed of, a2's one
    with store.engine.connect() as conn:
        victims = release_counts.cell_counts(conn, VICTIMS_BY_YEAR_SEX, ["police"])
    assert victims == {("2023", "Feminine"): 1}


def test_a_perpetrator_is_in_one_role_cell() -> None:
    assert role_of(["Exploiter"]) == "Exploiter"
    assert role_of(["Exploiter", "Unknown"]) == "Exploiter"
    assert role_of(["Exploiter", "Transporter"]) == "Multiple"
    assert role_of([]) == role_of(["Unknown"]) == "Unknown"
    facts = PerpetratorFacts(("s", "c", "p1"), ("Kidnapper",), None)
    assert cell_key(facts, PERPETRATORS_BY_ROLE) == ("Unknown", "OtherRoles")


def test_streams_lists_the_perpetrator_stream() -> None:
    done = CliRunner().invoke(app, ["streams", "--json"])
    assert done.exit_code == 0, done.output
    by = {r["stream"]: r for r in json.loads(done.output)}
    row = by[STREAM]
    assert row["dimensions"] == ["year", "role"] and row["margins"] and row["k"] == 10
    assert row["title"] == PERPETRATORS_BY_ROLE.title


def test_a_perpetrator_stream_counts_by_year_and_role_only() -> None:
    for wrong in (("year", "sex"), ("role", "form")):
        with pytest.raises(ValueError, match="perpetrators are counted by"):
            dataclasses.replace(PERPETRATORS_BY_ROLE, dimensions=wrong)
    with pytest.raises(ValueError, match="subject"):
        dataclasses.replace(PERPETRATORS_BY_ROLE, subject="suspects")
