"""How agencies get a person's details wrong: typos, transliteration, swapped dates, guesses.

Every function takes the agency's ``random.Random`` and returns a value the agency's own mapping
still accepts (noise makes linkage harder; it never makes a row invalid — ``faults`` does that).
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date

# one spelling → the other romanisations seen in records of the same person
VARIANTS: dict[str, tuple[str, ...]] = {
    "Mohammed": ("Muhammad", "Mohamed", "Mohammad", "Muhammed"),
    "Mohammad": ("Mohammed", "Muhammad", "Mohamad"),
    "Ahmed": ("Ahmad", "Ahmet"),
    "Ahmad": ("Ahmed", "Ahmet"),
    "Yusuf": ("Youssef", "Yousef", "Yosef"),
    "Omar": ("Umar", "Omer"),
    "Khalid": ("Khaled",),
    "Abdullah": ("Abdallah", "Abdulla"),
    "Hussein": ("Husain", "Hussain", "Hosein"),
    "Mustafa": ("Mostafa", "Moustafa"),
    "Fatima": ("Fatimah", "Fatma"),
    "Aisha": ("Aysha", "Aicha", "Ayesha"),
    "Mariam": ("Maryam", "Miriam"),
    "Amina": ("Aminah",),
    "Nour": ("Noor", "Nur"),
    "Al-Hassan": ("Alhassan", "El-Hassan", "Al Hassan"),
    "Abdelrahman": ("Abdul Rahman", "Abdulrahman", "Abderrahmane"),
    "Suleiman": ("Sulaiman", "Suleyman", "Sulayman"),
    "Mahmoud": ("Mahmud", "Mahmood"),
    "Osman": ("Othman", "Usman"),
    "Oleksandr": ("Aleksandr", "Alexander", "Olexandr"),
    "Olena": ("Elena", "Alena"),
    "Tetiana": ("Tatiana", "Tatyana", "Tetyana"),
    "Serhii": ("Sergey", "Serhiy", "Sergii"),
    "Yulia": ("Yuliya", "Julia", "Iuliia"),
    "Dmytro": ("Dmitry", "Dmitri"),
    "Mykola": ("Nikolai", "Mikola"),
    "Andrii": ("Andriy", "Andrei"),
    "Yurii": ("Yuriy", "Yuri"),
    "Nataliia": ("Natalia", "Natalya"),
    "Kateryna": ("Katerina", "Ekaterina"),
    "Iryna": ("Irina",),
    "Kovalenko": ("Kowalenko",),
    "Boiko": ("Boyko",),
    "Tesfay": ("Tesfaye", "Tesfai"),
    "Mehari": ("Mehary",),
    "Ghebremedhin": ("Gebremedhin", "Ghebremedin"),
    "Tesfamariam": ("Tesfamaryam", "Tesfa Mariam"),
    "Woldu": ("Weldu",),
    "Xhesika": ("Jessica", "Xhessika"),
    "Nikolay": ("Nikolai",),
    "Hristo": ("Christo", "Khristo"),
    "Tsvetelina": ("Cvetelina",),
    "Li Na": ("Lina", "Li-Na"),
    "Xiu Ying": ("Xiuying", "Hsiu-ying"),
    "Dela Cruz": ("Delacruz", "De la Cruz"),
    "Rahmatullah": ("Rahmatulla",),
    "Naqibullah": ("Naqibulla", "Nakibullah"),
}
_NOT_DECOMPOSED = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "\u0131": "i", "ß": "ss"})
_KEYBOARD_NEIGHBOURS = {
    "a": "sq", "e": "wr", "i": "uo", "o": "ip", "n": "bm", "m": "n", "r": "et", "s": "ad",
    "t": "ry", "u": "yi", "l": "k", "h": "gj", "d": "sf", "k": "jl", "y": "tu",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NoiseLevel:
    """Per-agency rates: the less formal the agency, the higher."""

    typo: float
    transliteration: float
    day_month_swap: float
    missing_birth_date: float
    age_off_by_one: float
    missing_surname: float = 0.0


def ascii_fold(text: str) -> str:
    """Drop diacritics as systems without Unicode do: Nguyễn → Nguyen, Łukasz → Lukasz."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_NOT_DECOMPOSED))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def typo(rng: random.Random, text: str) -> str:
    """One keying error: swapped, dropped, doubled or neighbouring letter."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    neighbours = _KEYBOARD_NEIGHBOURS.get(text[i].lower())
    if not neighbours:
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice(neighbours) + text[i + 1 :]


def name(rng: random.Random, text: str, level: NoiseLevel) -> str:
    """A name as one agency writes it."""
    if level.transliteration and text in VARIANTS and rng.random() < level.transliteration:
        text = rng.choice(VARIANTS[text])
    if level.typo and rng.random() < level.typo:
        text = typo(rng, text)
    return text


def birth_date(rng: random.Random, true: date, level: NoiseLevel) -> date | None:
    """A date of birth as recorded: sometimes missing, sometimes day and month swapped."""
    if rng.random() < level.missing_birth_date:
        return None
    if true.day <= 12 and true.day != true.month and rng.random() < level.day_month_swap:
        return date(true.year, true.day, true.month)
    return true


def age(rng: random.Random, true: int, level: NoiseLevel) -> int:
    """An age as recorded: sometimes a year off (estimated, or counted at a different date)."""
    if rng.random() < level.age_off_by_one:
        return max(0, true + rng.choice((-1, 1)))
    return true
