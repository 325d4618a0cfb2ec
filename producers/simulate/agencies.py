"""Which agency detects which victims: coverage and formality differ, and the lists depend.

Seed §3, figure 3: specialised NGOs have high coverage and low formality, courts low coverage and
high formality. Detection is drawn per event (did the agency encounter the case?) and then per
victim (did it record this person?). The national referral mechanism mostly receives persons whom
police or NGOs referred, and courts only see cases the police investigated — so the lists are
dependent, as multiple-systems estimation must allow for.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from producers.simulate.noise import NoiseLevel
from producers.simulate.population import Event, Population, Victim

# source → what it detected so far: person ids, and "event_id/person_id" pairs
Detected = dict[str, set[str]]


@dataclass(frozen=True, slots=True)
class Agency:
    """One reporting agency's profile."""

    source_id: str
    organisation_type: str
    noise: NoiseLevel
    # P(the agency encounters this event), given earlier lists
    event_probability: Callable[[Event, Detected], float]
    # P(the agency records this victim of an encountered event), given earlier lists
    victim_probability: Callable[[Victim, Event, Detected], float]


def _police_event(e: Event, seen: Detected) -> float:
    return {"SexualExploitation": 0.3, "ForcedCriminality": 0.45, "ForcedBegging": 0.35}.get(
        e.forms[0], 0.2
    )


def _ngo_event(e: Event, seen: Detected) -> float:
    if "SexualExploitation" in e.forms:
        female = any(v.person.sex == "Feminine" for v in e.victims)
        return 0.55 if female else 0.3
    return {"Servitude": 0.4, "ForcedMarriage": 0.35}.get(e.forms[0], 0.2)


def _ngo_victim(v: Victim, e: Event, seen: Detected) -> float:
    return 0.9 if v.person.sex == "Feminine" else 0.55


def _labour_event(e: Event, seen: Detected) -> float:
    return 0.32 if "ForcedLabour" in e.forms else 0.02


def _labour_victim(v: Victim, e: Event, seen: Detected) -> float:
    return 0.9 if v.age >= 16 else 0.3


def _nrm_victim(v: Victim, e: Event, seen: Detected) -> float:
    # first responders refer; children need no consent, so they are referred more often
    pid = v.person.person_id
    if pid in seen["police"] or pid in seen["ngo_haven"]:
        return 0.92 if v.age < 18 else 0.7
    if pid in seen["labour_inspectorate"]:
        return 0.4
    return 0.06  # referred by first responders that share no data here


def _court_event(e: Event, seen: Detected) -> float:
    # only cases the police investigated reach court, and not all of them
    police = seen["police"]
    return 0.4 if any(f"{e.event_id}/{v.person.person_id}" in police for v in e.victims) else 0.0


def _court_victim(v: Victim, e: Event, seen: Detected) -> float:
    return 0.8 if f"{e.event_id}/{v.person.person_id}" in seen["police"] else 0.0


AGENCIES: tuple[Agency, ...] = (
    Agency(
        "police",
        "Police",
        NoiseLevel(0.03, 0.15, 0.02, 0.2, 0.05),
        _police_event,
        lambda v, e, seen: 0.8,
    ),
    Agency(
        "ngo_haven",
        "NGO",
        NoiseLevel(0.05, 0.3, 0.04, 0.5, 0.15, missing_surname=0.3),
        _ngo_event,
        _ngo_victim,
    ),
    Agency(
        "labour_inspectorate",
        "LabourInspectorate",
        NoiseLevel(0.02, 0.2, 0.05, 0.15, 0.05),
        _labour_event,
        _labour_victim,
    ),
    # the NRM refers persons, not cases: every event is open to it, each victim decided alone
    Agency(
        "nrm",
        "NationalReferralMechanism",
        NoiseLevel(0.01, 0.1, 0.01, 0.05, 0.02),
        lambda e, seen: 1.0,
        _nrm_victim,
    ),
    Agency(
        "court",
        "CourtOrProsecution",
        NoiseLevel(0.005, 0.05, 0.0, 0.0, 0.0),
        _court_event,
        _court_victim,
    ),
)
SOURCES = tuple(a.source_id for a in AGENCIES)


@dataclass(frozen=True, slots=True)
class Detection:
    """One agency's view of one event: the victims it recorded."""

    event: Event
    victims: tuple[Victim, ...]


def detect(rng: random.Random, population: Population) -> dict[str, list[Detection]]:
    """Each agency's detections, agency by agency in ``AGENCIES`` order (later ones depend)."""
    seen: Detected = {a.source_id: set() for a in AGENCIES}
    out: dict[str, list[Detection]] = {}
    for agency in AGENCIES:
        found: list[Detection] = []
        for event in population.events:
            if rng.random() >= agency.event_probability(event, seen):
                continue
            victims = tuple(
                v for v in event.victims if rng.random() < agency.victim_probability(v, event, seen)
            )
            if agency.source_id == "nrm":  # one referral per person: one case per victim
                found.extend(Detection(event, (v,)) for v in victims)
            elif victims:
                found.append(Detection(event, victims))
        mine = seen[agency.source_id]
        for d in found:
            for v in d.victims:
                mine.add(v.person.person_id)
                mine.add(f"{d.event.event_id}/{v.person.person_id}")
        out[agency.source_id] = found
    return out
