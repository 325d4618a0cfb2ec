"""CLK encodings: deterministic under a key, unrelated under different keys, Dice 1 for equal
values, bit counts within their bounds, hardening options of the documented shape."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.clk import (
    CLK_FIELDS,
    ClkEncoder,
    ClkEncoding,
    ClkParameters,
    ClkValueError,
    birth_digits,
    dice,
    popcount,
    tokens,
)

KEY = b"k" * 32
names = st.text(alphabet=st.characters(categories=("L", "Zs", "Pd")), min_size=1, max_size=30)
keys = st.binary(min_size=16, max_size=64)
ENCODER = ClkEncoder(KEY)


@settings(max_examples=60, deadline=None)
@given(names, keys)
def test_deterministic_given_key_and_value(name: str, key: bytes) -> None:
    a = ClkEncoder(key).encode_field("given_name", name)
    assert a == ClkEncoder(key).encode_field("given_name", name)


@settings(max_examples=60, deadline=None)
@given(names)
def test_dice_of_identical_values_is_one_and_bits_within_bounds(name: str) -> None:
    encoding = ENCODER.encode_field("surname", name)
    n = len(tokens("surname", name))
    if n == 0:
        assert encoding == b""
        return
    assert len(encoding) * 8 == ClkParameters().output_bits
    assert 1 <= popcount(encoding) <= min(ClkParameters().bits, n * ClkParameters().hashes)
    assert dice(encoding, ENCODER.encode_field("surname", name.upper())) == 1.0


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=4, max_size=20), keys, keys)
def test_different_keys_give_unrelated_filters(name: str, k1: bytes, k2: bytes) -> None:
    if k1 == k2:
        return
    a = ClkEncoder(k1).encode_field("given_name", name)
    b = ClkEncoder(k2).encode_field("given_name", name)
    # ~20 bits per bigram of 1024: unrelated filters overlap about as much as their density
    assert dice(a, b) < 0.6


def test_fields_use_their_own_keys() -> None:
    a = ENCODER.encode_field("given_name", "Maria")
    b = ENCODER.encode_field("surname", "Maria")
    assert dice(a, b) < 0.6


def test_similar_names_are_similar_and_different_ones_are_not() -> None:
    e = ENCODER.encode_field
    assert dice(e("surname", "Kovalenko"), e("surname", "Kowalenko")) > 0.7
    assert dice(e("surname", "Kovalenko"), e("surname", "Smith")) < 0.3
    assert e("given_name", "Li Na") == e("given_name", "Na Li")
    assert e("surname", "Nguyễn") == e("surname", "NGUYEN")


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("1990-03-08", "19900308"),
        ("1990", "1990????"),
        ("1990-00-12", "1990??12"),
        ("08/03/1990", "19900308"),
        ("19900308", "19900308"),
        ("", ""),
        ("0000-01-01", ""),
    ],
)
def test_birth_digits(text: str, digits: str) -> None:
    assert birth_digits(text) == digits


def test_unreadable_date_is_refused_without_the_value() -> None:
    with pytest.raises(ClkValueError) as caught:
        ENCODER.encode_field("date_of_birth", "March 8th")
    assert "March" not in str(caught.value)


def test_day_month_swap_has_identical_unordered_encoding() -> None:
    a = ENCODER.encode(date_of_birth="1987-10-04").fields
    b = ENCODER.encode(date_of_birth="1987-04-10").fields
    assert a["date_of_birth"] != b["date_of_birth"]
    assert a["birth_day_month_unordered"] == b["birth_day_month_unordered"]


@settings(max_examples=30, deadline=None)
@given(names)
def test_balanced_filters_have_exactly_half_their_bits_set(name: str) -> None:
    p = ClkParameters(bits=256, balanced=True)
    encoding = ClkEncoder(KEY, p).encode_field("given_name", name)
    if encoding:
        assert len(encoding) * 8 == p.output_bits == 512
        assert popcount(encoding) == 256


def test_xor_fold_halves_the_length() -> None:
    p = ClkParameters(xor_fold=True)
    assert len(ClkEncoder(KEY, p).encode_field("surname", "Hotak")) * 8 == 512
    assert p.id == "clk1-b1024-k20-xor"


def test_encoding_round_trips_through_base64() -> None:
    encoding = ENCODER.encode(given_name="Amina", surname="Hotak", date_of_birth="2004-10-12")
    assert set(encoding.fields) == set(CLK_FIELDS)
    text = encoding.to_base64()
    assert ClkEncoding.from_base64(encoding.parameters, text) == encoding
    with pytest.raises(ClkValueError):
        ClkEncoding.from_base64(encoding.parameters, {"surname": "not base64!"})


def test_bad_parameters_and_keys_are_refused() -> None:
    with pytest.raises(ClkValueError):
        ClkParameters(bits=1000)
    with pytest.raises(ClkValueError):
        ClkParameters(hashes=0)
    with pytest.raises(ClkValueError):
        ClkEncoder(b"short")
    assert "k" * 16 not in repr(ENCODER)
