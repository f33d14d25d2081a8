"""protocol/keys.py: the Ed25519 signature acceptance policy.

The edge cases are built with an independent pure-Python implementation of Edwards25519
arithmetic below, so the policy is checked against the curve itself, not against its own code.
"""

from __future__ import annotations

import hashlib

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.exceptions import BadSignatureError

from protocol import keys
from protocol.errors import RejectCode, ValidationError
from protocol.keys import SMALL_ORDER_ENCODINGS, SigningKey, check_public_key, verify

# ---------------------------------------------------------------------------------------------
# Independent Edwards25519 arithmetic (affine, slow and obvious): -x^2 + y^2 = 1 + d x^2 y^2
# ---------------------------------------------------------------------------------------------

Q = 2**255 - 19
ORDER = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, Q - 2, Q)) % Q
SQRT_M1 = pow(2, (Q - 1) // 4, Q)

Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def inv(x: int) -> int:
    return pow(x, Q - 2, Q)


def add(p1: Point, p2: Point) -> Point:
    x1, y1 = p1
    x2, y2 = p2
    t = D * x1 * x2 * y1 * y2 % Q
    return ((x1 * y2 + x2 * y1) * inv(1 + t) % Q, (y1 * y2 + x1 * x2) * inv(1 - t) % Q)


def neg(p: Point) -> Point:
    return (-p[0] % Q, p[1])


Extended = tuple[int, int, int, int]


def _ext_add(p1: Extended, p2: Extended) -> Extended:
    """RFC 8032 section 5.1.4 addition in extended coordinates (complete, so it also doubles)."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % Q
    b = (y1 + x1) * (y2 + x2) % Q
    c = t1 * 2 * D * t2 % Q
    d = z1 * 2 * z2 % Q
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % Q, g * h % Q, f * g % Q, e * h % Q)


def mul(k: int, p: Point) -> Point:
    """[k]p by double-and-add; affine in and out, extended coordinates inside."""
    result: Extended = (0, 1, 1, 0)
    acc: Extended = (p[0], p[1], 1, p[0] * p[1] % Q)
    while k:
        if k & 1:
            result = _ext_add(result, acc)
        acc = _ext_add(acc, acc)
        k >>= 1
    x, y, z, _ = result
    zi = inv(z)
    return (x * zi % Q, y * zi % Q)


def on_curve(p: Point) -> bool:
    x, y = p
    return (-x * x + y * y - 1 - D * x * x * y * y) % Q == 0


def x_for(y: int, sign: int) -> int | None:
    """The x with the given parity for ``y``, or None if there is no point (or it would be "-0")."""
    x2 = (y * y - 1) * inv(D * y * y + 1) % Q
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (Q + 3) // 8, Q)
    if (x * x - x2) % Q:
        x = x * SQRT_M1 % Q
    if (x * x - x2) % Q:
        return None
    return x if x & 1 == sign else Q - x


def encode_point(p: Point) -> bytes:
    x, y = p
    return (y | (x & 1) << 255).to_bytes(32, "little")


def decode_point(b: bytes) -> Point | None:
    """Strict RFC 8032 decoding: canonical y, a real square root, no "-0"."""
    n = int.from_bytes(b, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= Q:
        return None
    x = x_for(y, sign)
    return None if x is None else (x, y)


BASE: Point = (x_for(4 * inv(5) % Q, 0) or 0, 4 * inv(5) % Q)


def scalar_from_seed(seed: bytes) -> int:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def cofactorless_equation_holds(pk: bytes, msg: bytes, sig: bytes) -> bool:
    """encode([S]B - [k]A) == R, with no policy checks at all (what a lax verifier computes)."""
    a = decode_point(pk)
    assert a is not None
    k = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % ORDER
    s = int.from_bytes(sig[32:], "little")
    return encode_point(add(mul(s, BASE), neg(mul(k, a)))) == sig[:32]


def order8_torsion_point() -> Point:
    """A point of exact order 8, found as [L]P for some curve point P (y = 2, 3, ...)."""
    y = 2
    while True:
        x = x_for(y, 0)
        if x is not None:
            t = mul(ORDER, (x, y))
            if mul(4, t) != IDENTITY:
                assert mul(8, t) == IDENTITY
                return t
        y += 1


TORSION: list[Point] = [mul(k, order8_torsion_point()) for k in range(8)]

SEED = bytes(range(32))
KEY = SigningKey(SEED)
MSG = b"coopnet test message \x00\xff"
SIG = KEY.sign(MSG)


def code_of(pk: bytes, msg: bytes, sig: bytes) -> RejectCode | None:
    try:
        verify(pk, msg, sig)
    except ValidationError as e:
        return e.code
    return None


def key_code(pk: bytes) -> RejectCode | None:
    try:
        check_public_key(pk)
    except ValidationError as e:
        return e.code
    return None


# ---------------------------------------------------------------------------------------------
# The reference arithmetic itself
# ---------------------------------------------------------------------------------------------


def test_reference_arithmetic_matches_the_libraries() -> None:
    assert encode_point(BASE) == bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")
    assert on_curve(BASE)
    assert mul(ORDER, BASE) == IDENTITY
    assert encode_point(mul(scalar_from_seed(SEED), BASE)) == KEY.public_key
    assert cofactorless_equation_holds(KEY.public_key, MSG, SIG)
    assert not cofactorless_equation_holds(KEY.public_key, MSG + b"!", SIG)


# ---------------------------------------------------------------------------------------------
# Valid signatures
# ---------------------------------------------------------------------------------------------


def test_valid_signature_verifies() -> None:
    check_public_key(KEY.public_key)
    verify(KEY.public_key, MSG, SIG)
    verify(KEY.public_key, b"", KEY.sign(b""))


def test_rfc8032_test_vector_1() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    pk = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    key = SigningKey(seed)
    assert key.public_key == pk
    assert key.sign(b"") == sig
    verify(pk, b"", sig)


def test_signing_key_round_trips_seed() -> None:
    assert SigningKey.from_seed(SEED).seed() == SEED
    assert SigningKey(SEED).public_key == KEY.public_key
    assert "public_key=" in repr(KEY) and SEED.hex() not in repr(KEY)
    for bad in (b"", SEED[:31], SEED + b"\x00"):
        with pytest.raises(ValueError):
            SigningKey(bad)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200))
def test_openssl_and_libsodium_sign_identically(seed: bytes, msg: bytes) -> None:
    ours = SigningKey(seed)
    theirs = nacl.signing.SigningKey(seed)
    assert ours.public_key == bytes(theirs.verify_key)
    sig = ours.sign(msg)
    assert sig == theirs.sign(msg).signature
    verify(ours.public_key, msg, sig)


# ---------------------------------------------------------------------------------------------
# Public key policy
# ---------------------------------------------------------------------------------------------


def test_small_order_set_is_exactly_the_torsion_subgroup() -> None:
    encodings = {encode_point(t) for t in TORSION}
    assert len(encodings) == 8
    for t in TORSION:
        assert on_curve(t)
        assert mul(8, t) == IDENTITY
    assert encodings == set(SMALL_ORDER_ENCODINGS)
    assert IDENTITY in TORSION and (0, Q - 1) in TORSION


@pytest.mark.parametrize("pk", sorted(SMALL_ORDER_ENCODINGS), ids=lambda b: b.hex()[:8] + ".." + b.hex()[-2:])
def test_small_order_public_keys_rejected(pk: bytes) -> None:
    assert decode_point(pk) is not None  # a canonical encoding of a real point: only the order is wrong
    assert key_code(pk) is RejectCode.BAD_KEY
    assert code_of(pk, MSG, SIG) is RejectCode.BAD_KEY


def test_mixed_order_public_key_is_accepted() -> None:
    """The policy refuses the 8 small-order points, not keys with a torsion component."""
    a = decode_point(KEY.public_key)
    assert a is not None
    for t in TORSION[1:]:
        mixed = encode_point(add(a, t))
        assert mixed not in SMALL_ORDER_ENCODINGS
        check_public_key(mixed)


@pytest.mark.parametrize("k", range(19))
def test_non_canonical_y_rejected(k: int) -> None:
    """y = p + k (k < 19) fits in 255 bits and names the same y as k: never accepted."""
    for sign in (0, 1):
        pk = ((Q + k) | sign << 255).to_bytes(32, "little")
        assert key_code(pk) is RejectCode.BAD_KEY
        assert code_of(pk, MSG, SIG) is RejectCode.BAD_KEY


def test_some_non_canonical_y_names_a_real_prime_order_point() -> None:
    """So the rejection above is the canonicality rule, not merely the curve equation."""
    found = []
    for k in range(19):
        x = x_for(k, 0)
        if x is not None and mul(8, (x, k)) != IDENTITY:
            found.append(k)
            assert key_code((Q + k).to_bytes(32, "little")) is RejectCode.BAD_KEY
            check_public_key(k.to_bytes(32, "little"))  # the canonical twin is fine
    assert found


@pytest.mark.parametrize("y", [1, Q - 1])
def test_x_zero_with_sign_bit_rejected(y: int) -> None:
    pk = (y | 1 << 255).to_bytes(32, "little")
    assert pk not in SMALL_ORDER_ENCODINGS
    assert decode_point(pk) is None
    assert key_code(pk) is RejectCode.BAD_KEY


def test_point_not_on_curve_rejected() -> None:
    y = 2
    while x_for(y, 0) is not None or x_for(y, 1) is not None:
        y += 1
    for sign in (0, 1):
        pk = (y | sign << 255).to_bytes(32, "little")
        assert pk not in SMALL_ORDER_ENCODINGS and y < Q
        assert key_code(pk) is RejectCode.BAD_KEY
        assert code_of(pk, MSG, SIG) is RejectCode.BAD_KEY


@pytest.mark.parametrize("n", [0, 1, 31, 33, 64])
def test_public_key_wrong_length_rejected(n: int) -> None:
    assert key_code(KEY.public_key[:n] + b"\x01" * max(0, n - 32)) is RejectCode.BAD_KEY


def test_key_policy_matches_reference_for_small_y() -> None:
    """Accept exactly the canonical on-curve encodings that are not of small order."""
    for y in list(range(0, 250)) + list(range(Q - 60, 2**255)):
        for sign in (0, 1):
            pk = (y | sign << 255).to_bytes(32, "little")
            p = decode_point(pk)
            expected_ok = p is not None and mul(8, p) != IDENTITY
            assert (key_code(pk) is None) == expected_ok, (y, sign)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(min_size=32, max_size=32))
def test_key_policy_matches_reference_on_random_bytes(pk: bytes) -> None:
    p = decode_point(pk)
    expected_ok = p is not None and mul(8, p) != IDENTITY
    assert (key_code(pk) is None) == expected_ok


# ---------------------------------------------------------------------------------------------
# Signature policy
# ---------------------------------------------------------------------------------------------


def test_unreduced_s_rejected_although_equation_holds() -> None:
    s = int.from_bytes(SIG[32:], "little")
    s_plus_l = s + ORDER
    assert s_plus_l < 2**256
    sig = SIG[:32] + s_plus_l.to_bytes(32, "little")
    assert cofactorless_equation_holds(KEY.public_key, MSG, sig)  # a lax verifier would accept it
    assert code_of(KEY.public_key, MSG, sig) is RejectCode.BAD_SIGNATURE


@pytest.mark.parametrize("s", [ORDER, ORDER + 1, 2**253, 2**256 - 1])
def test_s_at_or_above_l_rejected(s: int) -> None:
    assert code_of(KEY.public_key, MSG, SIG[:32] + s.to_bytes(32, "little")) is RejectCode.BAD_SIGNATURE


@pytest.mark.parametrize("r", sorted(SMALL_ORDER_ENCODINGS), ids=lambda b: b.hex()[:8] + ".." + b.hex()[-2:])
def test_small_order_r_rejected(r: bytes) -> None:
    assert code_of(KEY.public_key, MSG, r + SIG[32:]) is RejectCode.BAD_SIGNATURE
    assert code_of(KEY.public_key, MSG, r + bytes(32)) is RejectCode.BAD_SIGNATURE


def test_non_canonical_r_rejected() -> None:
    for r_int in (Q, Q + 1, Q + 18, 1 | 1 << 255, (Q - 1) | 1 << 255):
        assert code_of(KEY.public_key, MSG, r_int.to_bytes(32, "little") + SIG[32:]) is RejectCode.BAD_SIGNATURE


def test_classic_identity_forgery_rejected() -> None:
    """A = identity, R = identity, S = 0 satisfies the equation for every message."""
    identity = encode_point(IDENTITY)
    forged = identity + bytes(32)
    for msg in (b"", MSG, b"transfer everything"):
        assert cofactorless_equation_holds(identity, msg, forged)
        assert code_of(identity, msg, forged) is RejectCode.BAD_KEY


def test_small_order_key_forgery_rejected() -> None:
    """With A of small order, [k]A is a torsion point, so R = -[k]A with S = 0 verifies by the
    cofactorless equation; search messages until that happens and check the policy still refuses."""
    torsion_encodings = {encode_point(t) for t in TORSION}
    a_point = TORSION[1]  # exact order 8
    pk = encode_point(a_point)
    hits = 0
    for i in range(16):
        msg = b"forged %d" % i
        for r in sorted(torsion_encodings - {encode_point(IDENTITY)}):
            sig = r + bytes(32)
            if cofactorless_equation_holds(pk, msg, sig):
                hits += 1
                assert code_of(pk, msg, sig) is RejectCode.BAD_KEY
    assert hits > 0


def test_signature_by_another_key_rejected() -> None:
    other = SigningKey(bytes([7]) * 32)
    assert code_of(KEY.public_key, MSG, other.sign(MSG)) is RejectCode.BAD_SIGNATURE
    assert code_of(other.public_key, MSG, SIG) is RejectCode.BAD_SIGNATURE


@pytest.mark.parametrize("n", [0, 32, 63, 65, 128])
def test_signature_wrong_length_rejected(n: int) -> None:
    sig = (SIG * 2)[:n]
    assert code_of(KEY.public_key, MSG, sig) is RejectCode.BAD_SIGNATURE


def test_every_flipped_bit_in_message_signature_or_key_fails() -> None:
    for i in range(len(MSG) * 8):
        msg = bytearray(MSG)
        msg[i // 8] ^= 1 << (i % 8)
        assert code_of(KEY.public_key, bytes(msg), SIG) is RejectCode.BAD_SIGNATURE, i
    for i in range(len(SIG) * 8):
        sig = bytearray(SIG)
        sig[i // 8] ^= 1 << (i % 8)
        assert code_of(KEY.public_key, MSG, bytes(sig)) is RejectCode.BAD_SIGNATURE, i
    for i in range(len(KEY.public_key) * 8):
        pk = bytearray(KEY.public_key)
        pk[i // 8] ^= 1 << (i % 8)
        assert code_of(bytes(pk), MSG, SIG) in (RejectCode.BAD_KEY, RejectCode.BAD_SIGNATURE), i


def test_message_extension_and_truncation_fail() -> None:
    assert code_of(KEY.public_key, MSG + b"\x00", SIG) is RejectCode.BAD_SIGNATURE
    assert code_of(KEY.public_key, MSG[:-1], SIG) is RejectCode.BAD_SIGNATURE
    assert code_of(KEY.public_key, b"", SIG) is RejectCode.BAD_SIGNATURE


def test_module_constants_match_reference() -> None:
    assert keys.P == Q
    assert keys.L == ORDER


# ---------------------------------------------------------------------------------------------
# The policy alone: with the library replaced by a lax verifier, the edge cases are still refused
# ---------------------------------------------------------------------------------------------


def lax_decode(b: bytes) -> Point | None:
    """A lenient decoder: y reduced mod p, "-0" allowed (what permissive libraries do)."""
    n = int.from_bytes(b, "little")
    y, sign = (n & ((1 << 255) - 1)) % Q, n >> 255
    x = x_for(y, sign) if (y * y - 1) % Q else 0
    return None if x is None else (x, y)


class LaxLibrary:
    """Stands in for crypto_sign_open: cofactorless equation only, no encoding or order checks."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, signed: bytes, pk: bytes) -> bytes:
        self.calls += 1
        sig, msg = signed[:64], signed[64:]
        a, r = lax_decode(pk), lax_decode(sig[:32])
        if a is None or r is None:
            raise BadSignatureError("undecodable")
        k = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % ORDER
        s = int.from_bytes(sig[32:], "little")
        if add(mul(s, BASE), neg(mul(k, a))) != r:
            raise BadSignatureError("equation")
        return msg


@pytest.fixture
def lax(monkeypatch: pytest.MonkeyPatch) -> LaxLibrary:
    library = LaxLibrary()
    monkeypatch.setattr(keys, "crypto_sign_open", library)
    return library


def test_lax_library_control(lax: LaxLibrary) -> None:
    verify(KEY.public_key, MSG, SIG)
    assert lax.calls == 1
    assert code_of(KEY.public_key, MSG + b"!", SIG) is RejectCode.BAD_SIGNATURE
    assert lax.calls == 2


def test_policy_alone_refuses_edge_cases(lax: LaxLibrary) -> None:
    identity = encode_point(IDENTITY)
    s_plus_l = SIG[:32] + (int.from_bytes(SIG[32:], "little") + ORDER).to_bytes(32, "little")
    cases = [
        (identity, MSG, identity + bytes(32), RejectCode.BAD_KEY),  # classic forgery
        ((1 + Q).to_bytes(32, "little"), MSG, identity + bytes(32), RejectCode.BAD_KEY),  # identity as y = p + 1
        ((1 | 1 << 255).to_bytes(32, "little"), MSG, identity + bytes(32), RejectCode.BAD_KEY),  # identity as "-0"
        (KEY.public_key, MSG, s_plus_l, RejectCode.BAD_SIGNATURE),  # S not reduced
    ]
    for pk, msg, sig, code in cases:
        assert lax(sig + msg, pk) == msg  # the lax library would accept every one of these
        calls = lax.calls
        assert code_of(pk, msg, sig) is code
        assert lax.calls == calls, "the policy must refuse before the library is asked"


def mixed_key_signatures(r_candidates: list[bytes], want: Point | None, count: int) -> list[tuple[bytes, bytes, bytes]]:
    """Signatures (pk, msg, sig) that satisfy the cofactorless equation for the mixed-order key
    A' = A + T8 (T8 of order 8, A = [a]B with a known), with S = k*a: then [S]B - [k]A' = -[k]T8,
    which equals R (or ``want``, if given) whenever k mod 8 lands right. Search messages for that."""
    a_scalar = scalar_from_seed(SEED)
    a = decode_point(KEY.public_key)
    assert a is not None
    t8 = TORSION[1]
    pk = encode_point(add(a, t8))
    found = []
    for i in range(512):
        msg = b"mixed-order %d" % i
        for r in r_candidates:
            k = int.from_bytes(hashlib.sha512(r + pk + msg).digest(), "little") % ORDER
            if neg(mul(k % 8, t8)) == (want if want is not None else lax_decode(r)):
                found.append((pk, msg, r + (k * a_scalar % ORDER).to_bytes(32, "little")))
        if len(found) >= count:
            break
    return found


def test_policy_alone_refuses_small_order_r(lax: LaxLibrary) -> None:
    small = [encode_point(t) for t in TORSION[1:]]
    found = mixed_key_signatures(small, None, 3)
    assert len(found) == 3
    for pk, msg, sig in found:
        check_public_key(pk)  # a mixed-order key is acceptable in itself
        assert lax(sig + msg, pk) == msg  # a lax library accepts the small-order R
        calls = lax.calls
        assert code_of(pk, msg, sig) is RejectCode.BAD_SIGNATURE
        assert lax.calls == calls, "the policy must refuse before the library is asked"


def test_policy_alone_refuses_non_canonical_r(lax: LaxLibrary) -> None:
    """R = the identity, spelt y = p + 1 or as "-0": valid for the lax library when k = 0 mod 8."""
    spellings = [(1 + Q).to_bytes(32, "little"), (1 | 1 << 255).to_bytes(32, "little"), (1 + Q | 1 << 255).to_bytes(32, "little")]
    found = mixed_key_signatures(spellings, IDENTITY, 3)
    assert len(found) == 3
    for pk, msg, sig in found:
        assert lax(sig + msg, pk) == msg
        calls = lax.calls
        assert code_of(pk, msg, sig) is RejectCode.BAD_SIGNATURE
        assert lax.calls == calls
