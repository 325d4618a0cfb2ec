"""Re-estimating the model on the trust's own data: EM on the linked records, adoption as an
event, and decisions from then on naming the adopted version."""

from __future__ import annotations

import itertools
from datetime import date

from trust.follow import follow
from trust.linkage import KeyedHasher, LinkageSettings, Linker
from trust.linkage.model import default_model
from trust.linkage.resolver import Resolver
from trust.linkage.training import adopt, estimate_on_store, model_in_force
from trust.store.events import LinkModelAdopted, RecordLinked
from trust.store.eventstore import EventStore
from trust.store.vault import Vault

from .test_resolver import Trust, ids

NAMES = [
    ("Ana", "Popescu"),
    ("Elena", "Dumitru"),
    ("Maria", "Ionescu"),
    ("Oksana", "Melnyk"),
    ("Yulia", "Kovalenko"),
    ("Amina", "Haddad"),
    ("Grace", "Okafor"),
    ("Linh", "Nguyen"),
    ("Sofia", "Rossi"),
    ("Nadia", "Petrova"),
]


def _populate(trust: Trust) -> None:
    for i, (given, surname) in enumerate(NAMES * 3):
        dob = date(1980 + i % 25, 1 + i % 12, 1 + i % 27)
        trust.accept("police", f"C{i}", [("v1", "Feminine", ids(given, surname, dob))])
        if i % 2 == 0:  # seen again by the NGO, with the day and month swapped now and then
            again = date(dob.year, dob.day, dob.month) if i % 4 == 0 and dob.day <= 12 else dob
            trust.accept("ngo", f"N{i}", [("v1", "Feminine", ids(given, surname, again))])
    trust.link()


def test_a_model_estimated_and_adopted_is_the_one_decisions_name(store: EventStore) -> None:
    trust = Trust(store)
    _populate(trust)
    assert model_in_force(store).version == default_model().version
    estimate = estimate_on_store(store, trust.resolver)
    assert estimate.records == 45
    assert estimate.model.version != default_model().version
    assert all(converged for *_, converged in estimate.estimation.sessions)

    event = adopt(store, estimate, "operator-1")
    assert isinstance(event, LinkModelAdopted) and event.trained_on_records == 45
    assert model_in_force(store).version == estimate.model.version

    counter = itertools.count(100)
    linker = Linker(
        LinkageSettings(), model_in_force(store), KeyedHasher(trust.vault.linkage_key())
    )
    trust.resolver = Resolver(trust.vault, linker, person_ids=lambda: f"P-{next(counter)}")
    trust.accept("nrm", "R1", [("v1", "Feminine", ids("Ana", "Popescu", date(1980, 1, 1)))])
    follow(store, trust.resolver)
    last = [e for e in trust.events(RecordLinked)][-1]
    assert last.model_version == estimate.model.version
    earlier = {e.model_version for e in trust.events(RecordLinked)[:-1]}
    assert earlier == {default_model().version}  # earlier decisions keep their version


def test_records_of_erased_persons_are_not_trained_on(store: EventStore) -> None:
    trust = Trust(store)
    _populate(trust)
    vault: Vault = trust.vault
    vault.shred(vault.person_key_id("police", "C0", "v1"))
    assert estimate_on_store(store, trust.resolver).records == 44


def test_a_model_adopted_for_other_comparisons_gives_way_to_the_shipped_one(
    store: EventStore,
) -> None:
    """After an upgrade that adds a comparison, the model adopted before cannot score the new
    vectors: the trust decides with the shipped model until a new estimate is adopted."""
    trust = Trust(store)
    _populate(trust)
    estimate = estimate_on_store(store, trust.resolver)
    adopt(store, estimate, "operator-1")
    fewer = LinkageSettings().comparisons[:-1]
    assert model_in_force(store, fewer).version == default_model().version
    assert model_in_force(store).version == estimate.model.version


def test_the_name_session_leaves_the_context_out_so_dates_keep_their_weight() -> None:
    """Pairs that share a name are mostly different persons: weighing the context there would
    teach that matches disagree on dates of birth. The shipped model keeps that disagreement
    rare among matches."""
    settings = LinkageSettings()
    names = next(t for t in settings.training_rules if t.rule.name == "full_name_key")
    assert {"event_year", "forms"} <= set(names.leaves_out)
    dob = next(c for c in default_model().comparisons if c.name == "date_of_birth")
    assert dob.m[dob.levels.index("other")] < 0.01
