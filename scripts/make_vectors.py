#!/usr/bin/env python3
"""Write coopnet's protocol test vectors (tests/vectors/*.json).

Deterministic: every key comes from a fixed seed (``bytes([i]) * 32``), every timestamp is a
constant, every search below walks a counter from 0, and JSON is written with a fixed layout. Running
this script twice writes byte-identical files; tests/test_vectors.py re-runs it and compares.

Every *expected* reject code below is written out by hand from the specification (docs/PROTOCOL.md),
not read back from the implementation: the implementation is what the vectors test.

The Ed25519 arithmetic at the top is a small, slow, textbook implementation (RFC 8032 section 5.1)
used only to build the edge cases that a signing library refuses to produce: small-order and
mixed-order points, non-canonical encodings, signatures that hold only under the cofactored equation.

Usage: python scripts/make_vectors.py [--out DIR]   (default: tests/vectors next to this script)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protocol import codec, domain  # noqa: E402
from protocol.action import GENESIS_KIND, Action, sign_action, sign_genesis  # noqa: E402
from protocol.chain import make_proof  # noqa: E402
from protocol.charter import DEFAULT_CHARTER as DEFAULT_CHARTER_VALUE  # noqa: E402
from protocol.ids import IdKind, format_id  # noqa: E402
from protocol.keys import SMALL_ORDER_ENCODINGS, SigningKey  # noqa: E402

GENERATOR = "scripts/make_vectors.py"

# --------------------------------------------------------------------------------------------
# Textbook Ed25519 arithmetic (extended coordinates), for building edge cases only.

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
Point = tuple[int, int, int, int]
IDENTITY: Point = (0, 1, 1, 0)


def _add(p: Point, q: Point) -> Point:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s: int, p: Point) -> Point:
    q = IDENTITY
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _neg(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def _enc(p: Point) -> bytes:
    x, y, z, _ = p
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _x_squared(y: int) -> int:
    return (y * y - 1) * pow(D * y * y + 1, -1, P) % P


def _dec(b: bytes) -> Point:
    """Decode a canonical encoding (the arithmetic here never needs to decode anything else)."""
    y = int.from_bytes(b, "little") & ((1 << 255) - 1)
    sign = b[31] >> 7
    x2 = _x_squared(y)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        raise ValueError("not a point")
    if x & 1 != sign:
        x = -x % P
    return (x, y, 1, x * y % P)


def _is_square(v: int) -> bool:
    return v == 0 or pow(v, (P - 1) // 2, P) == 1


def _order(p: Point) -> int:
    """The order of a point known to be of small order (1, 2, 4 or 8)."""
    for n in (1, 2, 4, 8):
        if _enc(_mul(n, p)) == _enc(IDENTITY):
            return n
    raise ValueError("not of small order")


BASE = _dec((4 * pow(5, -1, P) % P).to_bytes(32, "little"))


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % L


def _expand(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def _scalar(s: int) -> bytes:
    return s.to_bytes(32, "little")


# --------------------------------------------------------------------------------------------
# Helpers


def seed(i: int) -> bytes:
    return bytes([i]) * 32


def tagged(v: Any) -> Any:
    """The JSON description of a msgpack value (see docs/PROTOCOL.md section 8)."""
    if v is None:
        return {"nil": None}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, bytes):
        return {"bin": v.hex()}
    if isinstance(v, (list, tuple)):
        return {"array": [tagged(x) for x in v]}
    if isinstance(v, dict):
        return {"map": [[k, tagged(x)] for k, x in sorted(v.items(), key=lambda kv: kv[0].encode("utf-8"))]}
    raise TypeError(type(v))


def write(out: Path, name: str, obj: dict[str, Any]) -> None:
    text = json.dumps(obj, indent=1, ensure_ascii=False) + "\n"
    (out / name).write_text(text, encoding="utf-8")


def mp_str(s: str) -> bytes:
    return codec.encode(s)


def raw_map(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A fixmap (<= 15 entries) from already-encoded keys and values, in the order given."""
    assert len(entries) <= 15
    return bytes([0x80 | len(entries)]) + b"".join(k + v for k, v in entries)


# --------------------------------------------------------------------------------------------
# codec.json


def codec_vectors() -> dict[str, Any]:
    valid: list[dict[str, Any]] = []

    def ok(name: str, value: Any) -> None:
        valid.append({"name": name, "value": tagged(value), "hex": codec.encode(value).hex()})

    ok("nil", None)
    ok("false", False)
    ok("true", True)
    for n in (0, 1, 127):
        ok(f"int {n}: positive fixint", n)
    for n in (128, 255):
        ok(f"int {n}: uint 8", n)
    for n in (256, 65535):
        ok(f"int {n}: uint 16", n)
    for n in (65536, 2**32 - 1):
        ok(f"int {n}: uint 32", n)
    for n in (2**32, 2**63 - 1):
        ok(f"int {n}: uint 64", n)
    for n in (-1, -32):
        ok(f"int {n}: negative fixint", n)
    for n in (-33, -128):
        ok(f"int {n}: int 8", n)
    for n in (-129, -32768):
        ok(f"int {n}: int 16", n)
    for n in (-32769, -(2**31)):
        ok(f"int {n}: int 32", n)
    for n in (-(2**31) - 1, -(2**63)):
        ok(f"int {n}: int 64", n)
    ok("str empty", "")
    ok("str a", "a")
    ok("str 31 bytes: fixstr", "x" * 31)
    ok("str 32 bytes: str 8", "x" * 32)
    ok("str 255 bytes: str 8", "x" * 255)
    ok("str 256 bytes: str 16", "x" * 256)
    ok("str with NUL", "a\x00b")
    ok("str non-ASCII (2-byte UTF-8)", "é")
    ok("str non-ASCII (4-byte UTF-8)", "\U0001f600")
    ok("str 16 chars but 32 UTF-8 bytes: str 8", "é" * 16)
    ok("str of max_str_bytes (16384)", "s" * 16384)
    ok("bin empty", b"")
    ok("bin 1 byte", b"\x00")
    ok("bin 255 bytes: bin 8", bytes(range(255)))
    ok("bin 256 bytes: bin 16", bytes(range(256)))
    ok("array empty", [])
    ok("array of scalars", [None, True, 1, "a", b"a"])
    ok("array 15: fixarray", list(range(15)))
    ok("array 16: array 16", list(range(16)))
    ok("array of max_container_len (1024)", [None] * 1024)
    ok("map empty", {})
    ok("map one entry", {"a": 1})
    ok("map 15: fixmap", {f"k{i:02d}": i for i in range(15)})
    ok("map 16: map 16", {f"k{i:02d}": i for i in range(16)})
    ok("map keys: empty, upper before lower, prefix first", {"": 0, "B": 1, "a": 2, "ab": 3, "b": 4})
    ok("map keys: non-ASCII after ASCII", {"z": 1, "é": 2})
    ok("map keys: UTF-8 byte order, not UTF-16 order (U+FF5E before U+1F600)", {"\U0001f600": 1, "\uff5e": 2})
    ok("map keys: 2-byte before 3-byte UTF-8", {"\u20ac": 1, "\u00ff": 2})
    ok("nested map and array", {"a": {"b": [1, {"c": b"\x01"}]}, "d": []})
    nested: Any = []
    for _ in range(15):
        nested = [nested]
    ok("depth 16: 16 nested arrays (max_depth)", nested)
    nested_map: Any = 1
    for _ in range(16):
        nested_map = {"k": nested_map}
    ok("depth 16: 16 nested maps around a scalar", nested_map)

    invalid: list[dict[str, Any]] = []

    def bad(name: str, hexstr: str | bytes, code: str) -> None:
        h = hexstr.hex() if isinstance(hexstr, bytes) else hexstr
        invalid.append({"name": name, "hex": h, "code": code})

    nc, mal, big = "not_canonical", "malformed", "too_large"
    # Non-minimal integers.
    for name, h in (
        ("0 as uint 8", "cc00"),
        ("0 as uint 16", "cd0000"),
        ("0 as uint 32", "ce00000000"),
        ("0 as uint 64", "cf0000000000000000"),
        ("0 as int 8", "d000"),
        ("0 as int 64", "d30000000000000000"),
        ("1 as int 8", "d001"),
        ("127 as uint 8", "cc7f"),
        ("127 as int 8", "d07f"),
        ("128 as uint 16", "cd0080"),
        ("128 as int 16", "d10080"),
        ("255 as uint 16", "cd00ff"),
        ("256 as uint 32", "ce00000100"),
        ("256 as int 16", "d10100"),
        ("65535 as uint 32", "ce0000ffff"),
        ("65536 as uint 64", "cf0000000000010000"),
        ("65536 as int 32", "d200010000"),
        ("2^32-1 as uint 64", "cf00000000ffffffff"),
        ("2^32 as int 64", "d30000000100000000"),
        ("2^63-1 as int 64", "d37fffffffffffffff"),
        ("-1 as int 8", "d0ff"),
        ("-1 as int 64", "d3ffffffffffffffff"),
        ("-32 as int 8", "d0e0"),
        ("-33 as int 16", "d1ffdf"),
        ("-128 as int 16", "d1ff80"),
        ("-129 as int 32", "d2ffffff7f"),
        ("-32768 as int 32", "d2ffff8000"),
        ("-32769 as int 64", "d3ffffffffffff7fff"),
        ("-2^31 as int 64", "d3ffffffff80000000"),
    ):
        bad(f"non-minimal int: {name}", h, nc)
    bad("uint 64 of 2^63 (above int64)", "cf8000000000000000", nc)
    bad("uint 64 of 2^64-1 (above int64)", "cfffffffffffffffff", nc)
    bad("uint 64 of 2^63 inside an array", "91cf8000000000000000", nc)
    # Non-minimal lengths.
    for name, h in (
        ("str 'a' as str 8", "d90161"),
        ("str 'a' as str 16", "da000161"),
        ("str 'a' as str 32", "db0000000161"),
        ("str '' as str 8", "d900"),
        ("str of 31 bytes as str 8", "d91f" + "78" * 31),
        ("str of 32 bytes as str 16", "da0020" + "78" * 32),
        ("str of 255 bytes as str 16", "da00ff" + "78" * 255),
        ("str of 256 bytes as str 32", "db00000100" + "78" * 256),
        ("bin empty as bin 16", "c50000"),
        ("bin 1 byte as bin 16", "c50001aa"),
        ("bin 1 byte as bin 32", "c600000001aa"),
        ("bin of 255 bytes as bin 16", "c500ff" + "aa" * 255),
        ("bin of 256 bytes as bin 32", "c600000100" + "aa" * 256),
        ("array [] as array 16", "dc0000"),
        ("array [1] as array 16", "dc000101"),
        ("array [1] as array 32", "dd0000000101"),
        ("array of 15 as array 16", "dc000f" + "00" * 15),
        ("array of 16 as array 32", "dd00000010" + "00" * 16),
        ("map {} as map 16", "de0000"),
        ("map {a:1} as map 16", "de0001a16101"),
        ("map {a:1} as map 32", "df00000001a16101"),
        ("map of 15 as map 16", "de000f" + "".join(codec.encode(f"k{i:02d}").hex() + "00" for i in range(15))),
    ):
        bad(f"non-minimal length: {name}", h, nc)
    # Key order and uniqueness.
    bad("map keys unsorted", "82a16201a16101", nc)
    bad("map keys unsorted: lower before upper", "82a16101a14201", nc)
    bad("map keys unsorted: longer before its prefix", "82a2616201a16101", nc)
    bad("map keys unsorted: non-empty before empty", "82a16101a001", nc)
    bad("map keys unsorted: non-ASCII before ASCII", "82a2c3a901a17a01", nc)
    bad("map keys in UTF-16 order (U+1F600 before U+FF5E)", "82a4f09f988001a3efbd9e02", nc)
    bad("map keys unsorted in a nested map", "81a16182a16201a16101", nc)
    bad("map duplicate key, same value", "82a16101a16101", nc)
    bad("map duplicate key, different values", "82a16101a16102", nc)
    bad("map duplicate key, not adjacent", "83a16101a16201a16102", nc)
    # Keys that are not str.
    for name, h in (
        ("int", "810101"),
        ("negative int", "81ff01"),
        ("bin", "81c4016101"),
        ("nil", "81c001"),
        ("bool", "81c301"),
        ("array", "81910101"),
        ("map", "818001"),
        ("float 32", "81ca3f80000001"),
        ("ext", "81d4010001"),
    ):
        bad(f"map key is {name}", h, nc)
    # Floats.
    for name, h in (
        ("float 32 1.0", "ca3f800000"),
        ("float 64 1.0", "cb3ff0000000000000"),
        ("float 64 0.0", "cb0000000000000000"),
        ("float 64 NaN", "cb7ff8000000000000"),
        ("float 64 +inf", "cb7ff0000000000000"),
        ("float 32 inside an array", "92ca3f80000001"),
        ("float 64 as a map value", "81a161cb3ff0000000000000"),
    ):
        bad(name, h, nc)
    # Ext types.
    for name, h in (
        ("fixext 1", "d40100"),
        ("fixext 2", "d5010000"),
        ("fixext 4", "d60100000000"),
        ("fixext 8", "d7010000000000000000"),
        ("fixext 16", "d801" + "00" * 16),
        ("ext 8 (empty)", "c70001"),
        ("ext 8 (3 bytes)", "c70301000000"),
        ("ext 16", "c8000101ff"),
        ("ext 32", "c90000000101ff"),
        ("timestamp 32 (ext -1)", "d6ff00000000"),
        ("timestamp 64 (ext -1)", "d7ff0000000000000000"),
        ("timestamp 96 (ext -1)", "c70cff" + "00" * 12),
        ("fixext 1 inside an array", "91d40100"),
    ):
        bad(f"ext type: {name}", h, nc)
    # A type -1 ext whose payload is not a timestamp: the reference decoder reports malformed.
    bad("ext type -1 of 2 bytes (not a timestamp)", "d5ff0000", mal)
    bad("ext type -1 of 3 bytes (not a timestamp)", "c703ff000000", mal)
    bad("ext type -1 timestamp 64 with nanoseconds > 999999999", "d7ffffffffff00000000", mal)
    # Framing.
    bad("trailing byte after a scalar", "0100", nc)
    bad("two values", "c0c0", nc)
    bad("trailing byte after an array", "9000", nc)
    bad("trailing byte after a map", "81a1610100", nc)
    bad("empty input", "", mal)
    for name, h in (
        ("array of 2 with 1 element", "9201"),
        ("map of 1 with key only", "81a161"),
        ("map header only", "81"),
        ("fixstr of 5 with 2 bytes", "a56162"),
        ("str 8 header only", "d9"),
        ("str 8 length only", "d905"),
        ("bin 8 of 5 with 1 byte", "c405aa"),
        ("uint 16 with 1 byte", "cd01"),
        ("uint 64 with 1 byte", "cf00"),
        ("int 64 header only", "d3"),
        ("float 64 with 4 bytes", "cb3ff00000"),
        ("ext 8 header only", "c7"),
        ("bin 32 claiming 2^32-1 bytes", "c6ffffffff"),
        ("str 32 claiming 2^32-1 bytes", "dbffffffff"),
    ):
        bad(f"truncated: {name}", h, mal)
    bad("reserved byte 0xc1", "c1", mal)
    bad("reserved byte 0xc1 inside an array", "91c1", mal)
    # UTF-8.
    for name, h in (
        ("lone continuation byte", "a180"),
        ("byte 0xff", "a1ff"),
        ("truncated 2-byte sequence", "a1c3"),
        ("bad continuation", "a2c328"),
        ("overlong '/' (c0 af)", "a2c0af"),
        ("overlong 3-byte", "a3e080af"),
        ("UTF-16 surrogate U+D800", "a3eda080"),
        ("above U+10FFFF", "a4f4908080"),
        ("invalid in str 8", "d902c328"),
        ("invalid in a map key", "81a1ff01"),
    ):
        bad(f"invalid UTF-8: {name}", h, mal)
    # Limits (DecodeLimits defaults).
    bad("depth 17: 17 nested arrays", "91" * 16 + "90", big)
    bad("depth 17: 17 nested maps around a scalar", "81a16b" * 17 + "01", big)
    bad("depth 2000", "91" * 2000 + "01", big)
    bad("array of 1025 (max_container_len + 1)", "dc0401" + "c0" * 1025, big)
    bad("array 16 header claiming 1025 elements", "dc0401", big)
    bad("map 16 header claiming 1025 entries", "de0401", big)
    bad("array 32 header claiming 2^32-1 elements", "ddffffffff", big)
    bad("str of 16385 bytes (max_str_bytes + 1)", "da4001" + "73" * 16385, big)
    bad("input of 65537 bytes (max_bytes + 1)", "c5fffe" + "00" * 0xFFFE, big)
    return {
        "description": (
            "Canonical msgpack (docs/PROTOCOL.md section 2). valid: 'value' (tagged JSON: nil, bool, int as a decimal "
            "string, str, bin as hex, array, map as [key, value] pairs in canonical order) encodes to exactly 'hex', and "
            "'hex' decodes to 'value'. invalid: decoding 'hex' with the default DecodeLimits MUST fail with reject code 'code'."
        ),
        "generator": GENERATOR,
        "valid": valid,
        "invalid": invalid,
    }


# --------------------------------------------------------------------------------------------
# keys.json


def keys_vectors() -> dict[str, Any]:
    keys = []
    for i in (0, 1, 2, 3, 0xFF):
        s = seed(i)
        pk = SigningKey(s).public_key
        keys.append(
            {
                "seed": s.hex(),
                "public_key": pk.hex(),
                "member_id": format_id(IdKind.MEMBER, pk),
                "node_id": format_id(IdKind.NODE, pk),
            }
        )
    rfc_seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    rfc_pk = SigningKey(rfc_seed).public_key
    assert rfc_pk.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    keys.append(
        {
            "seed": rfc_seed.hex(),
            "public_key": rfc_pk.hex(),
            "member_id": format_id(IdKind.MEMBER, rfc_pk),
            "node_id": format_id(IdKind.NODE, rfc_pk),
        }
    )

    sigs: list[dict[str, Any]] = []

    def case(name: str, pk: bytes, msg: bytes, sig: bytes, code: str | None) -> None:
        sigs.append(
            {"name": name, "public_key": pk.hex(), "message": msg.hex(), "signature": sig.hex(), "valid": code is None, "code": code}
        )

    k1 = SigningKey(seed(1))
    a1, prefix1 = _expand(seed(1))
    A1 = k1.public_key
    assert _enc(_mul(a1, BASE)) == A1
    msg = b"coopnet vector message"
    sig1 = k1.sign(msg)
    case("valid", A1, msg, sig1, None)
    case("valid: empty message", SigningKey(seed(2)).public_key, b"", SigningKey(seed(2)).sign(b""), None)
    rfc_sig = SigningKey(rfc_seed).sign(b"")
    assert rfc_sig.hex().startswith("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b")
    case("valid: RFC 8032 section 7.1 test 1", rfc_pk, b"", rfc_sig, None)
    case("wrong message", A1, msg + b"!", sig1, "bad_signature")
    case("signature of another key", SigningKey(seed(2)).public_key, msg, sig1, "bad_signature")
    flipped = bytearray(sig1)
    flipped[40] ^= 0x01
    case("S modified (one bit)", A1, msg, bytes(flipped), "bad_signature")
    flipped = bytearray(sig1)
    flipped[0] ^= 0x01
    case("R modified (one bit)", A1, msg, bytes(flipped), "bad_signature")
    s_int = int.from_bytes(sig1[32:], "little")
    case("S + L (not reduced; S + L of a valid signature)", A1, msg, sig1[:32] + _scalar(s_int + L), "bad_signature")
    case("S = L", A1, msg, sig1[:32] + _scalar(L), "bad_signature")
    case("S with the top bit set", A1, msg, sig1[:32] + _scalar(s_int | (1 << 255)), "bad_signature")
    case("signature of 63 bytes", A1, msg, sig1[:63], "bad_signature")
    case("signature of 65 bytes", A1, msg, sig1 + b"\x00", "bad_signature")
    case("empty signature", A1, msg, b"", "bad_signature")
    case("public key of 31 bytes", A1[:31], msg, sig1, "bad_key")
    case("public key of 33 bytes", A1 + b"\x00", msg, sig1, "bad_key")

    # Small-order A: R = rB and S = r, with a message for which [k]A is the identity, so the
    # equation [S]B - [k]A = R holds; only the small-order rule rejects these.
    r_fixed = _h(b"coopnet-vector-r")
    R_fixed = _enc(_mul(r_fixed, BASE))
    for enc_a in sorted(SMALL_ORDER_ENCODINGS):
        pa = _dec(enc_a)
        order = _order(pa)
        for i in range(1000):
            m = b"small-order A %d" % i
            if _h(R_fixed, enc_a, m) % order == 0:
                break
        case(f"small-order A {enc_a.hex()} (order {order}); the equation holds", enc_a, m, R_fixed + _scalar(r_fixed), "bad_key")

    # The all-identity forgery: A = identity, R = identity, S = 0 satisfies the equation for any message.
    ident = _enc(IDENTITY)
    case("forgery: A = identity, R = identity, S = 0", ident, msg, ident + _scalar(0), "bad_key")

    # Non-canonical A: y >= p. The only such encodings are y = p + t for t in 0..18.
    noncanon_a = None
    for t in range(2, 19):
        if _is_square(_x_squared(t)):
            pt = _dec(t.to_bytes(32, "little"))
            if _enc(_mul(8, pt)) != ident:
                noncanon_a = (t + P).to_bytes(32, "little")
                break
    assert noncanon_a is not None
    case("non-canonical A: y = p + t, a point of large order", noncanon_a, msg, sig1, "bad_key")
    case("non-canonical A: y = p + 1 (the identity)", (P + 1).to_bytes(32, "little"), msg, sig1, "bad_key")
    case("non-canonical A: y = p (order 4)", P.to_bytes(32, "little"), msg, sig1, "bad_key")
    case("non-canonical A: y = 2^255 - 1", ((1 << 255) - 1).to_bytes(32, "little"), msg, sig1, "bad_key")
    case("non-canonical A: x = 0 with the sign bit (y = 1)", (1 | (1 << 255)).to_bytes(32, "little"), msg, sig1, "bad_key")
    case("non-canonical A: x = 0 with the sign bit (y = p - 1)", ((P - 1) | (1 << 255)).to_bytes(32, "little"), msg, sig1, "bad_key")
    not_on_curve = next(y for y in range(2, 100) if not _is_square(_x_squared(y)))
    case(f"A not on the curve (y = {not_on_curve})", not_on_curve.to_bytes(32, "little"), msg, sig1, "bad_key")
    flipped_a = bytearray(A1)
    flipped_a[31] ^= 0x80
    # -A is a perfectly good key; the signature is just not made by it.
    case("A with the sign bit flipped (-A: a valid key, wrong signer)", bytes(flipped_a), msg, sig1, "bad_signature")

    # Mixed-order A = aB + T (T of order 8): the cofactorless equation holds iff 8 | k.
    t8 = _dec(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))
    assert _order(t8) == 8
    mixed_a = _enc(_add(_mul(a1, BASE), t8))
    r = _h(prefix1, b"mixed")
    R = _enc(_mul(r, BASE))
    found_ok = found_bad = None
    for i in range(1000):
        m = b"mixed-order A %d" % i
        k = _h(R, mixed_a, m)
        if k % 8 == 0 and found_ok is None:
            found_ok = (m, R + _scalar((r + k * a1) % L))
        if k % 8 != 0 and found_bad is None:
            found_bad = (m, R + _scalar((r + k * a1) % L))
        if found_ok and found_bad:
            break
    assert found_ok and found_bad
    case("mixed-order A (aB + T8); the cofactorless equation holds", mixed_a, *found_ok, None)
    case("mixed-order A (aB + T8); only the cofactored equation holds", mixed_a, *found_bad, "bad_signature")

    # Mixed-order R = rB + T8 with S = r + k a: only the cofactored equation holds.
    mixed_r = _enc(_add(_mul(r, BASE), t8))
    k = _h(mixed_r, A1, msg)
    case("mixed-order R (rB + T8); only the cofactored equation holds", A1, msg, mixed_r + _scalar((r + k * a1) % L), "bad_signature")

    # Small-order R: with A = aB + T8 and S = k a, [S]B - [k]A = -[k]T8; choose the message so
    # that this is exactly R. Only the small-order-R rule rejects these.
    for enc_r in sorted(SMALL_ORDER_ENCODINGS):
        for i in range(10000):
            m = b"small-order R %d" % i
            k = _h(enc_r, mixed_a, m)
            if _enc(_neg(_mul(k, t8))) == enc_r:
                break
        else:
            raise AssertionError("no message found")
        case(f"small-order R {enc_r.hex()}; the equation holds", mixed_a, m, enc_r + _scalar(k * a1 % L), "bad_signature")

    # Non-canonical R naming the identity, S = k a: [S]B - [k]A is the identity, so the equation
    # holds when points are compared, not when encodings are.
    for name, enc_r in (
        ("y = p + 1", (P + 1).to_bytes(32, "little")),
        ("x = 0 with the sign bit", (1 | (1 << 255)).to_bytes(32, "little")),
    ):
        k = _h(enc_r, A1, msg)
        case(f"non-canonical R ({name}, the identity); the equation holds as points", A1, msg, enc_r + _scalar(k * a1 % L), "bad_signature")
    case("non-canonical R: y = 2^255 - 1", A1, msg, ((1 << 255) - 1).to_bytes(32, "little") + sig1[32:], "bad_signature")

    small_order = [{"hex": e.hex(), "order": _order(_dec(e))} for e in sorted(SMALL_ORDER_ENCODINGS)]

    ids_valid = []
    for kind in IdKind:
        for raw in (bytes(32), b"\xff" * 32, hashlib.sha256(b"coopnet-vector-id").digest()):
            ids_valid.append({"kind": kind.value, "hex": raw.hex(), "text": format_id(kind, raw)})
    good = format_id(IdKind.MEMBER, hashlib.sha256(b"coopnet-vector-id").digest())
    body = good[4:]
    assert good[-1] in "aq" and body[10].isalpha()
    bad_last = {"a": "b", "q": "r"}[good[-1]]
    ids_invalid = [
        {"name": "wrong prefix (act_ where mem_ expected)", "kind": "mem", "text": "act_" + body},
        {"name": "coop_ where act_ expected", "kind": "act", "text": "coop_" + body},
        {"name": "upper-case prefix", "kind": "mem", "text": "MEM_" + body},
        {"name": "no separator", "kind": "mem", "text": "mem" + body},
        {"name": "upper-case base32", "kind": "mem", "text": "mem_" + body.upper()},
        {"name": "one upper-case character", "kind": "mem", "text": "mem_" + body[:10] + body[10].upper() + body[11:]},
        {"name": "padding appended", "kind": "mem", "text": good + "===="},
        {"name": "51 characters", "kind": "mem", "text": good[:-1]},
        {"name": "53 characters", "kind": "mem", "text": good + "a"},
        {"name": f"non-zero trailing bits (last character {bad_last}, not {good[-1]})", "kind": "mem", "text": good[:-1] + bad_last},
        {"name": "character outside the alphabet (1)", "kind": "mem", "text": "mem_" + "1" + body[1:]},
        {"name": "character outside the alphabet (8)", "kind": "mem", "text": "mem_" + "8" + body[1:]},
        {"name": "padding inside", "kind": "mem", "text": "mem_" + body[:-4] + "===="},
        {"name": "trailing space", "kind": "mem", "text": good[:-1] + " "},
        {"name": "non-ASCII character", "kind": "mem", "text": good[:-1] + "é"},
        {"name": "empty", "kind": "mem", "text": ""},
    ]
    for v in ids_invalid:
        v["code"] = "bad_id"
    return {
        "description": (
            "Ed25519 keys and the signature acceptance policy (docs/PROTOCOL.md sections 3 and 4). keys: seed -> public key -> "
            "member and node id text. signatures: verify(public_key, message, signature) MUST accept exactly when 'valid', "
            "and otherwise fail with 'code' (all byte strings in hex). small_order: the 8 rejected encodings. ids: the text "
            "form of 32-byte ids; every invalid text MUST fail to parse as its 'kind' with bad_id."
        ),
        "generator": GENERATOR,
        "keys": keys,
        "signatures": sigs,
        "small_order": small_order,
        "ids": {"valid": ids_valid, "invalid": ids_invalid},
    }


# --------------------------------------------------------------------------------------------
# actions.json and invalid_actions.json

TS0 = 1_700_000_000_000
ALICE, BOB, CAROL = seed(1), seed(2), seed(3)
GENESIS_BODY = {"name": "Vélo Coop", "purpose": "bike repair"}


def id_text(kind: IdKind, raw: bytes | None) -> str | None:
    return None if raw is None else format_id(kind, raw)


def describe(name: str, act: Action, seed_bytes: bytes, *, redaction_of: str | None = None) -> dict[str, Any]:
    env = act.env
    return {
        "name": name,
        "seed": seed_bytes.hex(),
        "hex": act.raw.hex(),
        "id": format_id(IdKind.ACTION, act.id),
        "coop": format_id(IdKind.COOP, act.coop),
        "redaction_of": redaction_of,
        "env": {
            "v": env.v,
            "coop": id_text(IdKind.COOP, env.coop),
            "author": env.author.hex(),
            "author_id": format_id(IdKind.MEMBER, env.author),
            "seq": env.seq,
            "prev": id_text(IdKind.ACTION, env.prev),
            "deps": [format_id(IdKind.ACTION, d) for d in env.deps],
            "ts": env.ts,
            "kind": env.kind,
            "body_hash": env.body_hash.hex(),
            "body_size": env.body_size,
        },
        "env_hex": act.env_bytes.hex(),
        "signing_input_hex": domain.action_signing_input(act.env_bytes).hex(),
        "sig_hex": act.sig.hex(),
        "body_hex": None if act.body is None else act.body.hex(),
        "body_hash_hex": env.body_hash.hex(),
        "body": None if act.body is None else tagged(codec.decode(act.body)),
    }


def fake_id(i: int) -> bytes:
    return hashlib.sha256(b"coopnet-vector-dep-%d" % i).digest()


class Chain:
    """The signed actions every vector file builds on."""

    def __init__(self) -> None:
        ka, kb, kc = SigningKey(ALICE), SigningKey(BOB), SigningKey(CAROL)
        self.ka, self.kb, self.kc = ka, kb, kc
        self.genesis = sign_genesis(ka, ts=TS0, body=GENESIS_BODY)
        g = self.genesis.id
        self.coop = g
        self.a2 = sign_action(
            ka, coop=g, seq=2, prev=g, deps=[g], ts=TS0 + 60_000, kind="ride.offer", body={"from": "Lyon", "seats": 3, "to": "Grenoble"}
        )
        self.b1 = sign_action(kb, coop=g, seq=1, prev=None, deps=[g], ts=TS0 + 120_000, kind="member.apply", body={"note": "I fix brakes"})
        self.a3 = sign_action(
            ka,
            coop=g,
            seq=3,
            prev=self.a2.id,
            deps=[self.b1.id, self.a2.id],
            ts=TS0 + 180_000,
            kind="proposal.open",
            body={"payload": {"member": kb.public_key}, "title": "Admit Bob", "type": "admit"},
        )
        self.b2a = sign_action(
            kb, coop=g, seq=2, prev=self.b1.id, deps=[self.a3.id], ts=TS0 + 240_000, kind="ride.request", body={"to": "Annecy"}
        )
        self.b2b = sign_action(
            kb, coop=g, seq=2, prev=self.b1.id, deps=[self.a3.id], ts=TS0 + 240_001, kind="ride.request", body={"to": "Chambéry"}
        )
        self.a2x = sign_action(
            ka, coop=g, seq=2, prev=g, deps=[g], ts=TS0 + 60_000, kind="ride.offer", body={"from": "Lyon", "seats": 2, "to": "Grenoble"}
        )
        self.a1x = sign_action(ka, coop=g, seq=1, prev=None, deps=[], ts=TS0 + 1, kind="note.text", body="a second seq 1")
        self.c1 = sign_action(
            kc,
            coop=g,
            seq=1,
            prev=None,
            deps=[fake_id(i) for i in range(32)],
            ts=2**63 - 1,
            kind="a" * 30 + ".b" + "_" * 32,
            body=None,
        )
        self.g2 = sign_genesis(ka, ts=TS0 + 2, body={"name": "é" * 64})
        self.g3 = sign_genesis(kb, ts=TS0 + 3, body={"name": "\u200b"})
        self.g2a2 = sign_action(ka, coop=self.g2.id, seq=2, prev=self.g2.id, deps=[], ts=TS0 + 60_000, kind="ride.offer", body=None)
        self.b3 = sign_action(kb, coop=g, seq=3, prev=self.b2a.id, deps=[self.a3.id], ts=TS0 + 300_000, kind="member.seen", body={})
        windowed = {
            **DEFAULT_CHARTER_VALUE,
            "decisions": {"default": {"minutes": 4320, "quorum": 40, "threshold": "majority"}},
            "equivocation": {"days": 30, "forgive": 2, "sanction": "suspend"},
        }
        self.a4 = sign_action(
            ka,
            coop=g,
            seq=4,
            prev=self.a3.id,
            deps=[self.b3.id],
            ts=TS0 + 360_000,
            kind="proposal.open",
            body={"payload": {"charter": windowed}, "title": "Votes stay open 3 days; two equivocations forgiven", "type": "amend"},
        )


def actions_vectors(c: Chain) -> dict[str, Any]:
    acts = [
        describe("genesis (alice founds the co-op)", c.genesis, ALICE),
        describe("alice seq 2: prev = genesis, deps = [genesis]", c.a2, ALICE),
        describe("bob seq 1: a second member's first action", c.b1, BOB),
        describe("alice seq 3: prev = seq 2, two deps in byte order", c.a3, ALICE),
        describe(
            "alice seq 2, redacted (no body): same id",
            c.a2.without_body(),
            ALICE,
            redaction_of="alice seq 2: prev = genesis, deps = [genesis]",
        ),
        describe("alice seq 2 again, another body (equivocation with alice seq 2)", c.a2x, ALICE),
        describe("bob seq 2 (equivocation, first)", c.b2a, BOB),
        describe("bob seq 2 (equivocation, second)", c.b2b, BOB),
        describe("alice seq 1, not a genesis, in the co-op she founded (valid alone; its seq is taken by her genesis)", c.a1x, ALICE),
        describe("carol seq 1 at the limits: 32 deps, 64-byte kind, ts 2^63-1, body nil", c.c1, CAROL),
        describe("a second genesis by alice: name of 128 UTF-8 bytes (64 characters), the limit", c.g2, ALICE),
        describe("alice seq 2 in the second co-op (deps empty, body nil)", c.g2a2, ALICE),
        describe("genesis by bob: name is U+200B ZERO WIDTH SPACE (no control character)", c.g3, BOB),
        describe("bob seq 3: member.seen (records what he had seen; body {})", c.b3, BOB),
        describe("alice seq 4: amend proposal; the charter's rule has a 72-hour window, equivocation forgives twice", c.a4, ALICE),
    ]
    proofs = []
    for name, x, y in (
        ("bob equivocates at seq 2", c.b2a, c.b2b),
        ("alice equivocates at seq 2: the envelopes differ only in body_hash", c.a2, c.a2x),
        ("alice equivocates at seq 1: her genesis and a second seq-1 action in the co-op it founds", c.genesis, c.a1x),
    ):
        proof = make_proof(y, x)
        proofs.append(
            {
                "name": name,
                "hex": proof.encode().hex(),
                "id": format_id(IdKind.PROOF, proof.id),
                "a": format_id(IdKind.ACTION, proof.a.id),
                "b": format_id(IdKind.ACTION, proof.b.id),
                "coop": format_id(IdKind.COOP, proof.coop),
                "author": format_id(IdKind.MEMBER, proof.author),
                "seq": proof.seq,
            }
        )
    return {
        "description": (
            "Signed actions (docs/PROTOCOL.md sections 5 and 6). Each action is signed with Ed25519 from 'seed'; 'hex' is the "
            "wire encoding and MUST decode to the stated id, co-op and envelope; re-signing the same envelope and body from "
            "the seed MUST give exactly 'hex' (Ed25519 is deterministic). A redacted action is its original without body "
            "and keeps the id. proofs: equivocation proofs, each with the ids of its two actions and its proof id."
        ),
        "generator": GENERATOR,
        "seeds": {"alice": ALICE.hex(), "bob": BOB.hex(), "carol": CAROL.hex()},
        "actions": acts,
        "proofs": proofs,
    }


def env_value(
    key: SigningKey,
    *,
    coop: bytes | None,
    seq: int,
    prev: bytes | None,
    deps: list[bytes],
    ts: int,
    kind: str,
    body: bytes,
) -> dict[str, Any]:
    return {
        "author": key.public_key,
        "body_hash": domain.body_hash(body),
        "body_size": len(body),
        "coop": coop,
        "deps": deps,
        "kind": kind,
        "prev": prev,
        "seq": seq,
        "ts": ts,
        "v": 1,
    }


def wire(env_bytes: bytes, sig: bytes, body: bytes | None) -> bytes:
    outer: dict[str, Any] = {"env": env_bytes, "sig": sig}
    if body is not None:
        outer["body"] = body
    return codec.encode(outer)


def signed(key: SigningKey, env_bytes: bytes, body: bytes | None) -> bytes:
    return wire(env_bytes, key.sign(domain.action_signing_input(env_bytes)), body)


def invalid_actions_vectors(c: Chain) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    ka = c.ka
    g = c.coop
    body = codec.encode({"from": "Lyon", "seats": 3, "to": "Grenoble"})

    def base(**over: Any) -> dict[str, Any]:
        v = env_value(ka, coop=g, seq=2, prev=g, deps=[g], ts=TS0 + 60_000, kind="ride.offer", body=body)
        v.update(over)
        return v

    def gen_base(**over: Any) -> dict[str, Any]:
        gb = codec.encode(GENESIS_BODY)
        v = env_value(ka, coop=None, seq=1, prev=None, deps=[], ts=TS0, kind=GENESIS_KIND, body=gb)
        v.update(over)
        return v

    def add(name: str, raw: bytes, code: str) -> None:
        out.append({"name": name, "hex": raw.hex(), "code": code})

    def env_case(name: str, env: dict[str, Any], code: str, b: bytes | None = body, key: SigningKey = ka) -> None:
        add(name, signed(key, codec.encode(env), b), code)

    def raw_env_case(name: str, entries: list[tuple[bytes, bytes]], code: str, b: bytes | None = body) -> None:
        add(name, signed(ka, raw_map(entries), b), code)

    def entries(env: dict[str, Any], swap: Callable[[str, bytes], bytes] | None = None) -> list[tuple[bytes, bytes]]:
        res = []
        for k in sorted(env):
            v = codec.encode(env[k])
            res.append((mp_str(k), swap(k, v) if swap else v))
        return res

    valid_raw = c.a2.raw
    env_bytes, sig = c.a2.env_bytes, c.a2.sig

    # Signatures and keys.
    s = bytearray(sig)
    s[63] ^= 0x01
    add("bad signature: one bit of S flipped", wire(env_bytes, bytes(s), body), "bad_signature")
    add("bad signature: signature of another action", wire(env_bytes, c.genesis.sig, body), "bad_signature")
    add("bad signature: S + L", wire(env_bytes, sig[:32] + _scalar(int.from_bytes(sig[32:], "little") + L), body), "bad_signature")
    add("bad signature: 63 bytes", wire(env_bytes, sig[:63], body), "bad_signature")
    add("bad signature: 65 bytes", wire(env_bytes, sig + b"\x00", body), "bad_signature")
    add("bad signature: signed without the domain tag", wire(env_bytes, ka.sign(env_bytes), body), "bad_signature")
    env = base(author=c.kb.public_key)
    add(
        "bad signature: author is another member",
        wire(codec.encode(env), ka.sign(domain.action_signing_input(codec.encode(env))), body),
        "bad_signature",
    )
    env = base(author=_enc(IDENTITY))
    add("bad key: author is the identity (small order)", wire(codec.encode(env), sig, body), "bad_key")
    env = base(author=(P + 1).to_bytes(32, "little"))
    add("bad key: author non-canonical (y >= p)", wire(codec.encode(env), sig, body), "bad_key")
    env = base(author=next(y for y in range(2, 100) if not _is_square(_x_squared(y))).to_bytes(32, "little"))
    add("bad key: author not on the curve", wire(codec.encode(env), sig, body), "bad_key")
    env_case("bad key: author of 31 bytes", base(author=ka.public_key[:31]), "bad_key")
    env_case("too large: author of 33 bytes (env bin limit is 32)", base(author=ka.public_key + b"\x00"), "too_large")

    # Version.
    env_case("unsupported version: v = 2", base(v=2), "unsupported_version")
    env_case("unsupported version: v = 0", base(v=0), "unsupported_version")
    env_case("unsupported version: v = 2 with an unknown extra field", {**base(v=2), "x": 1}, "unsupported_version")
    env_case("bad schema: v = true", base(v=True), "bad_schema")
    env_case("bad schema: v = '1'", base(v="1"), "bad_schema")
    env = base()
    del env["v"]
    env_case("bad schema: v missing", env, "bad_schema")

    # Canonical encoding of the wire map, the envelope and the body (each signed as sent).
    raw_env_case("not canonical: env keys unsorted", list(reversed(entries(base()))), "not_canonical")
    raw_env_case("not canonical: env seq as uint 8", entries(base(), lambda k, v: b"\xcc\x02" if k == "seq" else v), "not_canonical")
    raw_env_case(
        "not canonical: env kind as str 8", entries(base(), lambda k, v: b"\xd9\x0a" + b"ride.offer" if k == "kind" else v), "not_canonical"
    )
    raw_env_case(
        "not canonical: env deps as array 16", entries(base(), lambda k, v: b"\xdc\x00\x01" + v[1:] if k == "deps" else v), "not_canonical"
    )
    raw_env_case(
        "not canonical: env author as bin 16",
        entries(base(), lambda k, v: b"\xc5\x00\x20" + v[2:] if k == "author" else v),
        "not_canonical",
    )
    raw_env_case("not canonical: env with a duplicate key", [*entries(base()), (mp_str("v"), b"\x01")], "not_canonical")
    add("not canonical: env with trailing bytes", signed(ka, codec.encode(base()) + b"\xc0", body), "not_canonical")
    raw_env_case(
        "not canonical: ts as float 64",
        entries(base(), lambda k, v: b"\xcb" + struct.pack(">d", TS0 + 60_000) if k == "ts" else v),
        "not_canonical",
    )
    raw_env_case(
        "not canonical: ts = 2^63 (uint 64 above int64)",
        entries(base(), lambda k, v: b"\xcf\x80" + bytes(7) if k == "ts" else v),
        "not_canonical",
    )
    add(
        "not canonical: wire map keys unsorted",
        raw_map([(mp_str("env"), codec.encode(env_bytes)), (mp_str("body"), codec.encode(body)), (mp_str("sig"), codec.encode(sig))]),
        "not_canonical",
    )
    add(
        "not canonical: wire env as bin 16",
        bytes.fromhex("83")
        + mp_str("body")
        + codec.encode(body)
        + mp_str("env")
        + b"\xc5\x00"
        + bytes([len(env_bytes)])
        + env_bytes
        + mp_str("sig")
        + codec.encode(sig),
        "not_canonical",
    )
    add("not canonical: trailing byte after the action", valid_raw + b"\xc0", "not_canonical")
    odd_body = b"\x81\xa1b\x01\xa1a\x01"  # {"b": 1, "a": 1}: keys unsorted
    env_case(
        "not canonical: body keys unsorted (body_hash matches the bytes sent)",
        base(body_hash=domain.body_hash(odd_body), body_size=len(odd_body)),
        "not_canonical",
        odd_body,
    )
    odd_body = b"\xcc\x05"
    env_case(
        "not canonical: body is a non-minimal int",
        base(body_hash=domain.body_hash(odd_body), body_size=len(odd_body)),
        "not_canonical",
        odd_body,
    )
    odd_body = b"\xca\x3f\x80\x00\x00"
    env_case(
        "not canonical: body is a float", base(body_hash=domain.body_hash(odd_body), body_size=len(odd_body)), "not_canonical", odd_body
    )
    env_case("malformed: body of zero bytes", base(body_hash=domain.body_hash(b""), body_size=0), "malformed", b"")
    odd_body = b"\xa1\xff"
    env_case("malformed: body is invalid UTF-8", base(body_hash=domain.body_hash(odd_body), body_size=len(odd_body)), "malformed", odd_body)
    add("malformed: truncated action", valid_raw[:-1], "malformed")
    add("malformed: empty input", b"", "malformed")
    add("malformed: env bytes truncated", signed(ka, codec.encode(base())[:-1], body), "malformed")

    # The wire map.
    add("bad schema: not a map", codec.encode([env_bytes, sig]), "bad_schema")
    add("bad schema: sig missing", codec.encode({"body": body, "env": env_bytes}), "bad_schema")
    add("bad schema: env missing", codec.encode({"body": body, "sig": sig}), "bad_schema")
    add("bad schema: extra field (no body)", codec.encode({"env": env_bytes, "sig": sig, "x": b""}), "bad_schema")
    add("bad schema: extra field (with body)", codec.encode({"body": body, "env": env_bytes, "sig": sig, "x": b""}), "bad_schema")
    add(
        "too large: wire map of 17 fields (wire max_container_len is 16)",
        codec.encode({"body": body, "env": env_bytes, "sig": sig, **{f"x{i:02d}": b"" for i in range(14)}}),
        "too_large",
    )
    add(
        "too large: wire map nesting 5 deep (wire max_depth is 4)",
        codec.encode({"env": env_bytes, "sig": sig, "x": [[[[1]]]]}),
        "too_large",
    )
    add(
        "too large: wire map key of 257 bytes (wire max_str_bytes is 256)",
        codec.encode({"env": env_bytes, "sig": sig, "x" * 257: b""}),
        "too_large",
    )
    add("bad schema: body nil", codec.encode({"body": None, "env": env_bytes, "sig": sig}), "bad_schema")
    add(
        "bad schema: body is a map, not bin",
        codec.encode({"body": {"a": 1}, "env": env_bytes, "sig": sig}),
        "bad_schema",
    )
    add("bad schema: env is a str", codec.encode({"env": "x", "sig": sig}), "bad_schema")
    add("bad schema: sig is a str", codec.encode({"env": env_bytes, "sig": "x"}), "bad_schema")
    add("bad schema: env encodes an array", signed(ka, codec.encode([1]), body), "bad_schema")
    add("bad schema: env encodes an int", signed(ka, codec.encode(1), body), "bad_schema")

    # Envelope fields.
    env = base()
    del env["ts"]
    env_case("bad schema: ts missing", env, "bad_schema")
    env_case("bad schema: extra env field", {**base(), "note": "x"}, "bad_schema")
    env_case("bad schema: seq 0", base(seq=0), "bad_schema")
    env_case("bad schema: seq -1", base(seq=-1), "bad_schema")
    env_case("bad schema: seq true", base(seq=True), "bad_schema")
    env_case("bad schema: prev at seq 1", base(seq=1), "bad_schema")
    env_case("bad schema: prev nil at seq 2", base(prev=None), "bad_schema")
    env_case("bad schema: prev of 31 bytes", base(prev=g[:31]), "bad_schema")
    env_case("bad schema: coop of 31 bytes", base(coop=g[:31]), "bad_schema")
    env_case("bad schema: coop is a str", base(coop="x"), "bad_schema")
    env_case("bad schema: deps unsorted", base(deps=[c.b1.id, c.a2.id] if c.b1.id > c.a2.id else [c.a2.id, c.b1.id]), "bad_schema")
    env_case("bad schema: deps repeated", base(deps=[g, g]), "bad_schema")
    env_case("bad schema: dep of 31 bytes", base(deps=[g[:31]]), "bad_schema")
    env_case("bad schema: dep is a str", base(deps=["x"]), "bad_schema")
    env_case("bad schema: deps is a bin", base(deps=g), "bad_schema")
    env_case("too large: 33 deps", base(deps=sorted(fake_id(i) for i in range(33))), "too_large")
    env_case("too large: 65 deps (above the env container limit)", base(deps=sorted(fake_id(i) for i in range(65))), "too_large")
    env_case("too large: deps nested (env depth limit is 2)", base(deps=[[g]]), "too_large")
    env_case("bad schema: ts -1", base(ts=-1), "bad_schema")
    env_case("bad schema: ts nil", base(ts=None), "bad_schema")
    for kind in ("", "Ride.offer", "ride..offer", "ride.", ".ride", "ride-offer", "1ride", "ride.1offer", "ride offer", "vélo"):
        env_case(f"bad schema: kind {kind!r}", base(kind=kind), "bad_schema")
    env_case("too large: kind of 65 bytes", base(kind="k" * 65), "too_large")
    env_case("too large: kind of 257 bytes (above the env str limit)", base(kind="k" * 257), "too_large")
    env_case("bad schema: body_hash of 31 bytes", base(body_hash=domain.body_hash(body)[:31]), "bad_schema")
    env_case("bad schema: body_size -1", base(body_size=-1), "bad_schema")
    env_case("bad schema: body_size nil", base(body_size=None), "bad_schema")
    env_case("too large: body_size 49153 (body redacted)", base(body_size=48 * 1024 + 1), "too_large", None)

    # Body binding.
    altered = body.replace(b"Lyon", b"Nice")
    env_case("bad body: body altered (same size)", base(), "bad_body", altered)
    env_case("bad body: body_size off by one", base(body_size=len(body) + 1), "bad_body")
    env_case("bad body: body_hash without the domain tag", base(body_hash=hashlib.sha256(body).digest()), "bad_body")

    # Genesis shape.
    gb = codec.encode(GENESIS_BODY)
    add("bad body: genesis without body", wire(c.genesis.env_bytes, c.genesis.sig, None), "bad_body")
    for name, gbody in (
        ("genesis body without name", {"purpose": "x"}),
        ("genesis name empty", {"name": ""}),
        ("genesis name only spaces", {"name": "   "}),
        ("genesis name of 129 bytes", {"name": "n" * 129}),
        ("genesis name of 130 UTF-8 bytes (65 characters)", {"name": "é" * 65}),
        ("genesis name with a control character U+001C", {"name": "Food\x1cHub"}),
        ("genesis name with a NUL", {"name": "Food\x00Hub"}),
        ("genesis name with a C1 control U+0085", {"name": "Food\x85Hub"}),
        ("genesis name with DEL", {"name": "Food\x7fHub"}),
        ("genesis name only tab and newline", {"name": "\t\n"}),
        ("genesis name is bin", {"name": b"x"}),
        ("genesis body is a str", "Vélo Coop"),
    ):
        bb = codec.encode(gbody)
        env_case(f"bad body: {name}", gen_base(body_hash=domain.body_hash(bb), body_size=len(bb)), "bad_body", bb)
    env_case("bad schema: genesis with a coop", gen_base(coop=g), "bad_schema", gb)
    env_case("bad schema: coop nil on a kind other than coop.genesis", gen_base(kind="coop.charter"), "bad_schema", gb)
    env_case("bad schema: genesis at seq 2", gen_base(seq=2, prev=g), "bad_schema", gb)
    env_case("bad schema: genesis with deps", gen_base(deps=[fake_id(0)]), "bad_schema", gb)

    # Governance bodies (protocol/charter.py): checked when decoded, and never withheld.
    def gov_case(name: str, kind: str, gbody: Any, b: bool = True) -> None:
        bb = codec.encode(gbody)
        env_case(name, base(kind=kind, body_hash=domain.body_hash(bb), body_size=len(bb)), "bad_body", bb if b else None)

    gov_case("bad body: governance action without its body", "vote.cast", {"choice": "yes", "proposal": fake_id(1)}, b=False)
    gov_case("bad body: reserved kind not defined in version 1", "member.join", {})
    gov_case("bad body: vote choice not in the list", "vote.cast", {"choice": "maybe", "proposal": fake_id(1)})
    gov_case("bad body: vote proposal not an id", "vote.cast", {"choice": "yes", "proposal": b"short"})
    gov_case("bad body: proposal of an unknown type", "proposal.open", {"payload": {}, "title": "x", "type": "coup"})
    gov_case("bad body: proposal with an empty title", "proposal.open", {"payload": {}, "title": "", "type": "text"})
    gov_case("bad body: admit proposal without member", "proposal.open", {"payload": {}, "title": "x", "type": "admit"})
    bad_charter = {**DEFAULT_CHARTER_VALUE, "membership": {"policy": "lottery", "sponsors": 1}}
    gov_case(
        "bad body: amend proposal with a bad charter", "proposal.open", {"payload": {"charter": bad_charter}, "title": "x", "type": "amend"}
    )
    gov_case("bad body: tally outcome not in the list", "proposal.tally", {"outcome": "won", "proposal": fake_id(1)})
    no_window = {**DEFAULT_CHARTER_VALUE, "decisions": {"default": {"minutes": 0, "quorum": 50, "threshold": "majority"}}}
    gov_case(
        "bad body: a charter rule with a voting window of 0 minutes",
        "proposal.open",
        {"payload": {"charter": no_window}, "title": "x", "type": "amend"},
    )
    too_kind = {**DEFAULT_CHARTER_VALUE, "equivocation": {"days": 1, "forgive": 11, "sanction": "suspend"}}
    gov_case(
        "bad body: a charter forgiving more than 10 equivocations",
        "proposal.open",
        {"payload": {"charter": too_kind}, "title": "x", "type": "amend"},
    )
    gov_case("bad body: member.seen with a field", "member.seen", {"all": True})
    gov_case("bad body: sponsor with extra field", "member.sponsor", {"member": fake_id(2), "why": "x"})

    # Size.
    deep: Any = 1
    for _ in range(9):
        deep = [deep]
    deep_b = codec.encode(deep)
    env_case(
        "too large: body nested 9 deep (body_depth is 8)",
        base(body_hash=domain.body_hash(deep_b), body_size=len(deep_b)),
        "too_large",
        deep_b,
    )
    big_b = codec.encode(b"\x00" * (65536 - 400))
    env = base(body_hash=domain.body_hash(big_b), body_size=len(big_b))
    raw = signed(ka, codec.encode(env), big_b)
    pad = 65537 - len(raw)
    big_b = codec.encode(b"\x00" * (65536 - 400 + pad))
    env = base(body_hash=domain.body_hash(big_b), body_size=len(big_b))
    raw = signed(ka, codec.encode(env), big_b)
    assert len(raw) == 65537, len(raw)
    add("too large: action of 65537 bytes", raw, "too_large")

    # Proofs.
    proofs: list[dict[str, Any]] = []

    def padd(name: str, raw: bytes, code: str = "bogus_proof") -> None:
        proofs.append({"name": name, "hex": raw.hex(), "code": code})

    x, y = sorted((c.b2a.without_body(), c.b2b.without_body()), key=lambda a: a.id)
    padd("the same action twice", codec.encode({"a": x.raw, "b": x.raw}))
    padd("actions in the wrong order (larger id first)", codec.encode({"a": y.raw, "b": x.raw}))
    full = {c.b2a.id: c.b2a, c.b2b.id: c.b2b}
    padd("actions carried with bodies", codec.encode({"a": full[x.id].raw, "b": full[y.id].raw}))
    padd("one action carried with its body", codec.encode({"a": x.raw, "b": full[y.id].raw}))
    pair = sorted((c.a2.without_body(), c.a3.without_body()), key=lambda a: a.id)
    padd("different seq (same author and co-op)", codec.encode({"a": pair[0].raw, "b": pair[1].raw}))
    pair = sorted((c.b1.without_body(), c.a1x.without_body()), key=lambda a: a.id)
    padd("different authors (same co-op and seq)", codec.encode({"a": pair[0].raw, "b": pair[1].raw}))
    pair = sorted((c.a2.without_body(), c.g2a2.without_body()), key=lambda a: a.id)
    padd("different co-ops (same author and seq)", codec.encode({"a": pair[0].raw, "b": pair[1].raw}))
    bad_sig = bytearray(y.sig)
    bad_sig[63] ^= 1
    forged = wire(y.env_bytes, bytes(bad_sig), None)
    padd("an action with a bad signature", codec.encode({"a": x.raw, "b": forged}))
    padd("an action that is not canonical", codec.encode({"a": x.raw, "b": y.raw + b"\xc0"}))
    padd("not a map", codec.encode([x.raw, y.raw]))
    padd("key c instead of b", codec.encode({"a": x.raw, "c": y.raw}))
    padd("one key only", codec.encode({"a": x.raw}))
    padd("b is a str", codec.encode({"a": x.raw, "b": "x"}))
    padd("not canonical: keys unsorted", raw_map([(mp_str("b"), codec.encode(y.raw)), (mp_str("a"), codec.encode(x.raw))]), "not_canonical")
    padd("too large: three keys (a proof map holds 2)", codec.encode({"a": x.raw, "b": y.raw, "c": b""}), "too_large")
    padd("malformed: truncated", codec.encode({"a": x.raw, "b": y.raw})[:-1], "malformed")
    return {
        "description": (
            "Intrinsically invalid actions (docs/PROTOCOL.md section 5): decoding 'hex' as an action with the default "
            "ActionLimits MUST fail with reject code 'code'. Each vector breaks one rule; every other part is valid and, "
            "where the envelope decodes, signed by its author. proofs: invalid equivocation proofs (section 6); decoding MUST "
            "fail with 'code'."
        ),
        "generator": GENERATOR,
        "actions": out,
        "proofs": proofs,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "vectors")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    chain = Chain()
    write(out, "codec.json", codec_vectors())
    write(out, "keys.json", keys_vectors())
    write(out, "actions.json", actions_vectors(chain))
    write(out, "invalid_actions.json", invalid_actions_vectors(chain))


if __name__ == "__main__":
    main()
