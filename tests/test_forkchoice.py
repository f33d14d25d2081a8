"""protocol/forkchoice.py: which action holds each seq of each chain, as pure code.

A small in-memory model of the store (kept chains, pending actions, actions kept aside, proofs)
applies ``ChainPlan``'s decisions exactly as ``node/store.py`` writes them. Properties, over
forked histories delivered in any order and grouping: the kept chains and the proofs are the same
whatever the order; a kept chain never has a hole and links by ``prev``; where two rivals share
a prev the smaller id is kept; an action kept aside is never in a chain.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import Action, SigningKey, sign_action, sign_genesis
from protocol.forkchoice import ChainPlan, Verdict
from tests.conftest import examples

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
        prev = sign_action(key, coop=COOP, seq=seq, prev=prev.id if prev else None, ts=TS + seq, kind="note.text", body={"t": tag, "s": seq})
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
ALL = [a for h in HISTORIES for a in h]


@dataclass
class MemStore:
    """The store's tables, in memory, written as node/store.py writes a plan."""

    chains: dict[tuple[bytes, bytes], dict[int, Action]] = field(default_factory=dict)
    pending: dict[tuple[bytes, bytes], dict[int, Action]] = field(default_factory=dict)
    aside: dict[bytes, Action] = field(default_factory=dict)
    proofs: dict[bytes, bytes] = field(default_factory=dict)
    coops: set[bytes] = field(default_factory=set)

    def known(self) -> set[bytes]:
        ids = {a.id for c in self.chains.values() for a in c.values()}
        ids |= {a.id for c in self.pending.values() for a in c.values()}
        return ids | set(self.aside)

    def ingest(self, group: list[Action]) -> list[Verdict]:
        known = self.known()
        keys = {(a.coop, a.author) for a in group}
        heads = {k: (max(c), c[max(c)].id) for k, c in self.chains.items() if k in keys and c}
        occupants = {(k[0], k[1], q): a for k, c in self.chains.items() if k in keys for q, a in c.items()}
        pending = {k: dict(self.pending.get(k, {})) for k in keys}
        plan = ChainPlan(heads, occupants, pending, set(self.coops), on_ghost=lambda a: a.prev in self.aside)
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
        # write, as the store does: demotions move rows aside, then appends, pending, proofs
        for coop, author, seq in plan.demotions:
            chain = self.chains.get((coop, author), {})
            for q in [q for q in chain if q >= seq]:
                x = chain.pop(q)
                self.aside[x.id] = x
        for a in plan.displaced:
            self.aside[a.id] = a
        for pid in plan.unpended:
            for c in self.pending.values():
                for q in [q for q, x in c.items() if x.id == pid]:
                    del c[q]
        for a in plan.appends:
            self.chains.setdefault((a.coop, a.author), {})[a.seq] = a
            self.aside.pop(a.id, None)
        for a in plan.new_pending.values():
            self.pending.setdefault((a.coop, a.author), {})[a.seq] = a
        for pid, (_, _, _, _, raw) in plan.proofs.items():
            self.proofs[pid] = raw
        self.coops |= set(plan.new_coops)
        return out

    def summary(self) -> tuple[object, ...]:
        chains = {k: tuple(c[q].id for q in sorted(c)) for k, c in self.chains.items() if c}
        return chains, frozenset(self.proofs)


def deliver(groups: list[list[Action]]) -> MemStore:
    m = MemStore()
    m.ingest([GENESIS])
    for g in groups:
        m.ingest(g)
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
    chains, proofs = got.summary()
    ref_chains, ref_proofs = ref.summary()
    # Pending actions may remain in one order and not another only if their chain never closed:
    # here every branch is complete, so the kept chains are exactly equal.
    assert chains == ref_chains
    assert proofs == ref_proofs
    for (coop, author), c in got.chains.items():
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
        assert len(m.proofs) == 1


def test_a_rival_that_parts_further_down_is_refused_without_a_ghost() -> None:
    key = KEYS[1]
    trunk, left, right = HISTORIES[1][:2], HISTORIES[1][2:5], HISTORIES[1][5:]
    m = deliver([trunk, left[:1]])
    # right[1] extends right[0], which this node does not hold: its chain parts below it
    [v] = m.ingest([right[1]])
    assert (v.status, v.code, v.fork_below) == ("rejected", "chain_conflict", True)
    assert right[1].id not in m.aside
    assert m.chains[(COOP, key.public_key)][3].id == left[0].id
