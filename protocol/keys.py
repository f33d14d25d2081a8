"""Ed25519 keys and the signature acceptance policy.

Theory of operation. Ed25519 libraries disagree at the edges: whether a public key or R may be a
small-order point, whether non-canonical point encodings (y >= p, or x = 0 with the sign bit
set) are accepted, whether S >= L is. A federation in which one node accepts a signature that
another refuses does not converge, so the policy is pinned here, in front of any library, and by
test vectors:

1. The public key A is 32 bytes, a canonical encoding (y < p; sign bit clear when x = 0), a
   point on the curve, and not one of the 8 points of small order.
2. The signature is 64 bytes R || S. R is a canonical encoding and not of small order; S < L.
3. The equation checked is the cofactorless one, encode([S]B - [k]A) == R with
   k = SHA-512(R || A || M) mod L, which is what libsodium and OpenSSL both compute once 1 and 2
   hold.

Signing uses ``cryptography`` (OpenSSL), which also owns key files. Verification, the hot path,
uses libsodium through PyNaCl, which is about 1.5x faster here. Ed25519 signing is
deterministic, so both produce identical signatures; a test checks that they agree.
"""

from __future__ import annotations

from functools import lru_cache

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from .errors import RejectCode, ValidationError

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, P) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)
_Y_MASK = (1 << 255) - 1

# The 8 points of small order (the torsion subgroup), canonically encoded.
SMALL_ORDER_ENCODINGS: frozenset[bytes] = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    )
)

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def _is_canonical_point_encoding(b: bytes) -> bool:
    y = int.from_bytes(b, "little") & _Y_MASK
    if y >= P:
        return False
    # x = 0 exactly when y = +-1; a set sign bit would then encode "-0".
    return not (b[31] & 0x80 and y in (1, P - 1))


def _is_on_curve(b: bytes) -> bool:
    y = int.from_bytes(b, "little") & _Y_MASK
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, P) % P
    if x2 == 0:
        return True
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P == 0:
        return True
    x = x * _SQRT_M1 % P
    return (x * x - x2) % P == 0


def _encoding_problem(pk: bytes) -> str | None:
    if len(pk) != PUBLIC_KEY_BYTES:
        return f"public key must be {PUBLIC_KEY_BYTES} bytes, got {len(pk)}"
    if not _is_canonical_point_encoding(pk):
        return "public key is not a canonical point encoding"
    if pk in SMALL_ORDER_ENCODINGS:
        return "public key is a point of small order"
    return None


def check_key_encoding(pk: bytes) -> None:
    """The cheap part of the key policy (length, canonical encoding, small order): ``bad_key``.

    Whether the point is on the curve costs a modular square root in Python (~0.4 ms); ``verify``
    learns it for free from libsodium and only computes it to name a failure.
    """
    problem = _known_encoding_problem(bytes(pk))
    if problem is not None:
        raise ValidationError(RejectCode.BAD_KEY, problem)


# Asked for every action decoded; a node hears from the same members again and again.
_known_encoding_problem = lru_cache(maxsize=4096)(_encoding_problem)


@lru_cache(maxsize=4096)
def _public_key_problem(pk: bytes) -> str | None:
    return _encoding_problem(pk) or (None if _is_on_curve(pk) else "public key is not a point on the curve")


def check_public_key(pk: bytes) -> None:
    """Raise ``ValidationError(bad_key)`` unless ``pk`` is an acceptable Ed25519 public key."""
    problem = _public_key_problem(bytes(pk))
    if problem is not None:
        raise ValidationError(RejectCode.BAD_KEY, problem)


def verify(pk: bytes, message: bytes, sig: bytes) -> None:
    """Strictly verify; raise ``ValidationError`` (bad_key or bad_signature) on failure."""
    pk, sig = bytes(pk), bytes(sig)
    check_key_encoding(pk)
    verify_checked_key(pk, message, sig)


def verify_checked_key(pk: bytes, message: bytes, sig: bytes) -> None:
    """``verify`` for bytes ``pk`` and ``sig`` where ``check_key_encoding(pk)`` has already passed
    (decoding an action checks its author's key with the rest of the envelope)."""
    if len(sig) != SIGNATURE_BYTES:
        raise ValidationError(RejectCode.BAD_SIGNATURE, f"signature must be {SIGNATURE_BYTES} bytes")
    r = sig[:32]
    if not _is_canonical_point_encoding(r) or r in SMALL_ORDER_ENCODINGS:
        raise ValidationError(RejectCode.BAD_SIGNATURE, "signature R is non-canonical or of small order")
    if int.from_bytes(sig[32:], "little") >= L:
        raise ValidationError(RejectCode.BAD_SIGNATURE, "signature S is not reduced (S >= L)")
    try:
        crypto_sign_open(sig + message, pk)
    except BadSignatureError:
        # libsodium also fails for a key that is not on the curve: name which it was.
        check_public_key(pk)
        raise ValidationError(RejectCode.BAD_SIGNATURE, "signature does not verify") from None


class SigningKey:
    """An Ed25519 private key. Holds the 32-byte seed; never serialised by this class."""

    __slots__ = ("_sk", "public_key")

    def __init__(self, seed: bytes) -> None:
        # Imported here: validation workers verify with libsodium and never sign, and OpenSSL's
        # bindings would add ~10 MB to each of them.
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        self._sk = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self.public_key: bytes = self._sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        return cls(seed)

    def seed(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        return self._sk.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, message: bytes) -> bytes:
        return self._sk.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()})"
