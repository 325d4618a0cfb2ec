"""The resolver's cost per record stays bounded however many namesakes the store holds: a key
whose block is over the cap is looked up through its refinements, every block is read with a
limit, and at most ``max_candidates`` records are compared (with their persons' records). Also
bulk seeding (:meth:`Resolver.seed_with`): records placed by label, filed like decided ones."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from trust.linkage import resolver as resolver_module
from trust.linkage.blocking import Lookup
from trust.store.events import LinkDecision, RecordAccepted, RecordLinked
from trust.store.eventstore import EventStore, Position, open_store
from trust.store.tables import link_blocks, proj_person_links

from ..store.builders import case_record, consent, eid
from .people import age_on_record
from .test_resolver import Trust, ids

NAMESAKES = 1500
BORN = dt.date(1990, 1, 1)


def _dob(i: int) -> dt.date:
    """Spread over about 11 years: ~140 namesakes a birth year, ~1 a day."""
    return BORN + dt.timedelta(days=(i * 7) % 4000)


def _accept_many(trust: Trust, cases: list[tuple[str, dict[str, Any]]]) -> None:
    """One victim per case, all appended at one position (one transaction)."""
    events = []
    for case, identifiers in cases:
        record = case_record("police", case, [("v1", "Feminine", age_on_record(identifiers))])
        record["victims"][0]["identifiers"] = identifiers
        minimised, sealed = trust.vault.seal_identifiers("police", case, record)
        events.append(RecordAccepted(eid(), "police", case, minimised, sealed, 1, 2))
    trust.store.append(events, Position("tip.inbound", 0, trust.offset), "ingest")
    trust.offset += 1


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trust]:
    """A store holding NAMESAKES records of "Ana Popescu", F, RO, exploited in 2024 — each a
    person of its own, seeded (no scoring), with dates of birth spread over 11 years. Shared by
    the module's tests (seeding it is their cost): each adds records of its own source."""
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('crowded') / 'store.db'}")
    try:
        trust = Trust(store)
        cases = [(f"c{i:05d}", ids(dob=_dob(i))) for i in range(NAMESAKES)]
        trust.resolver.seed_with({("police", c, "v1"): c for c, _ in cases})
        _accept_many(trust, cases)
        trust.link()
        yield trust
    finally:
        store.close()


class _Watch:
    """What the resolver compared and read for the records linked while it watches."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.compared: list[int] = []
        self.rows_read = 0
        self.digests_read = 0
        self.limit = 0
        score = resolver_module._Run._score
        bounded = resolver_module._bounded_blocks

        def watched_score(run: Any, record: Any, candidates: Any, *rest: Any) -> Any:
            self.compared.append(len(candidates))
            return score(run, record, candidates, *rest)

        def watched_blocks(conn: Any, digests: Any, rows: int) -> Any:
            self.digests_read += len(digests)
            if digests:
                self.limit = max(self.limit, rows)
            for row in bounded(conn, digests, rows):
                self.rows_read += 1
                yield row

        monkeypatch.setattr(resolver_module._Run, "_score", watched_score)
        monkeypatch.setattr(resolver_module, "_bounded_blocks", watched_blocks)


def test_seeded_records_are_persons_with_index_rows(crowded: Trust) -> None:
    with crowded.store.engine.connect() as conn:
        persons = conn.execute(
            select(func.count(func.distinct(proj_person_links.c.person_id)))
        ).scalar_one()
        rows = conn.execute(select(func.count()).select_from(link_blocks)).scalar_one()
    assert persons >= NAMESAKES
    linked = [e for e in crowded.events(RecordLinked) if e.victim.source_id == "police"]
    assert len(linked) == NAMESAKES
    assert {e.decision for e in linked} == {LinkDecision.NEW_PERSON}
    assert all(e.evidence == [] for e in linked)
    # each record filed under its keys and their refinements (more than the rules' keys alone)
    linker = crowded.resolver.linker
    victim = {"sex": "Feminine", "citizenships": ["RO"]}
    one = linker.prepare(
        resolver_module.link_record(("police", "c00000", "v1"), victim, ids(dob=BORN))
    )
    keys = linker.candidates_keys(one)
    assert len(Lookup.of(keys).keys) < len(keys)
    assert rows >= NAMESAKES * len(Lookup.of(keys).keys)


def test_a_record_among_thousands_of_namesakes_meets_a_bounded_few(
    crowded: Trust, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = crowded.resolver.linker.settings
    watch = _Watch(monkeypatch)
    # the same person as namesake 700 (same name, date of birth and document-less)
    crowded.accept("ngo", "n1", [("v1", "Feminine", ids(dob=_dob(700)))])
    crowded.link()
    assert len(watch.compared) == 1
    # far fewer than the namesakes: those born the same day (refined keys) and by date and sex
    assert 1 <= watch.compared[0] <= settings.max_candidates
    assert watch.compared[0] < 10
    # every block read with a limit: the rows read are bounded by the digests looked up
    assert watch.limit == settings.block_cap + 1
    assert watch.rows_read <= watch.digests_read * (settings.block_cap + 1)
    assert crowded.person("ngo", "n1") == crowded.person("police", "c00700")


def test_a_crowd_of_namesakes_with_no_narrower_key_leaves_a_person_of_its_own(
    crowded: Trust, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = _Watch(monkeypatch)
    # no date of birth: every key is shared by all namesakes and no refinement narrows it
    crowded.accept("ngo", "n2", [("v1", "Feminine", ids(dob=None))])
    crowded.link()
    assert watch.compared in ([], [0])
    person = crowded.person("ngo", "n2")
    assert person is not None
    assert person not in {crowded.person("police", f"c{i:05d}") for i in range(0, NAMESAKES, 50)}


def test_candidates_stay_within_max_candidates_when_every_block_is_small(
    sqlite_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small blocks can still add up: the ranking keeps at most ``max_candidates``."""
    trust = Trust(sqlite_store)
    linker = trust.resolver.linker
    linker.settings = type(linker.settings)(block_cap=40, max_candidates=5)
    # 30 persons sharing the full date of birth and sex with the new record, names all different
    cases = [
        (f"d{i:03d}", ids(given=f"Given{chr(97 + i % 26)}{i}", surname=f"Sur{i}x", dob=BORN))
        for i in range(30)
    ]
    trust.resolver.seed_with({("police", c, "v1"): c for c, _ in cases})
    _accept_many(trust, cases)
    trust.link()
    watch = _Watch(monkeypatch)
    trust.accept("ngo", "n3", [("v1", "Feminine", ids(dob=BORN))])
    trust.link()
    assert watch.compared == [5]


def test_a_withdrawal_removes_a_namesakes_keys_and_refinements(crowded: Trust) -> None:
    def rows() -> int:
        c = link_blocks.c
        with crowded.store.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(c.source_id == "police", c.case_id == "c01234")
                ).scalar_one()
            )

    victim = {"sex": "Feminine", "citizenships": ["RO"]}
    linker = crowded.resolver.linker
    one = linker.prepare(
        resolver_module.link_record(("police", "c01234", "v1"), victim, ids(dob=_dob(1234)))
    )
    assert rows() == len({k.digest for k in linker.candidates_keys(one)})
    crowded.append(consent("police", "c01234", "v1"))
    crowded.link()
    assert rows() == 0
    assert crowded.person("police", "c01234") is None
