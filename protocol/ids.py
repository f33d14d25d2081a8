"""The one textual form of every 32-byte identifier.

``<prefix>_<base32>``: the prefix names what the bytes are, so a member id is never mistaken for
an action id; the rest is the 32 bytes in RFC 4648 base32, lower case, without padding (52
characters, the last of which carries one data bit and four zero bits). Parsing is strict: the
wrong prefix, upper case, padding, or non-zero trailing bits are errors, so each id has exactly
one text. On the wire (msgpack) ids are raw 32-byte bin values; text is for people, URLs and JSON.

A co-op id is the id of its genesis action: ``coop_X`` and ``act_X`` name the same 32 bytes.
"""

from __future__ import annotations

import base64
from enum import StrEnum

from .errors import RejectCode, ValidationError

ID_BYTES = 32
_TEXT_LEN = 52
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
# Two base32 characters per 10 bits: 32 bytes plus 4 zero bits are 26 such pairs. Every result
# in an API answer carries ids, and the stdlib encoder costs 3x as much.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(250, -1, -10))


def _b32(raw: bytes) -> str:
    n = int.from_bytes(raw, "big") << 4
    return "".join([_PAIRS[(n >> s) & 1023] for s in _SHIFTS])


class IdKind(StrEnum):
    MEMBER = "mem"
    NODE = "node"
    COOP = "coop"
    ACTION = "act"
    PROOF = "eqv"


def format_id(kind: IdKind, raw: bytes) -> str:
    if len(raw) != ID_BYTES:
        raise ValueError(f"an id is {ID_BYTES} bytes, got {len(raw)}")
    return f"{kind.value}_{_b32(raw)}"


def parse_id(kind: IdKind, text: str) -> bytes:
    """Parse the text form of a ``kind`` id; raise ``ValidationError(bad_id)`` if it is not one."""
    prefix = kind.value + "_"
    if not isinstance(text, str) or not text.startswith(prefix):
        shown = text if isinstance(text, str) else type(text).__name__
        raise ValidationError(RejectCode.BAD_ID, f"{str(shown)[:80]!r} is not a {kind.name.lower()} id (expected {prefix}...)")
    body = text[len(prefix) :]
    if len(body) != _TEXT_LEN or not body.isascii() or body != body.lower():
        raise ValidationError(RejectCode.BAD_ID, f"{text[:80]!r}: the part after {prefix} must be 52 lower-case base32 characters")
    try:
        raw = base64.b32decode(body.upper() + "====")
    except ValueError:
        raise ValidationError(RejectCode.BAD_ID, f"{text[:80]!r} is not valid base32") from None
    if format_id(kind, raw) != text:
        raise ValidationError(RejectCode.BAD_ID, f"{text[:80]!r} is not the canonical text of an id")
    return raw


def member_id(raw: bytes) -> str:
    return format_id(IdKind.MEMBER, raw)


def node_id(raw: bytes) -> str:
    return format_id(IdKind.NODE, raw)


def coop_id(raw: bytes) -> str:
    return format_id(IdKind.COOP, raw)


def action_id(raw: bytes) -> str:
    return format_id(IdKind.ACTION, raw)


def proof_id(raw: bytes) -> str:
    return format_id(IdKind.PROOF, raw)
