"""The causal graph a co-op's fold walks: which items are ready, in what order, and who saw what.

Theory of operation. Each action names its ``prev`` (its author's action one seq below) and its
``deps`` (actions its author had seen). An item is *ready* once all of those are ready; its height
is one more than the highest of theirs (the genesis: 0). Ready items are kept in the **fold order**
``(height, rank, id)``, rank 0 for equivocation proofs and 1 for everything else, so an item always
comes after everything it builds on and concurrent items are ordered by id, which no author can
choose to their advantage without also choosing their deps.

The *causal past* of an item is the item and everything reachable from it through ``prev`` and
``deps``. Chains are downward closed (an action's past holds its author's whole chain below it),
so a past is described exactly by a **frontier**: for each author, the highest seq of theirs in
it. ``frontier`` computes it, reusing recent frontiers; ``frontier_since`` computes only the part
above a height (what a tally needs above its proposal); ``reaches`` answers "is this one action in
that item's past" with a bounded walk and a cache of items known to reach each target.

Two kinds of items stand outside the chains:

- **Equivocation proofs** have no author's place in a chain and no causal past of their own; a
  proof is ready right after its canonical action (the smaller id of the two, which every node
  keeps), and walks pass through it.
- **Ghosts** are actions displaced from their chain by an equivocation (the larger-id fork and the
  actions built on it). They are signed facts that other members may have depended on; they take
  part in readiness and heights so that those dependents are judged instead of waiting forever,
  but they never occupy a seq of a chain: a walk passes through a ghost to its parents.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .action import Action
from .chain import EquivocationProof

EQUIVOCATION = "~equivocation"  # the kind of a proof event inside the fold (never on the wire)
FRONTIER_CACHE = 64
REACH_CACHE = 256

OrderKey = tuple[int, int, bytes]


class ForkConflict(ValueError):
    """Two different actions were given for one (author, seq) of the kept chain: the caller must
    say which one is the fork's loser (a ghost); nodes rebuild the fold from their store then."""


@dataclass(frozen=True, slots=True)
class Item:
    """What the fold needs of an action (or of a proof event)."""

    id: bytes
    author: bytes
    seq: int
    prev: bytes | None
    deps: tuple[bytes, ...]
    ts: int
    kind: str
    body: Any

    @classmethod
    def of(cls, a: Action) -> Item:
        return cls(a.id, a.author, a.seq, a.prev, a.env.deps, a.env.ts, a.kind, a.body_value())

    @classmethod
    def of_proof(cls, p: EquivocationProof) -> Item:
        # Ready right after the canonical (smaller-id) fork, which every node keeps. "parted": the
        # two actions have different prevs, so the chains part lower down, where another proof
        # (with equal prevs) shows the fork itself.
        body = {"a": p.a.id, "b": p.b.id, "parted": p.a.prev != p.b.prev}
        return cls(p.id, p.author, p.seq, None, (p.a.id,), p.a.env.ts, EQUIVOCATION, body)

    @property
    def parents(self) -> tuple[bytes, ...]:
        return (*self.deps, self.prev) if self.prev is not None else self.deps


class Graph:
    """Items of one co-op, their readiness, heights, fold order, kept chains and causal pasts."""

    def __init__(self, root: bytes) -> None:
        self.root = root  # the genesis id (the co-op id): in every causal past
        self.items: dict[bytes, Item] = {}
        self.height: dict[bytes, int] = {}
        self.waiting: dict[bytes, list[bytes]] = {}  # missing parent -> items waiting for it
        self.order: list[OrderKey] = []  # ready items in fold order
        self.chain: dict[bytes, dict[int, bytes]] = {}  # author -> seq -> id (ready, kept)
        self.ghosts: set[bytes] = set()
        self._slots: dict[tuple[bytes, int], bytes] = {}  # (author, seq) -> the kept action given for it
        self._frontiers: OrderedDict[bytes, dict[bytes, int]] = OrderedDict()
        self._reach: OrderedDict[bytes, set[bytes]] = OrderedDict()  # target -> items known to reach it

    # ---- input -------------------------------------------------------------------------------

    def insert(self, items: list[Item], ghosts: frozenset[bytes] | set[bytes] = frozenset()) -> list[OrderKey]:
        """Take items (``ghosts``: the ids among them displaced from their chain); return the keys
        of the items that became ready, sorted. Already known ids are ignored."""
        ready: list[Item] = []
        fresh = [it for it in items if it.id not in self.items]
        claims: dict[tuple[bytes, int], bytes] = {}
        for it in fresh:  # checked before anything changes: a conflict leaves the graph as it was
            if it.id not in ghosts and it.kind != EQUIVOCATION:
                slot = (it.author, it.seq)
                other = self._slots.get(slot) or claims.setdefault(slot, it.id)
                if other != it.id:
                    raise ForkConflict(f"two kept actions at seq {it.seq} of one author")
        for it in fresh:
            if it.id in self.items:
                continue
            if it.id in ghosts:
                self.ghosts.add(it.id)
            elif it.kind != EQUIVOCATION:
                self._slots[(it.author, it.seq)] = it.id
            self.items[it.id] = it
            missing = [p for p in it.parents if p not in self.height]
            if missing and it.id != self.root:
                for p in missing:
                    self.waiting.setdefault(p, []).append(it.id)
            else:
                ready.append(it)
        newly: list[OrderKey] = []
        while ready:
            it = ready.pop()
            if it.id in self.height:
                continue
            # An action naming neither prev nor deps still comes after the genesis, which is in
            # every causal past: height 1, never beside the genesis or before it.
            self.height[it.id] = 1 + max((self.height[p] for p in it.parents), default=-1 if it.id == self.root else 0)
            if it.kind != EQUIVOCATION and it.id not in self.ghosts:
                self.chain.setdefault(it.author, {})[it.seq] = it.id
            newly.append(self.key_of(it))
            for w in self.waiting.pop(it.id, ()):
                if w not in self.height and all(p in self.height for p in self.items[w].parents):
                    ready.append(self.items[w])
        newly.sort()
        if self.order and newly and newly[0] < self.order[-1]:
            for key in newly:
                bisect.insort(self.order, key)
        else:
            self.order.extend(newly)
        return newly

    def key_of(self, it: Item) -> OrderKey:
        return (self.height[it.id], 0 if it.kind == EQUIVOCATION else 1, it.id)

    def key(self, item_id: bytes) -> OrderKey:
        return self.key_of(self.items[item_id])

    def position(self, item_id: bytes) -> int:
        return bisect.bisect_left(self.order, self.key(item_id))

    def kept(self, item_id: bytes) -> bool:
        """An action of a chain (not a proof, not a ghost)."""
        it = self.items.get(item_id)
        return it is not None and it.kind != EQUIVOCATION and item_id not in self.ghosts

    # ---- deferred items ----------------------------------------------------------------------

    def absent_below(self, item_id: bytes, limit: int = 32) -> list[bytes]:
        """For an item that is not ready: the ids it waits for that this graph does not hold at all
        (the roots of its wait), at most ``limit``, sorted."""
        out: set[bytes] = set()
        seen: set[bytes] = set()
        stack = [item_id]
        while stack and len(out) < limit:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            it = self.items.get(x)
            if it is None:
                out.add(x)
                continue
            stack.extend(p for p in it.parents if p not in self.height)
        return sorted(out)

    # ---- causal pasts ------------------------------------------------------------------------

    def frontier(self, item_id: bytes) -> dict[bytes, int]:
        """For each author, the highest seq of theirs in the causal past of ``item_id`` (inclusive).

        Recent frontiers are cached; a walk that meets one reuses it instead of walking past it.
        """
        cached = self._frontiers.get(item_id)
        if cached is not None:
            self._frontiers.move_to_end(item_id)
            return cached
        e: dict[bytes, int] = {}
        stack = [item_id]
        items, chain, ghosts = self.items, self.chain, self.ghosts
        visited: set[bytes] = set()
        while stack:
            x = stack.pop()
            it = items[x]
            if it.kind == EQUIVOCATION or x in ghosts:
                if x not in visited:
                    visited.add(x)
                    stack.extend(it.parents)
                continue
            lo = e.get(it.author, 0)
            if lo >= it.seq:
                continue
            e[it.author] = it.seq
            own = chain[it.author]
            for q in range(lo + 1, it.seq + 1):
                y = own.get(q)
                if y is None:
                    continue
                known = self._frontiers.get(y) if y != item_id else None
                if known is not None:
                    for a, top in known.items():
                        if e.get(a, 0) < top:
                            e[a] = top
                    continue
                stack.extend(items[y].deps)
        self._frontiers[item_id] = e
        if len(self._frontiers) > FRONTIER_CACHE:
            self._frontiers.popitem(last=False)
        return e

    def frontier_since(self, item_id: bytes, min_height: int) -> dict[bytes, int]:
        """``frontier(item_id)`` restricted to the part of its causal past at or above
        ``min_height``: for each author met there, their highest seq.

        Exact for what a tally needs: a proposal at ``min_height`` and votes above it are in the
        past of ``item_id`` iff this walk meets them, since every path down to one of them only
        crosses items higher than it. The walk stays between the proposal and the tally, so its
        cost does not grow with the history before the proposal.
        """
        e: dict[bytes, int] = {}
        seen: set[bytes] = set()
        stack = [item_id]
        items, height, ghosts = self.items, self.height, self.ghosts
        while stack:
            x = stack.pop()
            if x in seen or height[x] < min_height:
                continue
            seen.add(x)
            it = items[x]
            if it.kind != EQUIVOCATION and x not in ghosts and e.get(it.author, 0) < it.seq:
                e[it.author] = it.seq
            stack.extend(it.parents)
        return e

    def reaches(self, item_id: bytes, target: bytes) -> bool:
        """Whether ``target`` (a kept action) is in the causal past of ``item_id``. A depth-first
        walk that stops at the first kept action of the target's author at or after its seq, or
        at an item already known to reach it: most items depend on recent ones, so this takes a
        few steps."""
        if item_id == target:
            return True
        known = self._reach.get(target)
        if known is None:
            known = self._reach[target] = set()
            if len(self._reach) > REACH_CACHE:
                self._reach.popitem(last=False)
        else:
            self._reach.move_to_end(target)
        if item_id in known:
            return True
        t = self.items[target]
        ht, author, seq = self.height[target], t.author, t.seq
        items, height, ghosts = self.items, self.height, self.ghosts
        visited = {item_id}
        stack = [item_id]
        while stack:
            # Look at all of an item's parents before going deeper: the target, or an item known
            # to reach it, is most often one step away.
            parents = items[stack.pop()].parents
            for q in parents:
                if q in known or q == target:
                    known.add(item_id)
                    return True
                it = items[q]
                if it.author == author and it.seq >= seq and it.kind != EQUIVOCATION and q not in ghosts:
                    known.add(item_id)
                    return True
            for q in parents:
                if q not in visited and height[q] > ht:
                    visited.add(q)
                    stack.append(q)
        return False
