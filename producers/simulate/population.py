"""The hidden truth: trafficked persons and the TIP events they were exploited in.

Nothing here is read by the trust; agencies see a noisy, partial view of it (``agencies``,
``noise``), and ``truth.csv`` lets tests and the demo score linkage and estimation against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

HOME = "GB"  # the country whose agencies report; most exploitation happens here
FIRST_YEAR, LAST_YEAR = 2019, 2025
LAST_DATE = date(LAST_YEAR, 12, 31)

# citizenship → (weight among foreign victims, name group)
CITIZENSHIPS: dict[str, tuple[float, str]] = {
    "AL": (14, "sq"),
    "VN": (14, "vi"),
    "RO": (12, "ro"),
    "NG": (8, "ng"),
    "ER": (6, "ti"),
    "SD": (6, "ar"),
    "UA": (6, "uk"),
    "PL": (6, "pl"),
    "IN": (5, "hi"),
    "CN": (5, "zh"),
    "PH": (4, "tl"),
    "AF": (4, "ps"),
    "BG": (4, "bg"),
    "EG": (3, "ar"),
    "SY": (3, "ar"),
}
NAME_GROUP = {HOME: "en"} | {c: g for c, (_, g) in CITIZENSHIPS.items()}

# name group → (female given names, male given names, surnames); Latin script, with the
# diacritics each language's own romanisation uses
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("Emma", "Chloe", "Jade", "Megan", "Sophie", "Lauren", "Amy", "Kayleigh"),
        ("James", "Daniel", "Liam", "Kyle", "Connor", "Jordan", "Ryan", "Callum"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Davies", "Evans", "Wilson", "Walker"),
    ),
    "sq": (
        ("Elona", "Anisa", "Ermira", "Xhesika", "Besjana", "Klea", "Arbëra"),
        ("Ardit", "Besnik", "Erion", "Klodian", "Gëzim", "Arben", "Ervis", "Mergim"),
        ("Hoxha", "Krasniqi", "Shehu", "Gashi", "Leka", "Çela", "Berisha", "Dervishi"),
    ),
    "vi": (
        ("Lan", "Hoa", "Thảo", "Linh", "Ngọc", "Trang", "Hương"),
        ("Minh", "Tuấn", "Dũng", "Hùng", "Đức", "Nam", "Quang", "Long"),
        ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"),
    ),
    "ro": (
        ("Ioana", "Elena", "Alexandra", "Mădălina", "Andreea", "Florentina", "Cristina"),
        ("Andrei", "Ionuț", "Mihai", "Florin", "Ștefan", "Marius", "Gheorghe", "Costel"),
        ("Popescu", "Ionescu", "Stan", "Dumitru", "Constantin", "Munteanu", "Lăcătuș", "Rusu"),
    ),
    "ng": (
        ("Ngozi", "Blessing", "Chioma", "Funmilayo", "Adaeze", "Precious", "Joy", "Osas"),
        ("Chinedu", "Emeka", "Oluwaseun", "Tunde", "Ikechukwu", "Segun", "Osaretin"),
        ("Okafor", "Adeyemi", "Okonkwo", "Eze", "Balogun", "Olaniyan", "Osagie", "Igbinedion"),
    ),
    "ti": (
        ("Semhar", "Selam", "Helen", "Freweini", "Yordanos", "Senait", "Luwam"),
        ("Tesfay", "Mehari", "Yonas", "Filmon", "Dawit", "Habtom", "Mussie"),
        ("Tesfamariam", "Ghebremedhin", "Haile", "Berhane", "Kidane", "Tekle", "Woldu"),
    ),
    "ar": (
        ("Fatima", "Aisha", "Mariam", "Amina", "Huda", "Rania", "Nour", "Samira"),
        ("Mohammed", "Ahmed", "Yusuf", "Omar", "Khalid", "Abdullah", "Hussein", "Mustafa"),
        ("Al-Hassan", "Abdelrahman", "Osman", "Ibrahim", "Mahmoud", "Suleiman", "Hamid"),
    ),
    "uk": (
        ("Olena", "Tetiana", "Yulia", "Oksana", "Iryna", "Nataliia", "Kateryna"),
        ("Oleksandr", "Serhii", "Dmytro", "Andrii", "Mykola", "Volodymyr", "Yurii"),
        ("Shevchenko", "Kovalenko", "Bondarenko", "Tkachenko", "Kravchenko", "Melnyk", "Boiko"),
    ),
    "pl": (
        ("Agnieszka", "Małgorzata", "Katarzyna", "Joanna", "Magdalena", "Ewa"),
        ("Łukasz", "Paweł", "Krzysztof", "Tomasz", "Marcin", "Piotr", "Grzegorz"),
        ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński"),
    ),
    "hi": (
        ("Priya", "Anjali", "Sunita", "Pooja", "Kavita", "Lakshmi"),
        ("Rahul", "Amit", "Suresh", "Rajesh", "Harpreet", "Gurpreet", "Vikram"),
        ("Singh", "Sharma", "Patel", "Kumar", "Gupta", "Kaur", "Reddy"),
    ),
    "zh": (
        ("Li Na", "Mei", "Xiu Ying", "Fang", "Jing", "Yan"),
        ("Wei", "Jun", "Hao", "Lei", "Jian", "Qiang", "Bo"),
        ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang"),
    ),
    "tl": (
        ("Maria", "Jocelyn", "Rowena", "Analyn", "Marites", "Lorna"),
        ("Jose", "Mark", "Rodel", "Jomar", "Rommel", "Arnel"),
        ("Santos", "Reyes", "Cruz", "Bautista", "Garcia", "Mendoza", "Dela Cruz"),
    ),
    "ps": (
        ("Zarghuna", "Nazia", "Malalai", "Fereshta", "Shabana"),
        ("Ahmad", "Mohammad", "Wali", "Gul", "Rahmatullah", "Naqibullah", "Ismail"),
        ("Ahmadzai", "Popal", "Rahimi", "Hotak", "Noorzai", "Safi", "Karimi"),
    ),
    "bg": (
        ("Maria", "Elena", "Desislava", "Gergana", "Tsvetelina", "Ralitsa"),
        ("Georgi", "Ivan", "Dimitar", "Stoyan", "Hristo", "Nikolay"),
        ("Ivanov", "Petrov", "Georgiev", "Dimitrov", "Stoyanov", "Kolev", "Yordanov"),
    ),
}
CALLING_CODES = {
    "GB": "44", "AL": "355", "VN": "84", "RO": "40", "NG": "234", "ER": "291", "SD": "249",
    "UA": "380", "PL": "48", "IN": "91", "CN": "86", "PH": "63", "AF": "93", "BG": "359",
    "EG": "20", "SY": "963",
}  # fmt: skip

FORMS: dict[str, float] = {
    "SexualExploitation": 38,
    "ForcedLabour": 36,
    "ForcedCriminality": 13,
    "Servitude": 6,
    "ForcedBegging": 3,
    "ForcedMarriage": 2,
    "Other": 2,
}
# primary form → (P(female), P(child), P(citizen of HOME))
FORM_PROFILE: dict[str, tuple[float, float, float]] = {
    "SexualExploitation": (0.9, 0.25, 0.3),
    "ForcedLabour": (0.25, 0.06, 0.15),
    "ForcedCriminality": (0.2, 0.45, 0.6),
    "Servitude": (0.7, 0.15, 0.1),
    "ForcedBegging": (0.5, 0.4, 0.1),
    "ForcedMarriage": (0.95, 0.35, 0.4),
    "Other": (0.5, 0.2, 0.3),
}
INDUSTRIES: dict[str, tuple[str, ...]] = {
    "ForcedLabour": (
        "A_AgricultureForestryAndFishing",
        "C_Manufacturing",
        "F_Construction",
        "G_WholesaleAndRetailTradeRepairOfMotorVehicles",
        "I_AccommodationAndFoodServiceActivities",
        "S_OtherServiceActivities",
        "H_TransportationAndStorage",
    ),
    "Servitude": ("T_ActivitiesOfHouseholdsAsEmployers",),
    "ForcedCriminality": ("A_AgricultureForestryAndFishing", "Unknown"),
}
CONTROLS = (
    "DebtBondage",
    "FalsePromises",
    "PhysicalThreats",
    "TakesEarnings",
    "WithholdsDocuments",
    "PsychologicalAbuse",
    "ExcessiveWorkingHours",
    "ThreatensChildrenFamily",
)
RECRUITMENT = (
    "ThroughFriendsOrSocialEvents",
    "ThroughFamilyOrFamilyEvents",
    "ThroughOnlineSocialNetworks",
    "ThroughAnOnlineAdvertisement",
    "AtWork",
)
ROLES = ("RecruiterOrIntermediary", "Exploiter", "Transporter", "ControlledIndividual", "Abuser")
PERP_AGE_GROUPS = ("Age18To24", "Age25To34", "Age35To44", "Age45Plus")
REPEAT_VICTIMISATION = 0.03


@dataclass(frozen=True, slots=True)
class Person:
    """A trafficked person as they really are."""

    person_id: str
    sex: str  # Feminine / Masculine / NonConforming
    citizenship: str
    name_group: str
    given_name: str
    surname: str
    birth_date: date
    document: str | None  # passport number, issued by the citizenship country
    phone: str | None  # digits after the country calling code


@dataclass(frozen=True, slots=True)
class Perpetrator:
    perpetrator_id: str
    sex: str
    age_group: str
    citizenship: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Victim:
    """A person in one event, with their age when identified in it."""

    person: Person
    age: int


@dataclass(frozen=True, slots=True)
class Event:
    """A TIP event: who, what form(s), where and when."""

    event_id: str
    year: int
    forms: tuple[str, ...]
    industry: str
    country: str
    cross_border: str
    countries_of_recruitment: tuple[str, ...]
    methods_of_control: tuple[str, ...]
    method_of_recruitment: str
    start: date
    end: date
    identified: date
    victims: tuple[Victim, ...]
    perpetrators: tuple[Perpetrator, ...]


@dataclass(frozen=True, slots=True)
class Population:
    persons: tuple[Person, ...]
    events: tuple[Event, ...]


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def generate(rng: random.Random, persons: int) -> Population:
    """Draw ``persons`` distinct persons grouped into events of 1-5 victims (a few repeat)."""
    foreign = {c: w for c, (w, _) in CITIZENSHIPS.items()}
    people: list[Person] = []
    events: list[Event] = []
    perp_count = 0
    while len(people) < persons:
        forms = [_pick(rng, FORMS)]
        if rng.random() < 0.12:
            extra = "ForcedCriminality" if forms[0] != "ForcedCriminality" else "ForcedLabour"
            forms.append(extra)
        female_p, child_p, home_p = FORM_PROFILE[forms[0]]
        year = rng.choices(range(FIRST_YEAR, LAST_YEAR + 1), weights=(8, 7, 9, 11, 13, 14, 15))[0]
        start = date(year, rng.randint(1, 12), rng.randint(1, 28))
        end = min(start + timedelta(days=rng.randint(14, 420)), LAST_DATE)
        identified = min(end + timedelta(days=rng.randint(0, 30)), LAST_DATE)
        size = rng.choices((1, 2, 3, 4, 5), weights=(55, 20, 12, 8, 5))[0]
        size = min(size, persons - len(people)) or 1
        group_country = HOME if rng.random() < home_p else _pick(rng, foreign)
        victims: list[Victim] = []
        for _ in range(size):
            if people and rng.random() < REPEAT_VICTIMISATION:
                person = rng.choice(people)
                if any(v.person is person for v in victims) or person.birth_date >= start:
                    continue
            else:
                citizenship = group_country if rng.random() < 0.8 else _pick(rng, foreign)
                child = rng.random() < child_p
                age = rng.randint(11, 17) if child else int(rng.triangular(18, 58, 23))
                person = _person(rng, len(people), citizenship, female_p, age, identified)
                people.append(person)
            victims.append(Victim(person, _age_on(person.birth_date, identified)))
        if not victims:
            continue
        citizenships = sorted({v.person.citizenship for v in victims})
        perps: list[Perpetrator] = []
        for _ in range(rng.choices((1, 2, 3), weights=(60, 30, 10))[0]):
            perp_count += 1
            perps.append(
                Perpetrator(
                    f"Q{perp_count:06d}",
                    "Masculine" if rng.random() < 0.75 else "Feminine",
                    rng.choices(PERP_AGE_GROUPS, weights=(20, 40, 25, 15))[0],
                    citizenships[0] if rng.random() < 0.6 else HOME,
                    tuple(sorted(rng.sample(ROLES, rng.randint(1, 2)))),
                )
            )
        country = HOME if rng.random() < 0.92 else rng.choice(("FR", "BE", "NL", "IE"))
        industry_choices = INDUSTRIES.get(forms[0], ("Unknown",))
        events.append(
            Event(
                event_id=f"E{len(events) + 1:06d}",
                year=year,
                forms=tuple(forms),
                industry=rng.choice(industry_choices),
                country=country,
                cross_border="Domestic" if citizenships == [country] else "CrossBorder",
                countries_of_recruitment=tuple(citizenships),
                methods_of_control=tuple(sorted(rng.sample(CONTROLS, rng.randint(1, 3)))),
                method_of_recruitment=rng.choice(RECRUITMENT),
                start=start,
                end=end,
                identified=identified,
                victims=tuple(victims),
                perpetrators=tuple(perps),
            )
        )
    return Population(tuple(people), tuple(events))


def _person(
    rng: random.Random, index: int, citizenship: str, female_p: float, age: int, on: date
) -> Person:
    u = rng.random()
    sex = "Feminine" if u < female_p else "NonConforming" if u > 0.985 else "Masculine"
    group = NAME_GROUP[citizenship]
    female, male, surnames = NAMES[group]
    given = rng.choice(
        female if sex == "Feminine" else male if sex == "Masculine" else female + male
    )
    birth = on - timedelta(days=age * 365 + rng.randint(0, 364))
    document = None
    if rng.random() < 0.6:
        document = f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(1000000, 9999999)}"
    phone = f"7{rng.randint(100000000, 999999999)}" if rng.random() < 0.45 else None
    return Person(
        person_id=f"P{index + 1:06d}",
        sex=sex,
        citizenship=citizenship,
        name_group=group,
        given_name=given,
        surname=rng.choice(surnames),
        birth_date=birth,
        document=document,
        phone=phone,
    )
