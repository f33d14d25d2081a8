"""Fork choice: which action holds each seq of each chain, decided for a group of arrivals.

Theory of operation. A node keeps, per (co-op, author), a *kept chain* of actions at seqs 1..head
with no holes, linked by ``prev``, and a *pool* of the author's other actions it holds: some wait
for a missing predecessor (pending), some lost a fork (kept aside as *ghosts*: signed facts others
may have built on, and evidence). Every node must keep the same chain from the same actions,
whatever order they arrived in, so the rule cannot be "first seen wins". It is a function of the
set of actions held:

    kept(1)   = the genesis, in its own co-op; else the smallest id among seq-1 actions;
    kept(k+1) = the smallest id among actions at seq k+1 whose prev is kept(k); none: the head is k.

Everything else the node holds of that author is in the pool. Two actions at one seq prove an
equivocation; the proof is stored and gossiped.

``ChainPlan`` maintains that rule incrementally for one group of arrivals against a small view of
the chains the group touches (their heads, the kept actions at the seqs it touches, their pools),
which the store reads in a few set-based queries, and records what to write: actions appended to
a chain (new, or taken out of the pool), chains demoted from a seq up (their actions go to the
pool, aside), new pool entries (pending or aside), pool entries taken out, proofs, new co-ops. It
is pure: the store reads, calls ``decide`` for each arrival in (genesis first, co-op, author, seq)
order, and writes the plan in one transaction. ``tests/test_forkchoice.py`` holds it to the rule
above without SQLite, for every delivery order.

One case is not decided from the set alone: an action at head + 1 whose prev is neither the head
nor an action the node holds (its branch parts lower down, at a seq this node has not seen the
rival of). It is refused (``chain_conflict``, ``fork_below``), and catch-up walks back to find
where the branches part; delivered again once the node holds the branch below it, it is placed by
the rule.

Node policy enters through hooks the store passes in: why a new pending action may not wait
(``room``), and whether a losing action is worth keeping aside (``keep_ghost``: bounded per author).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from .action import Action
from .chain import make_proof
from .errors import RejectCode

ChainKey = tuple[bytes, bytes]  # (co-op, author)
Where = tuple[bytes, bytes, int]  # (co-op, author, seq)
NO_HEAD: tuple[int, None] = (0, None)


class Verdict(NamedTuple):
    # A named tuple rather than a frozen dataclass: one is built for every action a node
    # receives, and a tuple is built in a third of the time.
    id: bytes
    status: str  # accepted | known | pending | rejected (and held: the node's store, for unknown authors)
    code: RejectCode | None = None
    message: str | None = None
    proof: bytes | None = None  # the equivocation proof this action produced, if any
    fork_below: bool = False  # its prev is not this node's action below it: the chains part further down


@dataclass
class ChainPlan:
    """The decisions for one group, from a view of the chains it touches."""

    heads: dict[ChainKey, tuple[int, bytes | None]]  # each touched chain's head (absent: empty chain)
    occupants: dict[Where, Action]  # kept actions at the seqs the group touches, at or below the head
    pool: dict[ChainKey, dict[bytes, Action]]  # each touched chain's held, unkept actions (pending and aside), by id
    aside: set[bytes]  # the pool entries that are kept aside (the rest are pending)
    coops: set[bytes] | frozenset[bytes]  # co-ops whose genesis is stored
    room: Callable[[Action], str | None] = lambda a: None  # why this action may not wait in pending (None: it may)
    keep_ghost: Callable[[Action], bool] = lambda a: True  # keep a losing action aside (else drop it)?
    appends: list[Action] = field(default_factory=list)  # new kept actions, in order
    new_coops: dict[bytes, Action] = field(default_factory=dict)
    dirty_heads: set[ChainKey] = field(default_factory=set)
    new_pending: dict[bytes, Action] = field(default_factory=dict)  # new pending rows
    new_aside: dict[bytes, Action] = field(default_factory=dict)  # new rows kept aside (arrivals, and in-group appends demoted)
    unpended: list[bytes] = field(default_factory=list)  # stored pending rows to delete (now kept or aside)
    unaside: list[bytes] = field(default_factory=list)  # stored aside rows to delete (now kept)
    demotions: list[Where] = field(default_factory=list)  # (co-op, author, from seq): stored kept rows that move aside
    proofs: dict[bytes, tuple[bytes, bytes, bytes, int, bytes]] = field(default_factory=dict)  # id -> (id, coop, author, seq, encoding)
    pending_delta: int = 0

    def decide(self, a: Action, at: Where) -> Verdict:
        """Place one arrival, ``at`` = (its co-op, author, seq); the caller has established that
        its id is not kept, pending or aside already."""
        coop, author, seq = at
        if coop not in self.coops and coop not in self.new_coops and not a.is_genesis:
            return Verdict(a.id, "rejected", RejectCode.UNKNOWN_COOP, "no genesis for this co-op is stored here")
        key = (coop, author)
        head_seq, head_id = self.heads.get(key, NO_HEAD)
        pool = self.pool.get(key)
        if pool is None:
            pool = self.pool[key] = {}
        if seq <= head_seq:
            kept = self.occupants[at]
            proof = self._prove(a, kept)
            if a.prev == kept.prev and a.id < kept.id and not kept.is_genesis:
                # The smaller id wins at this seq: the chain from here up moves aside, and grows
                # again from the pool by the rule.
                self._demote(key, seq, a.prev)
                self._append(key, a, at)
                self._extend(key)
                return Verdict(a.id, "accepted", message="replaces a fork with a larger id", proof=proof)
            if a.prev == kept.prev or self._on_aside(key, a):
                self._hold(key, a, aside=True)  # it lost at this seq, or builds on what lost: aside
            return Verdict(
                a.id,
                "rejected",
                RejectCode.CHAIN_CONFLICT,
                f"seq {seq} of this author is already taken: equivocation proven",
                proof,
                fork_below=a.prev != kept.prev,
            )
        if seq == head_seq + 1 and a.prev == head_id:
            self._append(key, a, at)
            if not pool:
                # Nothing else of this author is held: no rival at this seq, nothing to settle or
                # take back. The common case (a chain growing one action at a time), kept short.
                return Verdict(a.id, "accepted")
            proof = None
            for rival in [x for x in pool.values() if x.seq == seq]:
                proof = self._prove(a, rival)
            self._settle(key, seq)
            self._extend(key)
            return Verdict(a.id, "accepted", proof=proof)
        rivals = [x for x in pool.values() if x.seq == seq]
        proof = self._prove(a, rivals[0]) if rivals else None
        if self._on_aside(key, a):
            self._hold(key, a, aside=True)  # built on a losing action: it loses too
            return Verdict(a.id, "rejected", RejectCode.CHAIN_CONFLICT, "it builds on a fork that lost", proof, fork_below=True)
        if seq == head_seq + 1 and a.prev not in pool:
            return Verdict(
                a.id,
                "rejected",
                RejectCode.CHAIN_CONFLICT,
                f"prev does not match this author's action at seq {seq - 1}",
                proof,
                fork_below=True,
            )
        beaten = [x for x in rivals if x.prev == a.prev and x.id < a.id]
        if beaten:
            self._hold(key, a, aside=True)  # a smaller id with the same prev waits at this seq: this one lost
            return Verdict(
                a.id, "rejected", RejectCode.CHAIN_CONFLICT, f"seq {seq} of this author is already taken: equivocation proven", proof
            )
        for x in rivals:
            if x.prev == a.prev and x.id not in self.aside:
                self._move_aside(key, x)  # this one beats a waiting rival with the same prev
        if any(x.id not in self.aside for x in rivals):
            # One action waits per seq (the store's pending table holds one): a rival on another
            # branch waits aside, still in the pool, and the rule is applied to both when their seq comes.
            self._hold(key, a, aside=True)
            return Verdict(a.id, "pending", message=f"waiting for seq {head_seq + 1}, beside a rival on another branch", proof=proof)
        refusal = self.room(a)
        if refusal is not None:
            return Verdict(a.id, "rejected", RejectCode.CHAIN_GAP, refusal)
        self._hold(key, a, aside=False)
        return Verdict(a.id, "pending", message=f"waiting for seq {head_seq + 1}", proof=proof)

    # ---- the rule, incrementally --------------------------------------------------------------

    def _extend(self, key: ChainKey) -> None:
        """Grow the chain from the pool: at each next seq, the smallest id whose prev is the head."""
        pool = self.pool[key]
        while True:
            head_seq, head_id = self.heads[key]
            nxt = [x for x in pool.values() if x.seq == head_seq + 1 and x.prev == head_id]
            if not nxt:
                return
            best = min(nxt, key=lambda x: x.id)
            for rival in nxt:
                if rival is not best:
                    self._prove(best, rival)
            self._take(key, best)
            self._append(key, best, (key[0], key[1], best.seq))
            self._settle(key, best.seq)

    def _settle(self, key: ChainKey, seq: int) -> None:
        """The chain now holds ``seq``: pending actions there (their prevs differ: branches that
        part lower down) can no longer be kept as things stand, nor anything built on them; they
        go aside, where a replacement further down can still take them back."""
        for x in [x for x in self.pool[key].values() if x.seq == seq and x.id not in self.aside]:
            if x.id not in self.aside:
                self._move_aside(key, x)

    def _on_aside(self, key: ChainKey, a: Action) -> bool:
        return a.prev is not None and a.prev in self.aside and a.prev in self.pool[key]

    def _demote(self, key: ChainKey, seq: int, new_prev: bytes | None) -> None:
        """Move ``key``'s chain from ``seq`` up aside: stored rows (the store moves them) and any
        appended earlier in this group right here."""
        coop, author = key
        kept: list[Action] = []
        for x in self.appends:
            if x.coop == coop and x.author == author and x.seq >= seq:
                self.new_aside[x.id] = x
                self.pool[key][x.id] = x
                self.aside.add(x.id)
            else:
                kept.append(x)
        self.appends = kept
        self.demotions.append((coop, author, seq))
        for w in [w for w in self.occupants if w[0] == coop and w[1] == author and w[2] >= seq]:
            x = self.occupants.pop(w)
            self.pool[key][x.id] = x
            self.aside.add(x.id)
            self._cascade(key, x.id)
        self.heads[key] = (seq - 1, new_prev)  # the rival shares its prev with what it replaces
        self.dirty_heads.add(key)

    def _hold(self, key: ChainKey, a: Action, *, aside: bool) -> None:
        if aside:
            if not self.keep_ghost(a):
                return
            self.new_aside[a.id] = a
            self.aside.add(a.id)
            self.pool[key][a.id] = a
            self._cascade(key, a.id)
        else:
            self.new_pending[a.id] = a
            self.pending_delta += 1
            self.pool[key][a.id] = a

    def _cascade(self, key: ChainKey, lost: bytes) -> None:
        """Pending actions built on one that went aside lost too."""
        for x in [x for x in self.pool[key].values() if x.prev == lost and x.id not in self.aside]:
            self._move_aside(key, x)

    def _move_aside(self, key: ChainKey, a: Action) -> None:
        """A pending action that can no longer be kept (its seq is decided): aside."""
        if self.new_pending.pop(a.id, None) is None:
            self.unpended.append(a.id)
        self.pending_delta -= 1
        self.new_aside[a.id] = a
        self.aside.add(a.id)
        self._cascade(key, a.id)

    def _take(self, key: ChainKey, a: Action) -> None:
        """``a`` leaves the pool for the chain."""
        del self.pool[key][a.id]
        if a.id in self.aside:
            self.aside.discard(a.id)
            if self.new_aside.pop(a.id, None) is None:
                self.unaside.append(a.id)
        elif self.new_pending.pop(a.id, None) is None:
            self.unpended.append(a.id)
            self.pending_delta -= 1
        else:
            self.pending_delta -= 1

    def _prove(self, a: Action, other: Action) -> bytes:
        proof = make_proof(a, other)
        self.proofs[proof.id] = (proof.id, proof.coop, proof.author, proof.seq, proof.encode())
        return proof.id

    def _append(self, key: ChainKey, a: Action, at: Where) -> None:
        """``at``: (co-op, author, seq) of ``a``, which the caller has at hand."""
        self.appends.append(a)
        self.heads[key] = (at[2], a.id)
        self.dirty_heads.add(key)
        self.occupants[at] = a
        if a.env.coop is None:
            self.new_coops[a.id] = a
