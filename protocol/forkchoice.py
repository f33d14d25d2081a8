"""Fork choice: which action holds each seq of each chain, decided for a group of arrivals.

Theory of operation. A node keeps, per (co-op, author), a chain of actions at seqs 1..head with no
holes, plus *pending* actions above the head waiting for a gap to close. Every node must end up
with the same chains from the same set of actions, whatever the order they arrived in, so the
rule cannot be "first seen wins". It is: **where two actions hold the same seq with the same
prev, the one with the smaller id is kept**, and the other one, with everything built on it, is
*displaced* (kept aside, never lost: it is a signed fact others may have built on, and the pair
is an equivocation proof). A rival that does not share its prev with the kept action is refused
(its branch parts further down, and the walk-back of catch-up finds the seq where it does).

``ChainPlan`` applies that rule to one group of arrivals against a small view of the chains
(their heads, the actions at the seqs the group touches, their pending actions), which the store
reads in a few set-based queries, and records what to write: actions appended, pending ones added
and removed, chains demoted from a seq up, actions displaced, proofs, new co-ops. It is pure: the
store reads, calls ``decide`` for each arrival in (genesis first, co-op, author, seq) order, and
writes the plan in one transaction. ``tests/test_forkchoice.py`` holds it to order independence
without SQLite.

Node policy and store facts enter through hooks: whether a new pending action fits (``room``),
whether a rival that lost is worth keeping as a ghost (``keep_ghost``: bounded per author), and
whether an action's prev is one kept aside (``on_ghost``: then it is on the losing side too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from .action import Action
from .chain import Placement, make_proof, place
from .errors import RejectCode

ChainKey = tuple[bytes, bytes]  # (co-op, author)
Where = tuple[bytes, bytes, int]  # (co-op, author, seq)
NO_HEAD: tuple[int, None] = (0, None)


class Verdict(NamedTuple):
    # A named tuple rather than a frozen dataclass: one is built for every action a node
    # receives, and a tuple is built in a third of the time.
    id: bytes
    status: str  # accepted | known | pending | rejected
    code: RejectCode | None = None
    message: str | None = None
    proof: bytes | None = None  # the equivocation proof this action produced, if any
    fork_below: bool = False  # its prev is not this node's action below it: the chains part further down


@dataclass
class ChainPlan:
    """The decisions for one group, from a view of the chains it touches."""

    heads: dict[ChainKey, tuple[int, bytes | None]]  # each touched chain's head (absent: empty chain)
    occupants: dict[Where, Action]  # stored actions at the seqs the group touches, at or below the head
    pending: dict[ChainKey, dict[int, Action]]  # each touched chain's pending actions by seq
    coops: set[bytes] | frozenset[bytes]  # co-ops whose genesis is stored
    room: Callable[[Action], bool] = lambda a: True  # may this action wait in pending?
    keep_ghost: Callable[[Action], bool] = lambda a: True  # keep a rival that lost at its seq aside as a ghost?
    on_ghost: Callable[[Action], bool] = lambda a: False  # is its prev an action kept aside (so it lost too)?
    appends: list[Action] = field(default_factory=list)
    new_coops: dict[bytes, Action] = field(default_factory=dict)
    dirty_heads: set[ChainKey] = field(default_factory=set)
    new_pending: dict[bytes, Action] = field(default_factory=dict)
    unpended: list[bytes] = field(default_factory=list)  # stored pending rows to delete: promoted, or now in a proof
    demotions: list[Where] = field(default_factory=list)  # (co-op, author, from seq): stored rows leaving the chain
    displaced: list[Action] = field(default_factory=list)  # actions kept aside that never reached the chain table
    proofs: dict[bytes, tuple[bytes, bytes, bytes, int, bytes]] = field(default_factory=dict)  # id -> (id, coop, author, seq, encoding)
    pending_delta: int = 0

    def decide(self, a: Action, at: Where) -> Verdict:
        """Place one arrival, ``at`` = (its co-op, author, seq); the caller has established that
        its id is not stored, pending or displaced already."""
        coop, author, seq = at
        if coop not in self.coops and coop not in self.new_coops and not a.is_genesis:
            return Verdict(a.id, "rejected", RejectCode.UNKNOWN_COOP, "no genesis for this co-op is stored here")
        key = (coop, author)
        head_seq, head_id = self.heads.get(key, NO_HEAD)
        chain_pending = self.pending.setdefault(key, {})
        occupant = self.occupants.get(at)
        waiting = chain_pending.get(seq)  # a pending action already holding this seq
        if occupant is None and seq > head_seq + 1:
            occupant = waiting
        where = place(a, head_seq, head_id, occupant)
        if where is Placement.EQUIVOCATION:
            assert occupant is not None
            proof = self._prove(a, occupant)
            if a.id < occupant.id and a.prev == occupant.prev and not occupant.is_genesis:
                # Every node keeps the fork with the smaller id, so chains converge whichever
                # fork each node saw first. The displaced action and its successors are kept aside.
                if seq > head_seq:
                    del chain_pending[seq]
                    self._unpend(occupant)
                    self.displaced.append(occupant)
                    chain_pending[seq] = a
                    self.new_pending[a.id] = a
                    self.pending_delta += 1
                    return Verdict(a.id, "pending", message="replaces a pending fork with a larger id", proof=proof)
                self._demote(key, seq, a.prev)
                self._append(a, at)
                self._promote(key, chain_pending)
                return Verdict(a.id, "accepted", message="replaces the fork with the larger id", proof=proof)
            if a.prev == occupant.prev and self.keep_ghost(a):
                self.displaced.append(a)  # it loses at this seq for good: keep it aside as a ghost
            return Verdict(
                a.id,
                "rejected",
                RejectCode.CHAIN_CONFLICT,
                f"seq {seq} of this author is already taken: equivocation proven",
                proof,
                fork_below=a.prev != occupant.prev,
            )
        # At head + 1 a pending action can only be one whose prev did not link (see _promote): a
        # fork waiting for its rival. This action is that rival, so the fork is proven either way.
        proof = self._prove(a, waiting) if waiting is not None else None
        if where is Placement.FORK:
            if self.on_ghost(a):
                self.displaced.append(a)  # built on a displaced action: the losing side, for good
            return Verdict(
                a.id,
                "rejected",
                RejectCode.CHAIN_CONFLICT,
                f"prev does not match this author's action at seq {seq - 1}",
                proof,
                fork_below=True,
            )
        if where is Placement.PENDING:
            if not self.room(a):
                return Verdict(
                    a.id, "rejected", RejectCode.CHAIN_GAP, f"seq {head_seq + 1} is missing and there is no room to hold this action"
                )
            chain_pending[seq] = a
            self.new_pending[a.id] = a
            self.pending_delta += 1
            return Verdict(a.id, "pending", message=f"waiting for seq {head_seq + 1}")
        if waiting is not None:
            del chain_pending[seq]
            self._unpend(waiting)  # it lives on in the proof
        self._append(a, at)
        if chain_pending:
            self._promote(key, chain_pending)
        return Verdict(a.id, "accepted", proof=proof)

    def _demote(self, key: ChainKey, seq: int, new_prev: bytes | None) -> None:
        """Move ``key``'s chain from ``seq`` up out of the chain: stored rows (written by the store)
        and any appended earlier in this group right here."""
        coop, author = key
        kept = []
        for x in self.appends:
            if x.coop == coop and x.author == author and x.seq >= seq:
                self.displaced.append(x)
            else:
                kept.append(x)
        self.appends = kept
        self.demotions.append((coop, author, seq))
        for q in [q for (c, au, q) in self.occupants if c == coop and au == author and q >= seq]:
            del self.occupants[(coop, author, q)]
        self.heads[key] = (seq - 1, new_prev)
        self.dirty_heads.add(key)

    def _prove(self, a: Action, other: Action) -> bytes:
        proof = make_proof(a, other)
        self.proofs[proof.id] = (proof.id, proof.coop, proof.author, proof.seq, proof.encode())
        return proof.id

    def _promote(self, key: ChainKey, chain_pending: dict[int, Action]) -> None:
        """The gap below pending successors may just have closed: append them in order."""
        while True:
            head_seq, head_id = self.heads[key]
            nxt = chain_pending.get(head_seq + 1)
            if nxt is None or nxt.prev != head_id:
                # A successor that does not link stays pending: it forks the chain, and is proven
                # the moment its rival at the same seq arrives, whichever of the two came first.
                return
            del chain_pending[head_seq + 1]
            self._unpend(nxt)
            self._append(nxt, (*key, head_seq + 1))

    def _append(self, a: Action, at: Where) -> None:
        key = (at[0], at[1])
        self.appends.append(a)
        self.heads[key] = (at[2], a.id)
        self.dirty_heads.add(key)
        self.occupants[at] = a
        if a.env.coop is None:
            self.new_coops[a.id] = a

    def _unpend(self, a: Action) -> None:
        self.pending_delta -= 1
        if self.new_pending.pop(a.id, None) is None:
            self.unpended.append(a.id)
