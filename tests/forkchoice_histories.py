"""Forked histories shared by the fork-choice tests (pure model and SQLite store)."""

from __future__ import annotations

import hashlib

from protocol import Action, SigningKey, sign_action, sign_genesis

TS = 1_700_000_000_000
FOUNDER = SigningKey(hashlib.sha256(b"forkchoice founder").digest())
GENESIS = sign_genesis(FOUNDER, ts=TS, body={"name": "Fork Co-op"})
COOP = GENESIS.id
KEYS = [SigningKey(hashlib.sha256(b"forkchoice member %d" % i).digest()) for i in range(3)]


def branch(key: SigningKey, after: Action | None, length: int, tag: str) -> list[Action]:
    out: list[Action] = []
    prev = after
    for _ in range(length):
        seq = prev.seq + 1 if prev is not None else 1
        prev = sign_action(
            key, coop=COOP, seq=seq, prev=prev.id if prev else None, ts=TS + seq, kind="note.text", body={"t": tag, "s": seq}
        )
        out.append(prev)
    return out


def history(i: int) -> list[Action]:
    """Member i: a trunk, then two rival branches from the same point (an equivocation)."""
    key = KEYS[i]
    trunk = branch(key, None, 2, f"trunk{i}")
    left = branch(key, trunk[-1], 3, f"left{i}")
    right = branch(key, trunk[-1], 2, f"right{i}")
    return trunk + left + right


HISTORIES = [history(i) for i in range(len(KEYS))]
# Harder shapes for the order property: a fork at seq 1, and three branches from one point, one
# of which forks again further up.
K3, K4 = (SigningKey(hashlib.sha256(b"forkchoice member %d" % i).digest()) for i in (3, 4))
SEQ1_FORK = branch(K3, None, 3, "a") + branch(K3, None, 2, "b")
_t = branch(K4, None, 1, "t")
_x = branch(K4, _t[-1], 3, "x")
THREE_WAY = _t + _x + branch(K4, _t[-1], 2, "y") + branch(K4, _t[-1], 1, "z") + branch(K4, _x[0], 2, "x2")
ALL = [a for h in HISTORIES for a in h] + SEQ1_FORK + THREE_WAY
