"""Every byte string that is signed or hashed is built here, each behind its own domain tag.

A tag is ASCII, names the protocol, the version and the purpose, and ends in a zero byte, so no
string signed for one purpose can be replayed as another (an action signature is never a valid
peer-request signature, an action id never collides with a proof id by construction).
"""

from __future__ import annotations

import hashlib

ACTION_SIG = b"coopnet/v1/action-sig\x00"
ACTION_ID = b"coopnet/v1/action-id\x00"
BODY_HASH = b"coopnet/v1/body\x00"
PROOF_ID = b"coopnet/v1/equivocation\x00"


def action_signing_input(env_bytes: bytes) -> bytes:
    return ACTION_SIG + env_bytes


def action_id(env_bytes: bytes) -> bytes:
    return hashlib.sha256(ACTION_ID + env_bytes).digest()


def body_hash(body_bytes: bytes) -> bytes:
    return hashlib.sha256(BODY_HASH + body_bytes).digest()


def proof_id(id_a: bytes, id_b: bytes) -> bytes:
    lo, hi = sorted((id_a, id_b))
    return hashlib.sha256(PROOF_ID + lo + hi).digest()
