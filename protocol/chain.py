"""Per-author chains and equivocation proofs.

Each author's actions within one co-op form a chain: seq 1, 2, 3 ..., each ``prev`` naming the
id of the action one seq below. ``place`` decides, from the chain's current head and whatever
already occupies the action's seq, where a new action goes; the store supplies those two facts
and applies the decision in its transaction.

Two validly signed actions with the same co-op, author and seq but different ids prove that the
author forked their chain. Such a pair is an ``EquivocationProof``: it encodes to
``{"a": bin, "b": bin}`` (the two actions without bodies, ``a`` the one with the smaller id), and
``decode_proof`` re-checks everything, so a proof received from anyone can be trusted only as far
as it verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from . import codec, domain
from .action import Action, decode_action
from .errors import ProtocolError, RejectCode, ValidationError
from .limits import DEFAULT_ACTION_LIMITS, ActionLimits, DecodeLimits


class Placement(StrEnum):
    APPEND = "append"  # extends the head: store it, it becomes the new head
    PENDING = "pending"  # a gap below it: hold it until its predecessor arrives
    EQUIVOCATION = "equivocation"  # its seq is taken by a different action: a proven fork
    FORK = "fork"  # it extends the chain from an action we do not hold at seq - 1


def place(action: Action, head_seq: int, head_id: bytes | None, occupant: bytes | None) -> Placement:
    """Where ``action`` goes, given its chain's head and the id already at its seq (if any).

    The caller has already established that ``action.id`` itself is not stored.
    """
    if occupant is not None:
        return Placement.EQUIVOCATION
    if action.seq <= head_seq:
        # A seq at or below the head is always occupied; an empty one means a broken store.
        raise AssertionError("chain below head has a hole")
    if action.seq > head_seq + 1:
        return Placement.PENDING
    if action.prev != head_id:  # seq 1 has prev None and an empty chain has head_id None
        return Placement.FORK
    return Placement.APPEND


@dataclass(frozen=True, slots=True)
class EquivocationProof:
    a: Action  # the smaller id; both carried without bodies
    b: Action

    @property
    def id(self) -> bytes:
        return domain.proof_id(self.a.id, self.b.id)

    @property
    def coop(self) -> bytes:
        return self.a.coop

    @property
    def author(self) -> bytes:
        return self.a.author

    @property
    def seq(self) -> int:
        return self.a.seq

    def encode(self) -> bytes:
        return codec.encode({"a": self.a.raw, "b": self.b.raw})


def _bogus(message: str) -> ValidationError:
    return ValidationError(RejectCode.BOGUS_PROOF, message)


def make_proof(x: Action, y: Action) -> EquivocationProof:
    """Build the proof that ``x`` and ``y`` fork one chain; raise ``bogus_proof`` if they do not."""
    if x.id == y.id:
        raise _bogus("the same action twice proves nothing")
    if x.coop != y.coop or x.author != y.author or x.seq != y.seq:
        raise _bogus("the two actions are not at the same co-op, author and seq")
    a, b = sorted((x.without_body(), y.without_body()), key=lambda act: act.id)
    return EquivocationProof(a, b)


def decode_proof(data: bytes, limits: ActionLimits = DEFAULT_ACTION_LIMITS) -> EquivocationProof:
    """Decode and fully re-verify a proof, including both signatures."""
    outer = codec.decode(
        data,
        DecodeLimits(
            max_bytes=2 * limits.max_action_bytes + 64,
            max_depth=1,
            max_container_len=2,
            max_str_bytes=4,
            max_bin_bytes=limits.max_action_bytes,
        ),
    )
    if not isinstance(outer, dict) or outer.keys() != {"a", "b"} or not all(type(v) is bytes for v in outer.values()):
        raise _bogus("a proof encodes a map {a: bin, b: bin}")
    try:
        a = decode_action(outer["a"], limits, in_proof=True)
        b = decode_action(outer["b"], limits, in_proof=True)
    except ProtocolError as e:
        raise _bogus(f"an action in the proof is invalid: {e.code.value}: {e.message}") from None
    if a.body is not None or b.body is not None:
        raise _bogus("proof actions are carried without bodies")
    if not a.id < b.id:
        raise _bogus("proof actions must be ordered by id, smaller first" if a.id != b.id else "the same action twice proves nothing")
    return make_proof(a, b)
