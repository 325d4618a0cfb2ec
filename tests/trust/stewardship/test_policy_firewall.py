"""The purpose firewall through the release stage, on a real store (SQLite and PostgreSQL): a
consumer subscribed for immigration enforcement receives nothing from sources whose agreements
did not name that purpose for it — not through '*', not when a source forbids it — and only the
persons of a source that named it explicitly."""

from __future__ import annotations

import datetime as dt

from schemas.codec import default_registry
from schemas.keys import SigningKey
from tests.trust.store.builders import accepted
from trust.release.publish import ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import VICTIMS_BY_SEX_AGE_FORM
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant
from trust.stewardship.policy import Policy
from trust.store.events import ReleaseIssued, SubscriptionAdded, new_event_id
from trust.store.eventstore import EventStore, Position

SPEC = VICTIMS_BY_SEX_AGE_FORM
KEY = SigningKey.generate("trust")
BORDER = ("border_agency", "immigration_enforcement")


def agreement(
    source: str, *grants: tuple[str, tuple[str, ...]], forbid: tuple[str, ...] = ()
) -> Agreement:
    return Agreement(
        source,
        1,
        dt.date(2000, 1, 1),
        None,
        ("$",),
        tuple(ReleaseGrant(c, ps) for c, ps in grants),
        purposes_forbidden=forbid,
        may_name_source=True,
    )


AGREEMENTS = [
    # the police share with the border agency for "any purpose": not a sensitive one
    agreement("police", ("ministry", ("statistics",)), ("border_agency", ("*",))),
    # the NGO forbids it outright
    agreement("ngo", ("ministry", ("statistics",)), forbid=("immigration_enforcement",)),
    # the labour inspectorate names it, explicitly, for the border agency
    agreement("labour", ("ministry", ("statistics",)), ("border_agency", BORDER[1:])),
]


def persons(store: EventStore, source: str, n: int, partition: int) -> None:
    store.append_batch(
        [
            (
                [accepted(source_id=source, case_id=f"{source}-{i}", year=2024)],
                Position("t", partition, i),
            )
            for i in range(n)
        ],
        "ingest",
    )


def subscribe(store: EventStore, consumer: str, purpose: str) -> None:
    store.append(
        [SubscriptionAdded(new_event_id(), consumer, SPEC.name, purpose, 0)], None, "operator"
    )


def stage(store: EventStore) -> ReleaseStage:
    policy = Policy(Agreements(AGREEMENTS, default_registry().current("case_record")))
    return ReleaseStage(
        store=store, signer=ReleaseSigner(KEY), policy=policy, streams={SPEC.name: SPEC}
    )


def test_a_sensitive_purpose_receives_nothing_from_sources_that_did_not_name_it(
    store: EventStore,
) -> None:
    persons(store, "police", 12, 0)
    persons(store, "ngo", 12, 1)
    subscribe(store, *BORDER)
    subscribe(store, "ministry", "statistics")
    s = stage(store)
    made = s.release_once()
    assert [m.release.metadata["consumer"] for m in made] == ["ministry"]
    assert made[0].release.sources == ("ngo", "police") and made[0].release.total == 24
    [skipped] = s.skipped
    assert (skipped.subscription.consumer, skipped.code) == ("border_agency", "nothing_allowed")
    issued = [e for _, e in store.read() if isinstance(e, ReleaseIssued)]
    assert {e.consumer for e in issued} == {"ministry"}  # nothing recorded, so nothing leaves

    # a source that names the purpose for this consumer: its persons, and only its, go out
    persons(store, "labour", 11, 2)
    made = s.release_once()
    border = [m for m in made if m.release.metadata["consumer"] == "border_agency"]
    [release] = border
    assert release.release.sources == ("labour",) and release.release.total == 11
    assert release.release.metadata["sources_left_out"] == "2"
    event = next(
        e for _, e in store.read() if isinstance(e, ReleaseIssued) and e.consumer == "border_agency"
    )
    assert event.metadata["agreement_versions"] == [["labour", 1]]
