"""Retention: the dry run counts, per source, what each agreement's term makes due; applying it
destroys through the erasure path (a disposal the trust records, keys shredded by the erasure
follower) or archives de-identified (keys shredded at once, the anonymous records still
counted). On SQLite and PostgreSQL, with a real vault."""

from __future__ import annotations

import datetime as dt
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from schemas.codec import default_registry
from schemas.keys import FileKeyProvider
from tests.trust.store.builders import case_record, eid
from trust.follow import follow
from trust.stewardship import retention
from trust.stewardship.agreement import Agreement, Agreements, ReleaseGrant, Retention
from trust.stewardship.erasure import Erasure
from trust.store.errors import KeyShredded
from trust.store.events import (
    DisposalRequested,
    PersonKeysShredded,
    RecordAccepted,
    RetentionApplied,
)
from trust.store.eventstore import EventStore, Position
from trust.store.tables import proj_perpetrators, proj_persons, stored_events
from trust.store.vault import Vault, open_vault

YEAR = 365 * 86_400_000
NOW = 1_800_000_000_000  # 2027-01-15
NAMES = ["Ana Popescu", "Maria Ionescu", "Elena Dumitru"]


@pytest.fixture
def vault(store: EventStore, tmp_path: Path) -> Vault:
    path = tmp_path / "kek.bin"
    path.write_bytes(os.urandom(32))
    return open_vault(store.engine, FileKeyProvider(path))


def agreement(source: str, term: Retention | None) -> Agreement:
    grant = (ReleaseGrant("ministry", ("statistics",)),)
    return Agreement(source, 1, dt.date(2000, 1, 1), None, ("$",), grant, retention=term)


AGREEMENTS = Agreements(
    [
        agreement("police", Retention("destroy", years=1)),
        agreement("nrm", Retention("archive_deidentified", years=1)),
        agreement("ngo", None),
    ],
    default_registry().current("case_record"),
)


def _identifiers(i: int) -> dict[str, Any]:
    given, surname = NAMES[i % len(NAMES)].split()
    return {
        "given_names": given,
        "surnames": surname,
        "date_of_birth": date(1990, 5, 17),
        "documents": [],
        "phone": None,
    }


def add_case(
    store: EventStore, vault: Vault, source: str, case: str, victims: int, at_ms: int
) -> dict[str, Any]:
    """A case accepted (as if) at ``at_ms``; returns its sealed identifiers by victim."""
    record = case_record(source, case, [(f"v{i}", "Feminine", 30) for i in range(victims)])
    for i, victim in enumerate(record["victims"]):
        victim["identifiers"] = _identifiers(i)
    minimised, sealed = vault.seal_identifiers(source, case, record)
    event = RecordAccepted(eid(), source, case, minimised, sealed, 1, 2)
    offset = store.last_seq()
    (seq,) = store.append_batch(
        [([event], Position(f"tip.inbound.{source}", 0, offset))], "ingest"
    ).seqs
    with store.engine.begin() as conn:  # an older store: when the trust accepted the case
        conn.execute(
            update(stored_events).where(stored_events.c.seq == seq).values(recorded_at_ms=at_ms)
        )
    return sealed


def by_source(found: list[retention.SourceRetention]) -> dict[str, retention.SourceRetention]:
    return {f.source_id: f for f in found}


def test_the_dry_run_counts_what_is_due_and_changes_nothing(
    store: EventStore, vault: Vault
) -> None:
    add_case(store, vault, "police", "old-1", 2, NOW - 2 * YEAR)
    add_case(store, vault, "police", "new-1", 1, NOW - YEAR // 2)
    add_case(store, vault, "ngo", "old-9", 1, NOW - 5 * YEAR)
    add_case(store, vault, "court", "c-1", 1, NOW - 5 * YEAR)  # no agreement held at all
    before = store.last_seq()
    found = by_source(retention.review(store, AGREEMENTS, NOW))
    police = found["police"]
    assert (police.cases_held, police.victims_held, police.cases_due, police.victims_due) == (
        2,
        3,
        1,
        2,
    )
    assert police.term == "1 year(s), then destroy" and police.agreement_version == 1
    assert found["ngo"].cases_due == 0 and "no retention term" in found["ngo"].action
    assert found["court"].agreement_version is None and "no agreement" in found["court"].action
    assert found["nrm"].cases_held == 0  # an agreement, nothing held
    assert store.last_seq() == before
    # counts only: no case id in anything the dry run returns
    assert "old-1" not in repr(list(found.values()))


def test_destroy_goes_through_the_erasure_path(store: EventStore, vault: Vault) -> None:
    old = add_case(store, vault, "police", "old-1", 2, NOW - 2 * YEAR)
    new = add_case(store, vault, "police", "new-1", 1, NOW - YEAR // 2)
    done = by_source(retention.apply(store, AGREEMENTS, NOW, vault))
    assert done["police"].cases_due == 1 and done["police"].victims_due == 2
    stored = [e for _, e in store.read()]
    [applied] = [e for e in stored if isinstance(e, RetentionApplied)]
    assert (applied.at_end, applied.case_ids, applied.victims) == ("destroy", ["old-1"], 2)
    [disposal] = [e for e in stored if isinstance(e, DisposalRequested)]
    assert (disposal.case_id, disposal.victim_id, disposal.basis) == (
        "old-1",
        None,
        "RetentionExpired",
    )
    with store.engine.connect() as conn:
        flags = dict(conn.execute(select(proj_persons.c.case_id, proj_persons.c.disposed)).all())
    assert flags == {"old-1": True, "new-1": False}  # releases stop counting the old case
    with store.engine.connect() as conn:
        p = proj_perpetrators.c
        perpetrators = dict(conn.execute(select(p.case_id, p.disposed)).all())
    assert perpetrators == {"old-1": True, "new-1": False}  # and its perpetrators

    follow(store, Erasure(vault))  # as the running trust (or the CLI) does next
    assert any(isinstance(e, PersonKeysShredded) for _, e in store.read())
    for victim, blob in old.items():
        with pytest.raises(KeyShredded):
            vault.open_identifiers("police", "old-1", victim, blob)
    assert vault.open_identifiers("police", "new-1", "v0", new["v0"])["surnames"] == "Popescu"
    # nothing is due any more
    again = by_source(retention.review(store, AGREEMENTS, NOW))["police"]
    assert (again.cases_held, again.cases_due) == (1, 0)


def test_archive_shreds_identifiers_and_keeps_the_anonymous_count(
    store: EventStore, vault: Vault
) -> None:
    old = add_case(store, vault, "nrm", "n-1", 2, NOW - 3 * YEAR)
    keep = add_case(store, vault, "nrm", "n-2", 1, NOW)
    with pytest.raises(retention.RetentionError):
        retention.apply(store, AGREEMENTS, NOW)  # archiving needs the vault
    done = by_source(retention.apply(store, AGREEMENTS, NOW, vault))
    assert done["nrm"].cases_due == 1
    for victim, blob in old.items():
        with pytest.raises(KeyShredded):
            vault.open_identifiers("nrm", "n-1", victim, blob)
    assert vault.open_identifiers("nrm", "n-2", "v0", keep["v0"])["given_names"] == "Ana"
    stored = [e for _, e in store.read()]
    [applied] = [e for e in stored if isinstance(e, RetentionApplied)]
    [shred] = [e for e in stored if isinstance(e, PersonKeysShredded)]
    assert shred.causes == [applied.event_id] and len(shred.key_ids) == 2
    assert not any(isinstance(e, DisposalRequested) for e in stored)
    with store.engine.connect() as conn:
        flags = conn.execute(
            select(proj_persons.c.disposed, proj_persons.c.consent_withdrawn)
        ).all()
    assert all(not d and not w for d, w in flags)  # still counted in releases
    again = by_source(retention.review(store, AGREEMENTS, NOW + YEAR // 2))["nrm"]
    assert (again.cases_held, again.cases_due) == (1, 0)  # n-2 not due yet; n-1 never again
    later = by_source(retention.review(store, AGREEMENTS, NOW + 2 * YEAR))["nrm"]
    assert later.cases_due == 1


def test_on_schedule_retention_runs_once_per_interval_and_is_final_in_the_same_round(
    store: EventStore, vault: Vault
) -> None:
    """The trust applies retention itself: the runner calls the schedule before its followers,
    so the erasure follower shreds in the same round; the schedule acts at most once per
    interval, with the agreements in force when it runs."""
    old = add_case(store, vault, "police", "old-1", 1, NOW - 2 * YEAR)
    clock = [NOW / 1000]
    held = [Agreements([agreement("police", None)], default_registry().current("case_record"))]
    schedule = retention.RetentionSchedule(
        store, lambda: held[0], vault, every_s=3600, clock=lambda: clock[0]
    )
    eraser = Erasure(vault)

    def round_() -> None:  # TrustRunner.follow: before_follow, then the followers
        schedule()
        follow(store, eraser)

    round_()  # the agreement in force sets no term: nothing happens
    assert not [e for _, e in store.read() if isinstance(e, RetentionApplied)]
    held[0] = AGREEMENTS  # a new version sets a one-year term
    clock[0] += 60
    round_()  # within the interval: not yet looked at again
    assert not [e for _, e in store.read() if isinstance(e, RetentionApplied)]
    clock[0] += 3600
    round_()
    assert [e.case_ids for _, e in store.read() if isinstance(e, RetentionApplied)] == [["old-1"]]
    with pytest.raises(KeyShredded):  # final in the same round
        vault.open_identifiers("police", "old-1", "v0", old["v0"])
    clock[0] += 7200
    round_()  # nothing is due twice
    assert len([e for _, e in store.read() if isinstance(e, RetentionApplied)]) == 1
    with pytest.raises(ValueError):
        retention.RetentionSchedule(store, lambda: held[0], vault, every_s=0)
