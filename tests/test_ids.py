"""protocol/ids.py: one text per id, strictly parsed."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ids
from protocol.errors import RejectCode, ValidationError
from protocol.ids import IdKind, format_id, parse_id

RAW = bytes(range(32))
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def bad_id(kind: IdKind, text: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_id(kind, text)  # type: ignore[arg-type]
    assert info.value.code is RejectCode.BAD_ID


@settings(max_examples=300, deadline=None, database=None)
@given(st.sampled_from(list(IdKind)), st.binary(min_size=32, max_size=32))
def test_round_trip(kind: IdKind, raw: bytes) -> None:
    text = format_id(kind, raw)
    assert text.startswith(kind.value + "_")
    body = text[len(kind.value) + 1 :]
    assert len(body) == 52 and set(body) <= set(ALPHABET)
    assert parse_id(kind, text) == raw


@pytest.mark.parametrize("kind", list(IdKind))
def test_known_text(kind: IdKind) -> None:
    expected_body = base64.b32encode(RAW).decode().rstrip("=").lower()
    assert format_id(kind, RAW) == f"{kind.value}_{expected_body}"
    assert format_id(kind, bytes(32)) == f"{kind.value}_" + "a" * 52
    assert parse_id(kind, f"{kind.value}_" + "a" * 52) == bytes(32)


def test_prefixes_are_distinct_and_stable() -> None:
    assert {k.value for k in IdKind} == {"mem", "node", "coop", "act", "eqv"}
    assert ids.member_id(RAW).startswith("mem_")
    assert ids.node_id(RAW).startswith("node_")
    assert ids.coop_id(RAW).startswith("coop_")
    assert ids.action_id(RAW).startswith("act_")
    assert ids.proof_id(RAW).startswith("eqv_")
    # A co-op id and its genesis action id name the same bytes.
    assert parse_id(IdKind.COOP, ids.coop_id(RAW)) == parse_id(IdKind.ACTION, ids.action_id(RAW))


@pytest.mark.parametrize("kind", list(IdKind))
def test_wrong_prefix(kind: IdKind) -> None:
    for other in IdKind:
        if other is not kind:
            bad_id(kind, format_id(other, RAW))
    body = format_id(kind, RAW)[len(kind.value) + 1 :]
    bad_id(kind, body)  # no prefix at all
    bad_id(kind, f"{kind.value}-{body}")
    bad_id(kind, f"{kind.value.upper()}_{body}")
    bad_id(kind, f"x{kind.value}_{body}")
    bad_id(kind, f"{kind.value}__{body}")


def test_mem_vs_member_prefix() -> None:
    body = format_id(IdKind.MEMBER, RAW)[4:]
    bad_id(IdKind.MEMBER, f"member_{body}")
    bad_id(IdKind.NODE, f"nod_{body}")


def test_upper_case_rejected() -> None:
    text = format_id(IdKind.ACTION, RAW)
    bad_id(IdKind.ACTION, "act_" + text[4:].upper())
    # A single upper-case letter is enough.
    i = next(i for i, c in enumerate(text) if i >= 4 and c.isalpha())
    bad_id(IdKind.ACTION, text[:i] + text[i].upper() + text[i + 1 :])


def test_padding_rejected() -> None:
    text = format_id(IdKind.NODE, RAW)
    for pad in ("=", "====", "========"):
        bad_id(IdKind.NODE, text + pad)
    bad_id(IdKind.NODE, text[:-1] + "=")


@pytest.mark.parametrize("n", [0, 1, 51, 53, 56, 64])
def test_wrong_length_rejected(n: int) -> None:
    bad_id(IdKind.MEMBER, "mem_" + ("a" * 64)[:n])


def test_trailing_bits_must_be_zero() -> None:
    """52 characters carry 260 bits: the last one holds one data bit and four zero bits."""
    text = format_id(IdKind.COOP, RAW)
    last = ALPHABET.index(text[-1])
    assert last & 0b01111 == 0
    accepted = []
    for c in ALPHABET:
        candidate = text[:-1] + c
        try:
            raw = parse_id(IdKind.COOP, candidate)
        except ValidationError as e:
            assert e.code is RejectCode.BAD_ID
            assert ALPHABET.index(c) & 0b01111 != 0
            continue
        accepted.append(c)
        assert raw[:31] == RAW[:31] and raw[31] & 1 == ALPHABET.index(c) >> 4
    assert accepted == ["a", "q"]  # values 0 and 16: the one data bit, zero padding bits


@pytest.mark.parametrize("bad", ["0", "1", "8", "9", "-", " ", "\u00e9", "\u0430", "\n"])
def test_characters_outside_the_alphabet_rejected(bad: str) -> None:
    text = format_id(IdKind.PROOF, RAW)
    bad_id(IdKind.PROOF, text[:10] + bad + text[11:])


@pytest.mark.parametrize("value", [None, 5, RAW, bytearray(b"act_"), ["act_"]])
def test_non_str_rejected(value: object) -> None:
    bad_id(IdKind.ACTION, value)


def test_whitespace_rejected() -> None:
    text = format_id(IdKind.ACTION, RAW)
    bad_id(IdKind.ACTION, text + "\n")
    bad_id(IdKind.ACTION, " " + text)


def test_format_refuses_wrong_length() -> None:
    for n in (0, 31, 33):
        with pytest.raises(ValueError):
            format_id(IdKind.ACTION, bytes(n))


@settings(max_examples=500, deadline=None, database=None)
@given(st.sampled_from(list(IdKind)), st.text(max_size=70))
def test_parse_accepts_only_canonical_text(kind: IdKind, text: str) -> None:
    try:
        raw = parse_id(kind, text)
    except ValidationError as e:
        assert e.code is RejectCode.BAD_ID
        return
    assert format_id(kind, raw) == text


@settings(max_examples=500, deadline=None, database=None)
@given(st.sampled_from(list(IdKind)), st.text(alphabet=ALPHABET + ALPHABET.upper() + "=018", min_size=52, max_size=52))
def test_parse_near_misses(kind: IdKind, body: str) -> None:
    text = f"{kind.value}_{body}"
    try:
        raw = parse_id(kind, text)
    except ValidationError as e:
        assert e.code is RejectCode.BAD_ID
        return
    assert format_id(kind, raw) == text
