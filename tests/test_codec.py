"""protocol/codec.py: canonical msgpack, one value, exactly one encoding."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.codec import INT_MAX, INT_MIN
from protocol.errors import DecodeError, ProtocolError, RejectCode, ValidationError
from protocol.limits import DEFAULT_DECODE_LIMITS, DecodeLimits

# Roomy limits for round-trip properties: Hypothesis may nest deeper than the default 16.
ROOMY = DecodeLimits(max_bytes=1 << 22, max_depth=64, max_container_len=1 << 16, max_str_bytes=1 << 20, max_bin_bytes=1 << 20)


def cfg(max_examples: int) -> settings:
    """No deadline (CI machines are slow), no example database (nothing written into the repo)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=INT_MIN, max_value=INT_MAX) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=16,
)


def tagged(v: Any, *, decoded: bool) -> Any:
    """A strict structural form: bool != int, list/tuple both arrays, map key order made explicit.

    For an input value maps are put in UTF-8 key order (what encode must produce); for a decoded
    value they are kept in arrival order, so comparing the two also checks the key order.
    """
    if v is None:
        return ("nil",)
    if type(v) is bool:
        return ("bool", v)
    if type(v) is int:
        return ("int", v)
    if type(v) is str:
        return ("str", v)
    if type(v) in (bytes, bytearray):
        return ("bin", bytes(v))
    if isinstance(v, (list, tuple)):
        if decoded:
            assert type(v) is tuple, "decode must return arrays as tuples"
        return ("array", tuple(tagged(x, decoded=decoded) for x in v))
    if isinstance(v, dict):
        if decoded:
            items = list(v.items())
        else:
            items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-8"))
        return ("map", tuple((k, tagged(x, decoded=decoded)) for k, x in items))
    raise AssertionError(f"unexpected type {type(v)}")


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def rejects(data: bytes, code: RejectCode, limits: DecodeLimits = DEFAULT_DECODE_LIMITS) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode(data, limits)
    assert info.value.code is code, f"{data[:40].hex()}: expected {code}, got {info.value.code}: {info.value.message}"
    return info.value


# ---------------------------------------------------------------------------------------------
# Encoding: known bytes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "c0"),
        (False, "c2"),
        (True, "c3"),
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"),
        (INT_MAX, "cf7fffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-(2**31), "d280000000"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (INT_MIN, "d38000000000000000"),
        ("", "a0"),
        ("abc", "a3616263"),
        ("a" * 31, "bf" + "61" * 31),
        ("a" * 32, "d920" + "61" * 32),
        ("a" * 256, "da0100" + "61" * 256),
        ("\u00e9", "a2c3a9"),
        (b"", "c400"),
        (b"\x00\xff", "c40200ff"),
        (b"x" * 256, "c50100" + "78" * 256),
        ([], "90"),
        ((), "90"),
        ([1, [2]], "920191 02"),
        ({}, "80"),
        ({"a": 1}, "81a16101"),
        (bytearray(b"ab"), "c4026162"),
        (memoryview(b"ab"), "c4026162"),
    ],
)
def test_encode_known_bytes(value: Any, expected: str) -> None:
    assert codec.encode(value) == h(expected)
    if not isinstance(value, (bytearray, memoryview)):
        assert tagged(codec.decode(h(expected), ROOMY), decoded=True) == tagged(value, decoded=False)


def test_bool_is_not_int() -> None:
    assert codec.encode(True) != codec.encode(1)
    assert codec.encode(False) != codec.encode(0)
    assert type(codec.decode(b"\xc3")) is bool
    assert type(codec.decode(b"\x01")) is int


def test_encode_sorts_keys_by_utf8_bytes() -> None:
    keys = ["b", "aa", "a", "", "B", "\u00e9", "\uffff", "\U0001f600", "z", "a\x00", "\u0100", "\x7f"]
    value = {k: i for i, k in enumerate(keys)}
    expected_order = ["", "B", "a", "a\x00", "aa", "b", "z", "\x7f", "\u00e9", "\u0100", "\uffff", "\U0001f600"]
    # Built by hand: fixmap header, then fixstr key + positive fixint value for each entry.
    expected = bytes([0x80 | len(keys)])
    for k in expected_order:
        kb = k.encode("utf-8")
        expected += bytes([0xA0 | len(kb)]) + kb + bytes([value[k]])
    assert codec.encode(value) == expected
    # Not length-first (canonical CBOR) order: "b" is shorter than "aa" but sorts after it.
    assert expected.index(b"\xa2aa") < expected.index(b"\xa1b")
    # Not UTF-16 order: U+FFFF (EF BF BF) sorts before U+1F600 (F0 9F 98 80), which UTF-16 reverses.
    assert expected.index("\uffff".encode()) < expected.index("\U0001f600".encode())
    decoded = codec.decode(expected)
    assert list(decoded) == expected_order


def test_other_key_orders_are_rejected() -> None:
    def fixmap(keys: list[str]) -> bytes:
        out = bytes([0x80 | len(keys)])
        for k in keys:
            kb = k.encode("utf-8")
            out += bytes([0xA0 | len(kb)]) + kb + b"\xc0"
        return out

    assert codec.decode(fixmap(["", "aa", "b"])) == {"": None, "aa": None, "b": None}
    rejects(fixmap(["b", "aa"]), RejectCode.NOT_CANONICAL)  # length-first order
    rejects(fixmap(["\U0001f600", "\uffff"]), RejectCode.NOT_CANONICAL)  # UTF-16 order
    rejects(fixmap(["a", ""]), RejectCode.NOT_CANONICAL)  # empty key must come first


def test_nested_maps_are_sorted_too() -> None:
    assert codec.encode([{"b": {"d": 1, "c": 2}, "a": 0}]) == h("91 82 a16100 a162 82 a16302 a16401")


@cfg(200)
@given(st.dictionaries(st.text(max_size=4), st.integers(-5, 5), max_size=10), st.randoms(use_true_random=False))
def test_encode_ignores_insertion_order(d: dict[str, int], rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert codec.encode(dict(items)) == codec.encode(d)


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


@cfg(400)
@given(values)
def test_round_trip(v: Any) -> None:
    data = codec.encode(v)
    decoded = codec.decode(data, ROOMY)
    assert tagged(decoded, decoded=True) == tagged(v, decoded=False)
    # decode(encode(v)) re-encodes to the same bytes, and so does the canonical form.
    assert codec.encode(decoded) == data
    assert codec.encode(codec.canonicalize(v)) == data


@cfg(200)
@given(values, st.data())
def test_every_proper_prefix_is_malformed(v: Any, data: st.DataObject) -> None:
    enc = codec.encode(v)
    cut = data.draw(st.integers(0, len(enc) - 1))
    rejects(enc[:cut], RejectCode.MALFORMED)


def test_all_prefixes_of_a_rich_value_are_malformed() -> None:
    enc = codec.encode({"": [1, -200, 70000, 2**40, INT_MIN], "k": {"n": None, "t": True, "b": b"\x00" * 40}, "s": "\u00e9" * 20})
    for cut in range(len(enc)):
        rejects(enc[:cut], RejectCode.MALFORMED)
    assert codec.encode(codec.decode(enc)) == enc


# ---------------------------------------------------------------------------------------------
# Non-canonical forms: decodable by a lenient decoder, but not the one encoding
# ---------------------------------------------------------------------------------------------

NOT_CANONICAL_CASES = {
    # ints
    "uint8 for 5": "cc05",
    "uint8 for 0": "cc00",
    "int8 for 5": "d005",
    "int8 for -5": "d0fb",
    "int8 for -32": "d0e0",
    "int16 for a value fitting int8": "d1ff80",
    "int16 for positive 128": "d10080",
    "uint16 for a value < 256": "cd00ff",
    "uint32 for a value < 65536": "ce0000ffff",
    "uint64 for 5": "cf0000000000000005",
    "int32 for -129": "d2ffffff7f",
    "int64 for -5": "d3fffffffffffffffb",
    "int64 for -1": "d3ffffffffffffffff",
    "uint64 above int64 max": "cf8000000000000000",
    "uint64 max": "cfffffffffffffffff",
    # lengths
    "str8 for a 3-byte string": "d903616263",
    "str16 for a 3-byte string": "da0003616263",
    "str32 for a 3-byte string": "db00000003616263",
    "str16 for a 40-byte string": "da0028" + "61" * 40,
    "str8 for empty string": "d900",
    "bin16 for short bin": "c50003616263",
    "bin32 for short bin": "c600000003616263",
    "array16 with 2 items": "dc0002c0c0",
    "array32 with 2 items": "dd00000002c0c0",
    "array16 empty": "dc0000",
    "map16 with 1 entry": "de0001a161c0",
    "map32 with 1 entry": "df00000001a161c0",
    "nested non-minimal int": "9201cc05",
    # maps
    "unsorted keys": "82a162c0a161c0",
    "unsorted keys nested": "91 82a162c0a161c0",
    "duplicate keys same value": "82a161c0a161c0",
    "duplicate keys different values": "82a16101a16102",
    "duplicate empty key": "82a001a002",
    "duplicate keys in a nested map": "81a178 82a16101a16101",
    "int key": "8101c0",
    "negative int key": "81ffc0",
    "bin key": "81c40161c0",
    "nil key": "81c0c0",
    "bool key": "81c3c0",
    "array key": "8191c0c0",
    "map key": "8180c0",
    # floats
    "float32": "ca3f800000",
    "float64": "cb3ff0000000000000",
    "float32 zero": "ca00000000",
    "float in array": "91ca00000000",
    "float as map value": "81a161cb0000000000000000",
    # ext types
    "fixext1": "d40100",
    "fixext2": "d5010000",
    "fixext4": "d60100000000",
    "fixext8": "d701" + "00" * 8,
    "fixext16": "d801" + "00" * 16,
    "ext8": "c7010100",
    "ext8 empty": "c70001",
    "ext16": "c8000101" + "00",
    "ext32": "c90000000101" + "00",
    "ext in array": "91d40100",
    "ext as map value": "81a161c70001",
    "timestamp 32": "d6ff00000000",
    "timestamp 64": "d7ff" + "00" * 8,
    "timestamp 96": "c70cff" + "00" * 12,
    # trailing bytes
    "two nils": "c0c0",
    "int then byte": "0000",
    "map then byte": "81a16101ff",
    "array then empty array": "9090",
}


@pytest.mark.parametrize("hexdata", NOT_CANONICAL_CASES.values(), ids=NOT_CANONICAL_CASES.keys())
def test_non_canonical_rejected(hexdata: str) -> None:
    rejects(h(hexdata), RejectCode.NOT_CANONICAL)


def test_non_canonical_cases_are_valid_for_a_lenient_decoder() -> None:
    """Sanity: the hand-built inputs really are msgpack a lenient decoder accepts (not framing errors)."""
    import msgpack

    lenient = (
        "uint8 for 5",
        "str8 for a 3-byte string",
        "array16 with 2 items",
        "unsorted keys",
        "duplicate keys same value",
        "int64 for -5",
    )
    for name in lenient:
        msgpack.unpackb(h(NOT_CANONICAL_CASES[name]), strict_map_key=False)
    assert msgpack.unpackb(h(NOT_CANONICAL_CASES["uint8 for 5"])) == 5
    assert msgpack.unpackb(h(NOT_CANONICAL_CASES["int16 for a value fitting int8"])) == -128


MALFORMED_CASES = {
    "empty": "",
    "never-used 0xc1": "c1",
    "0xc1 in an array": "91c1",
    "0xc1 as a map value": "81a161c1",
    "truncated uint16": "cd01",
    "truncated header only": "cd",
    "truncated str": "a36162",
    "truncated str8 length": "d9",
    "truncated bin": "c40361",
    "truncated array": "92c0",
    "truncated map value": "81a161",
    "truncated map key": "82a161c0",
    "truncated int64": "d3000000",
    "invalid UTF-8 continuation": "a2c328",
    "invalid UTF-8 lone 0xff": "a1ff",
    "overlong UTF-8 NUL": "a2c080",
    "UTF-8 encoded surrogate": "a3eda080",
    "UTF-8 above U+10FFFF": "a4f4908080",
    "truncated UTF-8 sequence": "a2e282",
    "invalid UTF-8 in a map key": "81a1ffc0",
    "invalid UTF-8 in str8": "d920" + "61" * 31 + "ff",
}


@pytest.mark.parametrize("hexdata", MALFORMED_CASES.values(), ids=MALFORMED_CASES.keys())
def test_malformed_rejected(hexdata: str) -> None:
    rejects(h(hexdata), RejectCode.MALFORMED)


def test_non_bytes_input_is_malformed() -> None:
    for bad in ("c0", None, 0, [0xC0]):
        with pytest.raises(DecodeError) as info:
            codec.decode(bad)  # type: ignore[arg-type]
        assert info.value.code is RejectCode.MALFORMED


def test_bytearray_input_is_accepted() -> None:
    assert codec.decode(bytearray(b"\x92\x01\xa1a")) == (1, "a")


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------


def nested_arrays(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"


def nested_maps(depth: int) -> bytes:
    return b"\x81\xa1a" * depth + b"\xc0"


def test_depth_limit_default() -> None:
    assert DEFAULT_DECODE_LIMITS.max_depth == 16
    codec.decode(nested_arrays(16))
    codec.decode(nested_maps(16))
    codec.decode(b"\x92" + nested_arrays(15) + nested_maps(15))
    rejects(nested_arrays(17), RejectCode.TOO_LARGE)
    rejects(nested_maps(17), RejectCode.TOO_LARGE)
    rejects(b"\x92\xc0" + nested_arrays(16), RejectCode.TOO_LARGE)  # the deep branch is not the first one
    rejects(b"\x81\xa1a" + b"\x81\xa1b" * 15 + b"\x91\xc0", RejectCode.TOO_LARGE)  # arrays and maps count alike
    rejects(nested_arrays(5000), RejectCode.TOO_LARGE)  # deeper than the library's own stack


def test_depth_limit_custom() -> None:
    assert codec.decode(b"\x05", DecodeLimits(max_depth=0)) == 5
    rejects(b"\x90", RejectCode.TOO_LARGE, DecodeLimits(max_depth=0))
    assert codec.decode(b"\x91\x05", DecodeLimits(max_depth=1)) == (5,)
    rejects(b"\x91\x90", RejectCode.TOO_LARGE, DecodeLimits(max_depth=1))
    rejects(b"\x81\xa1a\x80", RejectCode.TOO_LARGE, DecodeLimits(max_depth=1))


def test_total_bytes_limit() -> None:
    limit = DEFAULT_DECODE_LIMITS.max_bytes
    at_limit = codec.encode(b"\x00" * (limit - 3))  # bin16 header is 3 bytes
    assert len(at_limit) == limit
    assert len(codec.decode(at_limit)) == limit - 3
    over = codec.encode(b"\x00" * (limit - 2))
    assert len(over) == limit + 1
    rejects(over, RejectCode.TOO_LARGE)
    rejects(b"\x00" * (limit + 1), RejectCode.TOO_LARGE)  # checked before framing
    rejects(codec.encode([1, 2, 3]), RejectCode.TOO_LARGE, DecodeLimits(max_bytes=3))
    assert codec.decode(codec.encode([1, 2]), DecodeLimits(max_bytes=3)) == (1, 2)


def test_container_length_limit() -> None:
    n = DEFAULT_DECODE_LIMITS.max_container_len
    assert len(codec.decode(codec.encode([None] * n))) == n
    rejects(codec.encode([None] * (n + 1)), RejectCode.TOO_LARGE)
    big_map = {f"{i:05d}": None for i in range(n)}
    assert len(codec.decode(codec.encode(big_map))) == n
    big_map["99999"] = None
    rejects(codec.encode(big_map), RejectCode.TOO_LARGE)
    small = DecodeLimits(max_container_len=2)
    assert codec.decode(codec.encode([1, 2]), small) == (1, 2)
    rejects(codec.encode([1, 2, 3]), RejectCode.TOO_LARGE, small)
    rejects(codec.encode({"a": 1, "b": 2, "c": 3}), RejectCode.TOO_LARGE, small)
    rejects(codec.encode([[1, 2, 3]]), RejectCode.TOO_LARGE, small)  # nested containers too


def test_str_length_limit() -> None:
    n = DEFAULT_DECODE_LIMITS.max_str_bytes
    assert len(codec.decode(codec.encode("a" * n))) == n
    rejects(codec.encode("a" * (n + 1)), RejectCode.TOO_LARGE)
    # The limit counts UTF-8 bytes, not characters.
    rejects(codec.encode("\u00e9" * (n // 2 + 1)), RejectCode.TOO_LARGE)
    small = DecodeLimits(max_str_bytes=3)
    assert codec.decode(codec.encode("abc"), small) == "abc"
    rejects(codec.encode("abcd"), RejectCode.TOO_LARGE, small)
    rejects(codec.encode({"abcd": 1}), RejectCode.TOO_LARGE, small)  # keys are strs too


def test_bin_length_limit() -> None:
    small = DecodeLimits(max_bin_bytes=3)
    assert codec.decode(codec.encode(b"abc"), small) == b"abc"
    rejects(codec.encode(b"abcd"), RejectCode.TOO_LARGE, small)
    rejects(codec.encode([b"abcd"]), RejectCode.TOO_LARGE, small)
    lim = DecodeLimits(max_bin_bytes=1000)
    rejects(codec.encode(b"\x00" * 1001), RejectCode.TOO_LARGE, lim)


@pytest.mark.parametrize("header", ["ddffffffff", "dfffffffff", "dc ffff", "de ffff"])
def test_huge_claimed_container_length_in_tiny_input(header: str) -> None:
    rejects(h(header), RejectCode.TOO_LARGE)
    rejects(h(header + "c0c0"), RejectCode.TOO_LARGE)


@pytest.mark.parametrize("header", ["dbffffffff", "c6ffffffff", "da7fff", "c5ffff61"])
def test_huge_claimed_str_or_bin_length_in_tiny_input_is_truncation(header: str) -> None:
    # Unlike a container header, a str/bin header is judged by its bytes: claimed but absent is
    # truncation (PROTOCOL.md 2.3 note 1), and nothing is allocated for the claim.
    rejects(h(header), RejectCode.MALFORMED)


def test_huge_claimed_ext_length_in_tiny_input_is_rejected() -> None:
    with pytest.raises(DecodeError):
        codec.decode(h("c9ffffffff01"))


# ---------------------------------------------------------------------------------------------
# "One value, one encoding" on arbitrary bytes
# ---------------------------------------------------------------------------------------------


def check_one_encoding(data: bytes) -> None:
    try:
        v = codec.decode(data)
    except DecodeError:
        return
    assert codec.encode(v) == data, f"{data.hex()} decoded to {v!r}, which encodes differently"


def test_all_inputs_of_one_and_two_bytes() -> None:
    accepted_one = 0
    for b in range(256):
        try:
            v = codec.decode(bytes([b]))
        except DecodeError:
            continue
        accepted_one += 1
        assert codec.encode(v) == bytes([b])
    # positive fixint 128, negative fixint 32, nil/false/true 3, "" b""-less: fixstr0, fixarray0, fixmap0
    assert accepted_one == 128 + 32 + 3 + 3
    for a, b in itertools.product(range(256), repeat=2):
        check_one_encoding(bytes([a, b]))


# Fragments that make random inputs hit every kind of header, including non-minimal ones.
FRAGMENTS = [h(x) for x in ("c0", "c2", "c3", "cc", "cd", "ce", "cf", "d0", "d1", "d2", "d3", "d9", "da", "db", "c4", "c5", "c6")] + [
    h(x)
    for x in ("dc", "dd", "de", "df", "ca", "cb", "c7", "d4", "d6", "c1", "90", "91", "92", "80", "81", "82", "a0", "a1", "a2", "ff", "00")
]
fragment_soup = st.lists(st.sampled_from(FRAGMENTS) | st.binary(min_size=1, max_size=3), min_size=1, max_size=12).map(b"".join)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    data = bytearray(codec.encode(draw(values)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data.insert(pos, draw(st.integers(0, 255)))
        elif pos < len(data):
            if op == "flip":
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "set":
                data[pos] = draw(st.integers(0, 255))
            else:
                del data[pos]
    return bytes(data)


CORPUS_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    127,
    128,
    -33,
    70000,
    2**40,
    INT_MIN,
    INT_MAX,
    "",
    "abc",
    "\u00e9\U0001f600",
    "x" * 40,
    b"",
    b"\x00\xff",
    b"y" * 300,
    [],
    {},
    [1, [2, [3, []]]],
    {"": 0, "a": [True, None], "b": {"c": b"d"}, "\u00e9": "e"},
    {"k" * 20: list(range(20)), "n": -(2**33)},
    [{"a": 1}, {"b": 2}, "s" * 33, b"z" * 40],
]


def test_deterministic_mass_fuzz_one_value_one_encoding() -> None:
    """Many seeded mutations of canonical encodings: every accepted input is canonical."""
    import random

    rnd = random.Random(0xC0DEC)
    corpus = [codec.encode(v) for v in CORPUS_VALUES]
    accepted = 0
    for _ in range(100_000):
        data = bytearray(rnd.choice(corpus))
        for _ in range(rnd.randint(1, 3)):
            op = rnd.randrange(6)
            pos = rnd.randrange(len(data) + 1)
            if op == 0 and pos < len(data):
                data[pos] ^= 1 << rnd.randrange(8)
            elif op == 1 and pos < len(data):
                data[pos] = rnd.randrange(256)
            elif op == 2:
                data.insert(pos, rnd.randrange(256))
            elif op == 3 and pos < len(data):
                del data[pos]
            elif op == 4:
                data[pos:pos] = rnd.choice(FRAGMENTS)
            else:
                data[pos:] = rnd.choice(corpus)
        try:
            v = codec.decode(bytes(data))
        except DecodeError:
            continue
        accepted += 1
        assert codec.encode(v) == bytes(data), f"{bytes(data).hex()} decoded to {v!r}, which encodes differently"
    # The fuzz must actually reach the accepting path, or it proves nothing.
    assert accepted > 5000


@cfg(1500)
@given(st.binary(max_size=48))
def test_random_bytes_one_value_one_encoding(data: bytes) -> None:
    check_one_encoding(data)


@cfg(600)
@given(fragment_soup)
def test_header_soup_one_value_one_encoding(data: bytes) -> None:
    check_one_encoding(data)


@cfg(300)
@given(mutated_encodings())
def test_mutated_encodings_one_value_one_encoding(data: bytes) -> None:
    check_one_encoding(data)


@cfg(200)
@given(st.binary(max_size=48) | fragment_soup | mutated_encodings())
def test_decode_raises_only_decode_errors(data: bytes) -> None:
    for limits in (DEFAULT_DECODE_LIMITS, DecodeLimits(max_depth=1, max_container_len=2, max_str_bytes=2, max_bin_bytes=2)):
        try:
            codec.decode(data, limits)
        except DecodeError:
            pass
        except Exception as e:  # pragma: no cover - this is the failure being looked for
            pytest.fail(f"{data.hex()}: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------------------------
# canonicalize / encode refuse values outside the model
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.0,
        float("nan"),
        float("inf"),
        [1, 2.5],
        {"a": -0.0},
        INT_MAX + 1,
        INT_MIN - 1,
        2**64,
        [2**64],
        {"a": {"b": -(2**70)}},
        {1: "a"},
        {b"k": 1},
        {None: 1},
        {True: 1},
        {("a",): 1},
        {"ok": {2: 3}},
        [{1.5: 1}],
        {1, 2},
        frozenset(),
        object(),
        1 + 2j,
        [object()],
    ],
    ids=repr,
)
def test_encode_rejects_values_outside_the_model(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        codec.encode(value)
    assert info.value.code is RejectCode.BAD_SCHEMA
    with pytest.raises(ValidationError):
        codec.canonicalize(value)


def test_int_range_boundaries_are_accepted() -> None:
    assert codec.decode(codec.encode(INT_MAX)) == INT_MAX
    assert codec.decode(codec.encode(INT_MIN)) == INT_MIN


def test_encode_rejects_absurd_nesting() -> None:
    v: Any = None
    for _ in range(100):
        v = [v]
    with pytest.raises(ValidationError) as info:
        codec.encode(v)
    assert info.value.code is RejectCode.TOO_LARGE


@pytest.mark.parametrize("value", ["\ud800", "ok\udfff", ["\ud83d"], {"\udc00": 1}], ids=repr)
def test_encode_rejects_lone_surrogates_with_validation_error(value: Any) -> None:
    """A str that has no UTF-8 encoding is outside the value model like a float is.

    Such strings arrive easily (JSON allows "\\ud800" escapes), so encode must fail with a coded
    ProtocolError, not a bare UnicodeEncodeError.
    """
    with pytest.raises(ProtocolError) as info:
        codec.encode(value)
    assert isinstance(info.value, ValidationError)


def test_failed_encode_leaves_no_residue() -> None:
    for bad in (["abc" * 50, 1.5], ["abc" * 50, "\ud800"], {"a": b"x" * 100, "b": 2**64}):
        with pytest.raises(ValueError):
            codec.encode(bad)
        assert codec.encode([1]) == b"\x91\x01"
        assert codec.decode(b"\x91\x01") == (1,)


def test_canonicalize_returns_immutable_sorted_form() -> None:
    out = codec.canonicalize({"b": [1, {"d": 2, "c": b"x"}], "a": bytearray(b"y")})
    assert list(out) == ["a", "b"]
    assert out["a"] == b"y" and type(out["a"]) is bytes
    assert type(out["b"]) is tuple
    assert list(out["b"][1]) == ["c", "d"]
