"""protocol/forkchoice.py: which action holds each seq of each chain, as pure code.

A small in-memory model of the store (kept chains, pending actions, actions kept aside, proofs)
applies ``ChainPlan``'s decisions exactly as ``node/store.py`` writes them. Properties, over
forked histories delivered in any order and grouping: the kept chains and the proofs are the same
whatever the order; a kept chain never has a hole and links by ``prev``; where two rivals share
a prev the smaller id is kept; an action kept aside is never in a chain.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import Action
from protocol.forkchoice import ChainPlan, Verdict
from tests.conftest import examples
from tests.forkchoice_histories import ALL, COOP, GENESIS, HISTORIES, KEYS


@dataclass
class MemStore:
    """The store's tables, in memory, written as node/store.py writes a plan."""

    chains: dict[tuple[bytes, bytes], dict[int, Action]] = field(default_factory=dict)
    pending: dict[bytes, Action] = field(default_factory=dict)
    aside: dict[bytes, Action] = field(default_factory=dict)
    proofs: dict[bytes, bytes] = field(default_factory=dict)
    coops: set[bytes] = field(default_factory=set)

    def known(self) -> set[bytes]:
        return {a.id for c in self.chains.values() for a in c.values()} | set(self.pending) | set(self.aside)

    def ingest(self, group: list[Action]) -> list[Verdict]:
        known = self.known()
        keys = {(a.coop, a.author) for a in group}
        heads = {k: (max(c), c[max(c)].id) for k, c in self.chains.items() if k in keys and c}
        occupants = {(k[0], k[1], q): a for k, c in self.chains.items() if k in keys for q, a in c.items()}
        pool: dict[tuple[bytes, bytes], dict[bytes, Action]] = {k: {} for k in keys}
        for x in [*self.pending.values(), *self.aside.values()]:
            if (x.coop, x.author) in keys:
                pool[(x.coop, x.author)][x.id] = x
        plan = ChainPlan(heads, occupants, pool, set(self.aside), set(self.coops))
        out: list[Verdict] = []
        seen: dict[bytes, Verdict] = {}
        for a in sorted(group, key=lambda a: (a.env.coop is not None, a.coop, a.author, a.seq)):
            if a.id in known:
                out.append(Verdict(a.id, "known"))
                continue
            if a.id in seen:
                out.append(Verdict(a.id, "known") if seen[a.id].status == "accepted" else seen[a.id])
                continue
            v = seen[a.id] = plan.decide(a, (a.coop, a.author, a.seq))
            out.append(v)
        # write, as the store does: demoted rows aside, then pool removals, appends, new rows, proofs
        for coop, author, seq in plan.demotions:
            chain = self.chains.get((coop, author), {})
            for q in [q for q in chain if q >= seq]:
                x = chain.pop(q)
                self.aside[x.id] = x
        for i in plan.unpended:
            del self.pending[i]
        for i in plan.unaside:
            del self.aside[i]
        for a in plan.appends:
            self.chains.setdefault((a.coop, a.author), {})[a.seq] = a
        for a in plan.new_pending.values():
            self.pending[a.id] = a
        for a in plan.new_aside.values():
            self.aside[a.id] = a
        for pid, (_, _, _, _, raw) in plan.proofs.items():
            self.proofs[pid] = raw
        self.coops |= set(plan.new_coops)
        kept = {a.id for c in self.chains.values() for a in c.values()}
        assert not kept & (set(self.aside) | set(self.pending)), "an action is both kept and in the pool"
        assert not set(self.aside) & set(self.pending)
        return out

    def summary(self) -> tuple[object, ...]:
        chains = {k: tuple(c[q].id for q in sorted(c)) for k, c in self.chains.items() if c}
        return chains, frozenset(self.aside), frozenset(self.pending)


def deliver(groups: list[list[Action]]) -> MemStore:
    """Deliver ``groups``, then everything again in chain order, as anti-entropy does: what a node
    refused because its branch parted lower down is offered again once it holds that branch."""
    m = MemStore()
    m.ingest([GENESIS])
    for g in groups:
        m.ingest(g)
    for _ in range(3):
        m.ingest(sorted(ALL, key=lambda a: (a.author, a.seq, a.id)))
    return m


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[Action]]:
    order = draw(st.permutations(ALL))
    again = draw(st.lists(st.sampled_from(ALL), max_size=6))  # some actions arrive twice
    order = order + again
    cuts = sorted(draw(st.sets(st.integers(1, len(order) - 1), max_size=8)))
    bounds = [0, *cuts, len(order)]
    return [order[i:j] for i, j in itertools.pairwise(bounds) if j > i]


def reference() -> MemStore:
    return deliver([[a] for h in HISTORIES for a in h])


@settings(max_examples=examples(120))
@given(deliveries())
def test_any_delivery_order_keeps_the_same_chains_and_proofs(groups: list[list[Action]]) -> None:
    ref = reference()
    got = deliver(groups)
    assert got.summary() == ref.summary()
    assert not got.pending  # every branch is complete: nothing waits
    for c in got.chains.values():
        seqs = sorted(c)
        assert seqs == list(range(1, len(seqs) + 1))  # no holes
        for q in seqs[1:]:
            assert c[q].prev == c[q - 1].id  # links by prev
    kept = {a.id for c in got.chains.values() for a in c.values()}
    assert not kept & set(got.aside)


def test_where_two_rivals_share_a_prev_the_smaller_id_is_kept() -> None:
    m = reference()
    for i, key in enumerate(KEYS):
        trunk, left, right = HISTORIES[i][:2], HISTORIES[i][2:5], HISTORIES[i][5:]
        winner = left if left[0].id < right[0].id else right
        chain = m.chains[(COOP, key.public_key)]
        assert [chain[q].id for q in sorted(chain)] == [a.id for a in trunk + winner]


def test_the_losing_side_is_kept_aside_whichever_arrives_first() -> None:
    key = KEYS[0]
    trunk, left, right = HISTORIES[0][:2], HISTORIES[0][2:5], HISTORIES[0][5:]
    loser = right if left[0].id < right[0].id else left
    winner = left if loser is right else right
    for first, second in ((winner, loser), (loser, winner)):
        m = deliver([trunk, first, second])
        assert {a.id for a in loser} <= set(m.aside), "every action of the losing branch is kept aside"
        chain = m.chains[(COOP, key.public_key)]
        assert [chain[q].id for q in sorted(chain)] == [a.id for a in trunk + winner]
        assert m.proofs  # the fork is proven


def test_a_rival_that_parts_further_down_is_refused_without_a_ghost() -> None:
    key = KEYS[1]
    trunk, left, right = HISTORIES[1][:2], HISTORIES[1][2:5], HISTORIES[1][5:]
    m = MemStore()
    for g in ([GENESIS], trunk, left[:1]):
        m.ingest(g)
    # right[1] extends right[0], which this node does not hold: its chain parts below it
    [v] = m.ingest([right[1]])
    assert (v.status, v.code, v.fork_below) == ("rejected", "chain_conflict", True)
    assert right[1].id not in m.aside and right[1].id not in m.pending
    assert m.chains[(COOP, key.public_key)][3].id == left[0].id


def canonical_chain(actions: list[Action]) -> tuple[bytes, ...]:
    """The rule, written out plainly: seq 1 the smallest id; then the smallest id whose prev is the head."""
    chain: list[Action] = []
    while True:
        want = chain[-1].id if chain else None
        nxt = [a for a in actions if a.seq == len(chain) + 1 and a.prev == want]
        if not nxt:
            return tuple(a.id for a in chain)
        chain.append(min(nxt, key=lambda a: a.id))


def test_the_kept_chains_are_the_rule_written_out() -> None:
    chains, _, _ = reference().summary()
    by_author: dict[bytes, list[Action]] = {}
    for a in [GENESIS, *ALL]:
        by_author.setdefault(a.author, []).append(a)
    assert chains == {(COOP, author): canonical_chain(acts) for author, acts in by_author.items()}  # type: ignore[comparison-overlap]
