"""Capture histories from the trust's linked persons: a hand count of who each source saw, the
Lincoln-Petersen estimate through this path, records that stop counting drop out, records
linkage has not placed count for their own source, strata by the release's combined facts."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.rules import age_group
from tests.trust.linkage.people import age_on_record
from tests.trust.linkage.test_resolver import Trust, ids
from tests.trust.store.builders import consent, retracted
from trust.estimate import EstimateError, ReasonCode, estimate_population
from trust.estimate.from_trust import histories_from_trust
from trust.release.counts import counted_persons
from trust.store.eventstore import EventStore

# Each person: sex and the (source, case) records that see them; names and documents that
# linkage cannot confuse, repeated exactly across a person's records.
PERSONS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "A": ("Feminine", [("police", "PA"), ("ngo", "NA"), ("nrm", "MA")]),
    "B": ("Feminine", [("police", "PB"), ("ngo", "NB")]),
    "C": ("Masculine", [("police", "PC"), ("nrm", "MC")]),
    "D": ("Feminine", [("ngo", "ND"), ("nrm", "MD")]),
    "E": ("Masculine", [("police", "PE")]),
    "F": ("Feminine", [("police", "PF")]),
    "G": ("Masculine", [("ngo", "NG")]),
    "H": ("Feminine", [("nrm", "MH1"), ("nrm", "MH2")]),  # two records of one source
}
NAMES = {
    "A": ("Ana", "Popescu", date(1990, 5, 17)),
    "B": ("Bogdan", "Ionescu", date(1982, 2, 3)),
    "C": ("Cristina", "Vasilescu", date(1975, 11, 29)),
    "D": ("Dmitri", "Kowalczyk", date(1999, 7, 8)),
    "E": ("Elif", "Yilmaz", date(2001, 1, 21)),
    "F": ("Fatima", "Okonkwo", date(1987, 9, 14)),
    "G": ("Gheorghe", "Marinescu", date(1968, 4, 30)),
    "H": ("Hanna", "Lindqvist", date(1994, 12, 6)),
}
LISTS = ("ngo", "nrm", "police")  # sorted: the default order


def accept_all(trust: Trust) -> None:
    for person, (sex, records) in PERSONS.items():
        given, surname, dob = NAMES[person]
        for source, case in records:
            trust.accept(source, case, [("v1", sex, ids(given, surname, dob, f"DOC-{person}"))])


def hand_count(persons: dict[str, set[str]]) -> dict[frozenset[str], int]:
    out: dict[frozenset[str], int] = {}
    for sources in persons.values():
        out[frozenset(sources)] = out.get(frozenset(sources), 0) + 1
    return out


def table_of(got_rows: list[tuple[tuple[int, ...], int]]) -> dict[frozenset[str], int]:
    return {
        frozenset(name for name, f in zip(LISTS, flags, strict=True) if f): n
        for flags, n in got_rows
    }


@pytest.fixture
def linked(store: EventStore) -> Trust:
    trust = Trust(store)
    accept_all(trust)
    trust.link()
    # linkage placed each person as the table says (the premise of the hand counts below)
    for _, records in PERSONS.values():
        assert len({trust.person(s, c) for s, c in records}) == 1
    assert len({trust.person(*records[0]) for _, records in PERSONS.values()}) == len(PERSONS)
    return trust


def test_the_histories_equal_a_hand_count(linked: Trust) -> None:
    got = histories_from_trust(linked.store)
    assert got.lists == LISTS
    assert got.sources == LISTS
    expected = hand_count({p: {s for s, _ in recs} for p, (_, recs) in PERSONS.items()})
    assert table_of(got.pooled.rows()) == expected
    assert got.persons == len(PERSONS) == len(counted_persons(linked.store))
    assert got.records == sum(len(recs) for _, recs in PERSONS.values())
    assert got.unlinked == 0
    assert dict(got.persons_per_list) == {"ngo": 4, "nrm": 4, "police": 5}
    assert got.pooled.on("police", "ngo", "nrm") == 1  # A
    assert got.pooled.exactly("nrm") == 1  # H, once though two records


def test_two_lists_reduce_to_lincoln_petersen(linked: Trust) -> None:
    got = histories_from_trust(linked.store, lists=["police", "ngo"])
    h = got.pooled
    assert h.lists == ("police", "ngo")
    # police: A B C E F; ngo: A B D G; both: A B. C and D keep only the list chosen; H (nrm
    # only) is on no chosen list and is not in the table
    assert (h.on("police"), h.on("ngo"), h.on("police", "ngo")) == (5, 4, 2)
    assert got.persons == 7
    result = estimate_population(h)
    assert result.exists and result.model == ()
    assert result.estimate == pytest.approx(5 * 4 / 2, rel=1e-6)


def test_pooling_sources_into_one_list(linked: Trust) -> None:
    got = histories_from_trust(
        linked.store, lists=["state", "ngo"], list_of={"police": "state", "nrm": "state"}
    )
    assert dict(got.list_sources) == {"state": ("nrm", "police"), "ngo": ("ngo",)}
    # state: A B C D E F H; ngo: A B D G; both A B D
    assert (got.pooled.on("state"), got.pooled.on("ngo"), got.pooled.on("state", "ngo")) == (
        7,
        4,
        3,
    )


def test_a_retracted_or_erased_record_drops_out(linked: Trust) -> None:
    linked.append(retracted("ngo", "NB"))  # B: police only
    linked.append(consent("nrm", "MD", "v1"))  # D: ngo only
    linked.append(retracted("police", "PE"))  # E: gone
    linked.link()
    got = histories_from_trust(linked.store)
    expected = hand_count(
        {
            "A": {"police", "ngo", "nrm"},
            "B": {"police"},
            "C": {"police", "nrm"},
            "D": {"ngo"},
            "F": {"police"},
            "G": {"ngo"},
            "H": {"nrm"},
        }
    )
    assert table_of(got.pooled.rows()) == expected
    assert got.persons == 7 == len(counted_persons(linked.store))


def test_records_linkage_has_not_placed_count_for_their_own_source(store: EventStore) -> None:
    trust = Trust(store)
    accept_all(trust)  # no linkage yet: every record is a person of its own
    got = histories_from_trust(store)
    records = sum(len(recs) for _, recs in PERSONS.values())
    assert got.persons == got.unlinked == got.records == records
    assert table_of(got.pooled.rows()) == {
        frozenset({"police"}): 5,
        frozenset({"ngo"}): 4,
        frozenset({"nrm"}): 5,
    }
    trust.link()
    given, surname, dob = NAMES["G"]
    trust.accept("police", "PG", [("v1", "Masculine", ids(given, surname, dob, "DOC-G"))])
    got = histories_from_trust(store)  # the new record waits for linkage: police only
    assert got.unlinked == 1
    assert got.pooled.exactly("police") == 3  # E, F and the unplaced record
    assert got.pooled.exactly("ngo") == 1  # G, not yet joined by its police record
    trust.link()
    got = histories_from_trust(store)
    assert got.unlinked == 0
    assert (got.pooled.exactly("police"), got.pooled.exactly("ngo")) == (2, 0)
    assert got.pooled.exactly("police", "ngo") == 2  # B and now G


def test_strata_use_the_combined_facts(linked: Trust) -> None:
    got = histories_from_trust(linked.store, strata=["sex"])
    assert got.strata == ("sex",)
    assert set(got.tables) == {("Feminine",), ("Masculine",)}
    by_sex = {sex: table_of(got.tables[(sex,)].rows()) for sex in ("Feminine", "Masculine")}
    assert by_sex["Feminine"] == hand_count(
        {p: {s for s, _ in recs} for p, (sex, recs) in PERSONS.items() if sex == "Feminine"}
    )
    assert sum(t.observed for t in got.tables.values()) == got.persons
    both = histories_from_trust(linked.store, strata=["year", "age_group"])
    # every record: 2024, aged as its date of birth says on the record's date
    ages = {age_group(age_on_record({"date_of_birth": dob})) for _, _, dob in NAMES.values()}
    assert set(both.tables) == {("2024", group) for group in ages}


def test_bad_requests_are_refused(linked: Trust) -> None:
    with pytest.raises(EstimateError) as one:
        histories_from_trust(linked.store, lists=["police"])
    assert one.value.code is ReasonCode.TOO_FEW_LISTS
    with pytest.raises(EstimateError) as unknown:
        histories_from_trust(linked.store, lists=["police", "court"])
    assert unknown.value.code is ReasonCode.UNKNOWN_LIST
    with pytest.raises(EstimateError) as stratum:
        histories_from_trust(linked.store, strata=["country"])
    assert stratum.value.code is ReasonCode.BAD_OPTION


def test_a_known_list_with_nobody_counted_is_kept_empty(linked: Trust) -> None:
    linked.append(retracted("police", "PE"))
    linked.append(retracted("police", "PF"))
    for case in ("PA", "PB", "PC"):
        linked.append(retracted("police", case))
    got = histories_from_trust(linked.store, lists=["police", "ngo", "nrm"])
    assert got.persons_per_list["police"] == 0
    assert got.lists_with_persons() == ("ngo", "nrm")
    with pytest.raises(EstimateError):
        histories_from_trust(linked.store, lists=["police", "ngo"])
