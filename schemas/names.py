"""Names folded to plain Latin letters: the one normalisation both sides of linkage share.

The trust's linker compares names folded this way, and a producer that sends keyed Bloom-filter
encodings (CLKs, :mod:`schemas.clk`) must fold them exactly the same way before encoding, so the
rule is part of the wire contract and lives here, where both can import it.
"""

# ruff: noqa: RUF001 - the transliteration tables map look-alike letters of other scripts on purpose

from __future__ import annotations

import re
import unicodedata

# Letters that Unicode decomposition does not reduce to a base letter.
_NOT_DECOMPOSED = {
    "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ø": "o", "œ": "oe", "æ": "ae",
    "ß": "ss", "þ": "th", "ŀ": "l", "ŧ": "t",
}  # fmt: skip

# Cyrillic (Russian, Ukrainian, Bulgarian, Serbian letters) to Latin, a plain passport-style table.
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "ґ": "g", "д": "d", "е": "e", "ё": "e", "є": "ye",
    "ж": "zh", "з": "z", "и": "i", "і": "i", "ї": "yi", "й": "y", "к": "k", "л": "l", "м": "m",
    "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh",
    "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e",
    "ю": "yu", "я": "ya", "ђ": "dj", "ј": "j", "љ": "lj", "њ": "nj", "ћ": "c", "џ": "dz",
    "ў": "u",
}  # fmt: skip

# Arabic script to Latin consonants. Short vowels are not written in Arabic, so the result is
# close to the consonant skeleton of the romanised spellings (محمد -> mhmd, like Muhammad); waw
# and ya are read as the long vowels they mostly are in names (يوسف -> iusf, like Yusuf).
_ARABIC = {
    "ا": "a", "أ": "a", "إ": "i", "آ": "a", "ب": "b", "ت": "t", "ث": "th", "ج": "j", "ح": "h",
    "خ": "kh", "د": "d", "ذ": "dh", "ر": "r", "ز": "z", "س": "s", "ش": "sh", "ص": "s", "ض": "d",
    "ط": "t", "ظ": "z", "ع": "", "غ": "gh", "ف": "f", "ق": "q", "ك": "k", "ل": "l", "م": "m",
    "ن": "n", "ه": "h", "و": "u", "ي": "i", "ى": "a", "ة": "a", "ء": "", "ؤ": "", "ئ": "",
    "پ": "p", "چ": "ch", "ژ": "zh", "گ": "g", "ک": "k", "ی": "y",
}  # fmt: skip

# Greek to Latin (ELOT-like), for the few Greek-script records.
_GREEK = {
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i",
    "κ": "k", "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s",
    "ς": "s", "τ": "t", "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o",
}  # fmt: skip

_SCRIPT = str.maketrans({**_NOT_DECOMPOSED, **_CYRILLIC, **_ARABIC, **_GREEK})
_NON_LETTER = re.compile(r"[^a-z]+")


def fold_name(text: str | None) -> str:
    """Lower-case Latin letters and single spaces: scripts transliterated, diacritics dropped,
    punctuation (hyphens, apostrophes, dots) read as a space. Case is folded, not lowered, so a
    name and its upper-case spelling fold alike in every script (``ß`` is ``ss``, like ``SS``;
    the Cyrillic rounded ve U+1C80 folds to ve, like the capital ve)."""
    lowered = unicodedata.normalize("NFKC", text or "").casefold().translate(_SCRIPT)
    decomposed = unicodedata.normalize("NFKD", lowered)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_LETTER.sub(" ", plain).strip()
