"""Cryptographic long-term keys (CLKs): keyed Bloom-filter encodings of a person's identifiers.

A source whose agreement asks for privacy-preserving linkage sends, instead of a victim's given
name, surname and date of birth, one bit array per field (Schnell, Bachteler & Reiher 2009, 2011):
the field is normalised exactly as the trust's plain linker normalises it, cut into tokens
(padded bigrams of each name part; the date's parts and digits by position), and each token sets
``k`` bits of the field's array. Two encodings of similar values share most set bits, so the trust
compares them by the Dice coefficient without ever seeing a name.

Bit positions come from HMAC-SHA256 under a **field key**, itself derived from the secret key
shared by the source and the trust (HMAC-SHA256 of the key over the field's label): the ``k``
positions of a token are independent HMAC outputs ("random hashing", Niedermeyer et al. 2014),
not the arithmetic progression of double hashing whose structure published attacks exploit; and a
bigram sets unrelated bits in different fields, so frequencies cannot be pooled across fields.
Optional hardening (:class:`ClkParameters`): ``balanced`` filters (the array followed by its
complement, shuffled by a keyed permutation: every encoding has exactly half its bits set, so the
Hamming weight says nothing about the length of a name; Schnell 2016), and ``xor_fold`` (the two
halves XOR-ed: no bit maps to one token; Schnell, Borgs & Encarnação 2016).

Nothing here is new cryptography: HMAC-SHA256 from :mod:`hmac`/:mod:`hashlib` only. Encodings
are deterministic given the key, the parameters and the value, and are sent as bytes (base64 in
text formats). This module is part of the wire contract and imports nothing of ours; its
normalisation is a copy of ``trust/linkage/normalise.py``'s (a test keeps the two equal).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.names import fold_name

CLK_FIELDS: tuple[str, ...] = (
    "given_name",
    "surname",
    "date_of_birth",
    "birth_day_month_unordered",
    "document_number",
)
MIN_KEY_BYTES = 16
_LABEL = b"tiptrust/clk/v1/field/"

# --- normalisation: names as the linker folds them; the lenient date reading ---

_UNKNOWN = r"(?:\d{1,2}|\?\?|[xX]{2}|-{1,2}|_{1,2}|[uU]{2})"
_ISO = re.compile(rf"(\d{{4}})(?:[-/.]({_UNKNOWN})(?:[-/.]({_UNKNOWN}))?)?(?:[T ].*)?")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})?")
_DAY_FIRST = re.compile(rf"({_UNKNOWN})[./-]({_UNKNOWN})[./-](\d{{4}})")


class ClkValueError(ValueError):
    """A value the encoder cannot read (the message never holds the value)."""

    code = "clk_value"


def _part(text: str | None) -> str:
    if text is None or not text.isdigit() or int(text) == 0:
        return "??"
    return f"{int(text):02d}"


def birth_digits(text: str | None) -> str:
    """A date of birth as ``YYYYMMDD`` with ``??`` for a missing part, ``""`` when empty — the
    plain linker's reading (ISO with missing parts, ``YYYYMMDD``, ``DD/MM/YYYY``).

    Raises :class:`ClkValueError` when no reading applies."""
    value = (text or "").strip()
    if not value:
        return ""
    if (m := _ISO.fullmatch(value)) or (m := _COMPACT.fullmatch(value)):
        year, month, day = m.group(1), m.group(2), m.group(3)
    elif m := _DAY_FIRST.fullmatch(value):
        day, month, year = m.group(1), m.group(2), m.group(3)
    else:
        raise ClkValueError("not a date (expected YYYY-MM-DD, YYYY-MM, YYYY, YYYYMMDD, DD/MM/YYYY)")
    if int(year) == 0:
        return ""
    return f"{int(year):04d}{_part(month)}{_part(day)}"


# --- tokens ------------------------------------------------------------------------------------


def name_tokens(text: str | None) -> frozenset[str]:
    """The padded bigrams of each part of the folded name (``_a``, ``an``, …, ``a_``): a set, so
    the parts' order does not matter (Li Na = Na Li)."""
    out: set[str] = set()
    for part in fold_name(text).split():
        padded = f"_{part}_"
        out.update(padded[i : i + 2] for i in range(len(padded) - 1))
    return frozenset(out)


def date_tokens(text: str | None) -> frozenset[str]:
    """Year, month and day (each where known), and each known digit with its position: a
    keying error in one digit keeps most tokens, a missing part removes only its own."""
    digits = birth_digits(text)
    if not digits:
        return frozenset()
    out = {f"y{digits[:4]}"}
    if digits[4:6] != "??":
        out.add(f"m{digits[4:6]}")
    if digits[6:8] != "??":
        out.add(f"d{digits[6:8]}")
    out.update(f"{i}:{c}" for i, c in enumerate(digits) if c != "?")
    return frozenset(out)


def normalise_document(text: str | None) -> str:
    """A document number: letters and digits only, upper case (the plain linker's reading)."""
    return re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", text or "").upper())


def document_tokens(text: str | None) -> frozenset[str]:
    """The padded bigrams of the normalised document number (one mistyped character keeps most
    of them)."""
    value = normalise_document(text)
    if not value:
        return frozenset()
    padded = f"_{value}_"
    return frozenset(padded[i : i + 2] for i in range(len(padded) - 1))


def unordered_date_tokens(text: str | None) -> frozenset[str]:
    """For a complete date only: the year, and day and month as an unordered pair — equal for
    a date and the same date with day and month swapped (a common keying error)."""
    digits = birth_digits(text)
    if not digits or "?" in digits:
        return frozenset()
    low, high = sorted((digits[4:6], digits[6:8]))
    return frozenset({f"y{digits[:4]}", f"dm{low}{high}"})


def tokens(field: str, value: str | None) -> frozenset[str]:
    """The tokens of one field's value (empty for an empty value)."""
    if field == "date_of_birth":
        return date_tokens(value)
    if field == "birth_day_month_unordered":
        return unordered_date_tokens(value)
    if field == "document_number":
        return document_tokens(value)
    if field in ("given_name", "surname"):
        return name_tokens(value)
    raise ClkValueError(f"no CLK encoding for field {field!r}")


# --- the encoder -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClkParameters:
    """How encodings are made; source and trust must use the same (see :attr:`id`).

    ``bits``: length of a field's array before hardening (a power of two, so a position is an
    unbiased slice of an HMAC); ``hashes``: bits set per token (``k``); ``balanced`` and
    ``xor_fold``: the hardening options described in the module text.
    """

    bits: int = 1024
    hashes: int = 20
    balanced: bool = False
    xor_fold: bool = False

    def __post_init__(self) -> None:
        if self.bits < 64 or self.bits > 1 << 16 or self.bits & (self.bits - 1):
            raise ClkValueError("bits must be a power of two between 64 and 65536")
        if not 1 <= self.hashes <= 64:
            raise ClkValueError("hashes must be between 1 and 64")

    @property
    def output_bits(self) -> int:
        """The length of an encoding as sent."""
        n = self.bits * (2 if self.balanced else 1)
        return n // 2 if self.xor_fold else n

    @property
    def id(self) -> str:
        """Names the parameters in agreements and records (``clk1-b1024-k20``, ``-bal``,
        ``-xor``): encodings under different parameters are never compared."""
        tags = "".join(t for t, on in (("-bal", self.balanced), ("-xor", self.xor_fold)) if on)
        return f"clk1-b{self.bits}-k{self.hashes}{tags}"


@dataclass(frozen=True, slots=True)
class ClkEncoding:
    """One record's encodings: field -> bytes (``b""`` where the value was empty), with the
    parameters' id."""

    parameters: str
    fields: Mapping[str, bytes]

    def to_base64(self) -> dict[str, str]:
        return {f: base64.b64encode(v).decode("ascii") for f, v in self.fields.items()}

    @classmethod
    def from_base64(cls, parameters: str, fields: Mapping[str, str]) -> ClkEncoding:
        try:
            decoded = {f: base64.b64decode(v, validate=True) for f, v in fields.items()}
        except ValueError:
            raise ClkValueError("an encoding is not base64") from None
        return cls(parameters, decoded)


class ClkEncoder:
    """Encodes field values under a secret key; holds only HMAC states derived from it."""

    __slots__ = ("_fields", "parameters")

    def __init__(self, key: bytes, parameters: ClkParameters | None = None) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ClkValueError(f"a CLK key needs at least {MIN_KEY_BYTES} bytes")
        self.parameters = parameters or ClkParameters()
        self._fields = {
            f: hmac.new(
                hmac.digest(key, _LABEL + f.encode(), hashlib.sha256), digestmod=hashlib.sha256
            )
            for f in CLK_FIELDS
        }

    def __repr__(self) -> str:
        return f"ClkEncoder(<secret>, {self.parameters.id})"

    def _positions(self, field: str, token: str) -> Iterable[int]:
        """``k`` independent positions for ``token``: 16-bit slices of HMAC(field key,
        counter || token), reduced to ``bits`` (a power of two: no modulo bias)."""
        base = self._fields[field]
        needed, counter, mask = self.parameters.hashes, 0, self.parameters.bits - 1
        data = token.encode()
        while needed > 0:
            mac = base.copy()
            mac.update(counter.to_bytes(1, "big") + data)
            block = mac.digest()
            for i in range(0, min(needed, 16) * 2, 2):
                yield int.from_bytes(block[i : i + 2], "big") & mask
            needed -= 16
            counter += 1

    def _permutation(self, field: str, n: int) -> list[int]:
        """A keyed permutation of ``range(n)`` (Fisher-Yates driven by HMAC output)."""
        base = self._fields[field]
        order = list(range(n))
        for i in range(n - 1, 0, -1):
            mac = base.copy()
            mac.update(b"permutation" + i.to_bytes(4, "big"))
            j = int.from_bytes(mac.digest()[:8], "big") % (i + 1)
            order[i], order[j] = order[j], order[i]
        return order

    def encode_tokens(self, field: str, values: Iterable[str]) -> bytes:
        """The field's bit array for a set of tokens (``b""`` when there are none)."""
        if field not in self._fields:
            raise ClkValueError(f"no CLK encoding for field {field!r}")
        toks = sorted(set(values))
        if not toks:
            return b""
        p = self.parameters
        bits = 0
        for token in toks:
            for position in self._positions(field, token):
                bits |= 1 << position
        n = p.bits
        if p.balanced:
            complement = bits ^ ((1 << n) - 1)
            joined = bits | (complement << n)
            shuffled = 0
            for target, source in enumerate(self._permutation(field, 2 * n)):
                if joined >> source & 1:
                    shuffled |= 1 << target
            bits, n = shuffled, 2 * n
        if p.xor_fold:
            half = n // 2
            bits = (bits & ((1 << half) - 1)) ^ (bits >> half)
            n = half
        return bits.to_bytes(n // 8, "little")

    def encode_field(self, field: str, value: str | None) -> bytes:
        """One field's encoding: its value normalised, cut into tokens, hashed into bits."""
        return self.encode_tokens(field, tokens(field, value))

    def encode(
        self,
        *,
        given_name: str = "",
        surname: str = "",
        date_of_birth: str = "",
        document_number: str = "",
    ) -> ClkEncoding:
        """A record's encodings (empty values give ``b""``); the date of birth gives two."""
        values = {
            "given_name": given_name,
            "surname": surname,
            "date_of_birth": date_of_birth,
            "birth_day_month_unordered": date_of_birth,
            "document_number": document_number,
        }
        return ClkEncoding(
            self.parameters.id, {f: self.encode_field(f, v) for f, v in values.items()}
        )


def popcount(encoding: bytes) -> int:
    return int.from_bytes(encoding, "little").bit_count()


def dice(a: bytes, b: bytes) -> float:
    """The Dice coefficient ``2|A∩B| / (|A|+|B|)`` of two encodings (0 when both are empty)."""
    if len(a) != len(b):
        raise ClkValueError("encodings of different lengths")
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    total = x.bit_count() + y.bit_count()
    return 2 * (x & y).bit_count() / total if total else 0.0
