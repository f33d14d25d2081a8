"""Builders for the governance tests: hand-written histories and a simulated co-op.

``Hist`` builds a history one ``Item`` at a time and folds it as it goes (by default each item
depends on the previous one, so the history is a line and the fold order is the build order).

``simulate`` runs a small co-op: members act on their own local views (a prefix of everything
said so far plus their own actions), keep their chains (seq/prev), name what they saw recently as
deps (at most 32, sorted), apply, sponsor, open every type of proposal, vote (and change their
votes), tally (claiming the outcome computed on the tally's causal past, sometimes wrongly), post
application actions and sometimes equivocate. It returns the items in generation order, which is
a causal order (every item after its causal past; a proof right after its canonical action).

The simulator picks *plausible* actions from a fold fed in generation order, but the tests judge
the fold with independent code (closures, heights, outcomes recomputed from applied votes).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol import codec, domain
from protocol.action import Action, sign_genesis
from protocol.charter import (
    APPLY,
    CHOICES,
    DEFAULT_CHARTER,
    LEAVE,
    OPEN,
    SPONSOR,
    TALLY,
    VOTE,
    check_charter,
    check_governance_body,
)
from protocol.governance import DAY_MS, EQUIVOCATION, MEMBER, Fold, Item
from protocol.keys import SigningKey

TS0 = 1_700_000_000_000
FOUNDER_KEY = SigningKey(hashlib.sha256(b"coopnet-test-governance-founder").digest())
ALL_PERMS = ("propose", "vote", "tally", "sponsor", "*")
RIDE = "ride.offer"

# ---- values --------------------------------------------------------------------------------------


def canon(value: Any) -> Any:
    """``value`` as a decoded action body holds it (maps sorted, arrays as tuples)."""
    return codec.decode(codec.encode(value))


def make_id(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def charter(
    *,
    policy: str = "open",
    sponsors: int = 1,
    decisions: dict[str, Any] | None = None,
    roles: dict[str, Sequence[str]] | None = None,
    offences: dict[str, Any] | None = None,
    equivocation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid charter, in decoded form, from the defaults and the given parts."""
    c = {
        "membership": {"policy": policy, "sponsors": sponsors},
        "decisions": decisions if decisions is not None else DEFAULT_CHARTER["decisions"],
        "roles": {k: list(v) for k, v in (roles if roles is not None else {"member": ALL_PERMS}).items()},
        "offences": offences if offences is not None else DEFAULT_CHARTER["offences"],
        "equivocation": equivocation if equivocation is not None else DEFAULT_CHARTER["equivocation"],
    }
    out = canon(c)
    check_charter(out)
    return out  # type: ignore[no-any-return]


def rule(quorum: int, threshold: str) -> dict[str, Any]:
    return {"quorum": quorum, "threshold": threshold}


def genesis(
    *, charter_: dict[str, Any] | None = None, founders: Iterable[bytes] = (), ts: int = TS0, key: SigningKey = FOUNDER_KEY
) -> Action:
    body: dict[str, Any] = {"name": "Ride Co-op"}
    if charter_ is not None:
        body["charter"] = charter_
    founders = tuple(founders)
    if founders:
        body["founders"] = list(founders)
    return sign_genesis(key, ts=ts, body=body)


def proof_item(a: Item, b: Item) -> Item:
    """The fold's view of an equivocation proof over ``a`` and ``b`` (``a`` the smaller id)."""
    assert a.id < b.id and a.author == b.author and a.seq == b.seq
    return Item(domain.proof_id(a.id, b.id), a.author, a.seq, None, (a.id,), a.ts, EQUIVOCATION, {"a": a.id, "b": b.id})


# ---- a hand-written history ------------------------------------------------------------------------


class Hist:
    """A history of Items folded as it is built; by default each item depends on the last one."""

    def __init__(
        self,
        *,
        charter_: dict[str, Any] | None = None,
        founders: int = 2,
        ts: int = TS0,
        snapshot_every: int = 2000,
    ) -> None:
        self.founder_ids = [make_id("founder", i) for i in range(founders)]
        self.genesis = genesis(charter_=charter_, founders=self.founder_ids, ts=ts)
        self.fold = Fold(self.genesis, snapshot_every=snapshot_every)
        self.founders = [FOUNDER_KEY.public_key, *self.founder_ids]
        self.coop = self.genesis.id
        self.heads: dict[bytes, tuple[int, bytes | None]] = {FOUNDER_KEY.public_key: (1, self.genesis.id)}
        self.items: dict[bytes, Item] = {self.genesis.id: Item.of(self.genesis)}
        self.tip = self.genesis.id
        self.clock = ts
        self._n = 0

    def person(self, label: object) -> bytes:
        return make_id("person", label)

    def make(
        self,
        who: bytes,
        kind: str,
        body: Any,
        *,
        deps: Iterable[bytes] | None = None,
        ts: int | None = None,
        seq: int | None = None,
        prev: bytes | str | None = "head",
    ) -> Item:
        """Build (but do not fold) ``who``'s next item; advances ``who``'s chain head."""
        self._n += 1
        head_seq, head_id = self.heads.get(who, (0, None))
        seq = head_seq + 1 if seq is None else seq
        p = head_id if prev == "head" else prev
        assert p is None or isinstance(p, bytes)
        d = tuple(sorted(set(self.tip_deps() if deps is None else deps)))
        if ts is None:
            self.clock += 1000
            ts = self.clock
        body = canon(body)
        check_governance_body(kind, body)
        it = Item(make_id("item", self._n, kind), who, seq, p, d, ts, kind, body)
        self.heads[who] = (seq, it.id)
        self.items[it.id] = it
        return it

    def tip_deps(self) -> tuple[bytes, ...]:
        return (self.tip,)

    def add(self, *items: Item) -> None:
        self.fold.add_items(list(items))
        for it in items:
            if it.kind != EQUIVOCATION:
                self.tip = it.id

    def act(self, who: bytes, kind: str, body: Any, **kw: Any) -> Item:
        it = self.make(who, kind, body, **kw)
        self.add(it)
        return it

    def reason(self, it: Item) -> str | None:
        kind, reason = self.fold.result(it.id)
        assert kind in ("applied", "rejected"), f"{it.kind} is {kind}"
        return reason

    # governance shorthands

    def apply(self, who: bytes, **kw: Any) -> Item:
        return self.act(who, APPLY, {}, **kw)

    def sponsor(self, who: bytes, target: bytes, **kw: Any) -> Item:
        return self.act(who, SPONSOR, {"member": target}, **kw)

    def leave(self, who: bytes, **kw: Any) -> Item:
        return self.act(who, LEAVE, {}, **kw)

    def open(self, who: bytes, ptype: str, payload: Any, **kw: Any) -> Item:
        return self.act(who, OPEN, {"type": ptype, "title": f"{ptype} proposal", "payload": payload}, **kw)

    def vote(self, who: bytes, proposal: Item | bytes, choice: str, **kw: Any) -> Item:
        pid = proposal.id if isinstance(proposal, Item) else proposal
        return self.act(who, VOTE, {"proposal": pid, "choice": choice}, **kw)

    def tally(self, who: bytes, proposal: Item | bytes, claim: str, **kw: Any) -> Item:
        pid = proposal.id if isinstance(proposal, Item) else proposal
        return self.act(who, TALLY, {"proposal": pid, "outcome": claim}, **kw)

    def app(self, who: bytes, kind: str = RIDE, **kw: Any) -> Item:
        return self.act(who, kind, {"from": "Ghent", "seats": 3}, **kw)

    def decide(self, ptype: str, payload: Any, *, voters: Sequence[bytes] | None = None, choice: str = "yes") -> tuple[Item, Item]:
        """Open a proposal by the first founder, everyone in ``voters`` votes, and tally it."""
        voters = list(self.founders if voters is None else voters)
        op = self.open(voters[0], ptype, payload)
        assert self.reason(op) is None, self.reason(op)
        for v in voters:
            assert self.reason(self.vote(v, op, choice)) is None
        claim = self.claim(voters[0], op)
        t = self.tally(voters[0], op, claim)
        assert self.reason(t) is None, self.reason(t)
        return op, t

    def claim(self, who: bytes, proposal: Item | bytes, deps: Iterable[bytes] | None = None) -> str:
        """The outcome ``who``'s next tally of ``proposal`` must claim, with these deps (default: the tip)."""
        pid = proposal.id if isinstance(proposal, Item) else proposal
        head = self.heads.get(who, (0, None))[1]
        parents = [*(self.tip_deps() if deps is None else deps), *([head] if head is not None else [])]
        return self.fold.preview(pid, parents)[0]

    def equivocate(self, who: bytes, kind: str = RIDE, *, deps: Iterable[bytes] | None = None) -> tuple[Item, Item, Item]:
        """Two items at ``who``'s next seq; fold the canonical one and the proof. (canonical, other, proof)"""
        head = self.heads.get(who, (0, None))
        x = self.make(who, kind, {"fork": 1}, deps=deps)
        self.heads[who] = head
        y = self.make(who, kind, {"fork": 2}, deps=deps)
        a, b = sorted((x, y), key=lambda i: i.id)
        self.heads[who] = (a.seq, a.id)
        del self.items[b.id]
        self.add(a)
        p = proof_item(a, b)
        self.fold.add_items([p])
        return a, b, p


# ---- independent oracles ---------------------------------------------------------------------------


def closure(items: dict[bytes, Item], start: bytes) -> set[bytes]:
    """Every id in the causal past of ``start`` (inclusive), by plain graph search."""
    seen = {start}
    stack = [start]
    while stack:
        for p in items[stack.pop()].parents:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def frontier_of(items: dict[bytes, Item], ids: Iterable[bytes]) -> dict[bytes, int]:
    f: dict[bytes, int] = {}
    for x in ids:
        it = items[x]
        if it.kind != EQUIVOCATION and f.get(it.author, 0) < it.seq:
            f[it.author] = it.seq
    return f


def heights(items: dict[bytes, Item], root: bytes) -> dict[bytes, int]:
    """Causal heights of every item whose whole past is present (the genesis ``root``: 0)."""
    h: dict[bytes, int] = {}

    def height(x: bytes) -> int | None:
        stack = [x]
        while stack:
            y = stack[-1]
            if y in h:
                stack.pop()
                continue
            it = items.get(y)
            if it is None:
                return None
            missing = [p for p in it.parents if p not in h]
            if not missing:
                h[y] = 0 if y == root else 1 + max((h[p] for p in it.parents), default=-1)
                stack.pop()
                continue
            for p in missing:
                if p not in items:
                    return None
            stack.extend(missing)
        return h[x]

    for x in list(items):
        height(x)
    return h


def count_outcome(quorum: int, threshold: str, electorate: int, counts: dict[str, int]) -> str:
    """The decision rule, written out again from the charter docs."""
    voted = sum(counts.values())
    if electorate == 0 or voted == 0 or voted * 100 < quorum * electorate:
        return "open"
    yes, no, block = counts["yes"], counts["no"], counts["block"]
    if threshold == "majority":
        ok = yes > no + block
    elif threshold == "two_thirds":
        ok = yes > 0 and yes * 3 >= (yes + no + block) * 2
    else:
        ok = yes > 0 and block == 0
    return "passed" if ok else "rejected"


# ---- the simulator ---------------------------------------------------------------------------------

PTYPES = ("admit", "amend", "sanction", "lift", "federate", "unfederate", "role", "text")
OTHER_COOPS = tuple(make_id("coop", i) for i in range(3))
APP_KINDS = ("ride.offer", "ride.request", "food.order")


def random_charter(rng: random.Random) -> dict[str, Any]:
    thresholds = ("majority", "two_thirds", "consent")
    decisions: dict[str, Any] = {"default": rule(rng.choice((0, 25, 50, 50, 60)), rng.choice(thresholds))}
    for t in rng.sample(PTYPES, rng.randint(0, 3)):
        decisions[t] = rule(rng.choice((0, 34, 50, 75)), rng.choice(thresholds))
    member = ["propose", "vote", "tally", "sponsor", "*"]
    if rng.random() < 0.2:
        member.remove(rng.choice(member))  # a member role without some permission
    if rng.random() < 0.3:
        member = [p for p in member if p != "*"] + [rng.choice(("food.*", "food.order"))]
    roles: dict[str, list[str]] = {"member": member}
    if rng.random() < 0.7:
        roles["driver"] = ["ride.*"]
    if rng.random() < 0.5:
        roles["steward"] = ["propose", "vote", "tally", "sponsor"]
    offences = {
        "misconduct": {"sanction": "suspend", "days": rng.choice((0, 1, 2, 30)), "text": "Acting against the charter"},
    }
    if rng.random() < 0.6:
        offences["fraud"] = {"sanction": "expel", "days": 0, "text": "Fraud"}
    if rng.random() < 0.4:
        offences["noise"] = {"sanction": "suspend", "days": 1, "text": "Noise"}
    equivocation = {"sanction": rng.choice(("suspend", "suspend", "expel", "none")), "days": rng.choice((0, 1, 3))}
    return charter(
        policy=rng.choice(("open", "open", "sponsored", "vote")),
        sponsors=rng.randint(1, 3),
        decisions=decisions,
        roles=roles,
        offences=offences,
        equivocation=equivocation,
    )


@dataclass
class Agent:
    id: bytes
    head: tuple[int, bytes | None]
    horizon: int = 1  # sees items[:horizon] of the global list, plus its own
    own: list[int] = field(default_factory=list)
    liar: bool = False  # sometimes claims a timestamp days ahead


@dataclass
class History:
    genesis: Action
    items: list[Item]  # generation order (a causal order); the genesis is not in it
    wrong_claims: set[bytes]
    founders: list[bytes]
    agents: list[bytes]
    # tally id -> (claimed, computed by the simulator on the tally's closure, the fold's verdict then)
    claims: dict[bytes, tuple[str, str, str | None]] = field(default_factory=dict)

    @property
    def by_id(self) -> dict[bytes, Item]:
        d = {it.id: it for it in self.items}
        d[self.genesis.id] = Item.of(self.genesis)
        return d


class Simulator:
    def __init__(
        self, seed: int, *, founders: int, outsiders: int, custom_charter: bool, equivocations: bool = True, sequential: bool = False
    ) -> None:
        self.rng = rng = random.Random(seed)
        self.seed = seed
        self.equivocations = equivocations
        # sequential: every governance action (all but votes and application actions) follows every
        # earlier one causally; votes and application actions still come from lagging views.
        self.sequential = sequential
        self.last_gov: bytes | None = None
        self.charter = random_charter(rng) if custom_charter else None
        founder_ids = [make_id("sim-founder", seed, i) for i in range(founders)]
        self.genesis = genesis(charter_=self.charter, founders=founder_ids, ts=TS0)
        g = Item.of(self.genesis)
        self.global_: list[Item] = [g]
        self.index: dict[bytes, int] = {g.id: 0}
        self.by_id: dict[bytes, Item] = {g.id: g}
        self.fold = Fold(self.genesis, snapshot_every=8)
        self.agents = [Agent(FOUNDER_KEY.public_key, (1, g.id), own=[0])]
        self.agents += [Agent(f, (0, None)) for f in founder_ids]
        self.agents += [Agent(make_id("sim-outsider", seed, i), (0, None), liar=rng.random() < 0.2) for i in range(outsiders)]
        self.founders = [FOUNDER_KEY.public_key, *founder_ids]
        self.clock = TS0
        self.wrong_claims: set[bytes] = set()
        self.claims: dict[bytes, tuple[str, str, str | None]] = {}
        self.votes_on: dict[bytes, list[bytes]] = {}
        self._n = 0

    # ---- plumbing ----

    def view_ids(self, a: Agent) -> list[bytes]:
        return [self.global_[i].id for i in range(a.horizon)]

    def sees(self, a: Agent, x: bytes) -> bool:
        i = self.index.get(x)
        return i is not None and (i < a.horizon or i in a.own)

    def see(self, a: Agent, x: bytes) -> None:
        """Let ``a`` catch up far enough to have seen ``x``."""
        i = self.index[x]
        if i >= a.horizon and i not in a.own:
            a.horizon = i + 1

    def recent(self, a: Agent) -> list[bytes]:
        k = self.rng.choice((1, 1, 2, 3, 5, 8, 32))
        cand = [
            self.global_[i].id
            for i in range(max(0, a.horizon - 40), a.horizon)
            if self.global_[i].kind != EQUIVOCATION and self.global_[i].author != a.id
        ]
        cand = cand[-k:] if self.rng.random() < 0.7 else self.rng.sample(cand, min(k, len(cand)))
        return cand

    def make(self, a: Agent, kind: str, body: Any, extra: Sequence[bytes] = (), *, commit: bool = True) -> Item:
        self._n += 1
        seq, prev = a.head
        if (self.sequential and kind not in (VOTE, *APP_KINDS)) or kind == "fork":
            a.horizon = len(self.global_)
            extra = [self.last_gov, *extra] if self.last_gov is not None else list(extra)
        if kind == "fork":
            kind = self.rng.choice(APP_KINDS)
        deps = list(dict.fromkeys([*extra, *self.recent(a)]))
        deps = [d for d in deps if d != prev][:32]
        if not deps and prev is None:
            deps = [self.genesis.id]
        ts = max(0, self.clock + self.rng.randint(-3_600_000, 3_600_000))
        if a.liar and self.rng.random() < 0.3:
            ts = self.clock + self.rng.randint(2, 10) * DAY_MS
        body = canon(body)
        check_governance_body(kind, body)
        iid = hashlib.sha256(b"sim-item|%d|%d" % (self.seed, self._n)).digest()
        it = Item(iid, a.id, seq + 1, prev, tuple(sorted(deps)), ts, kind, body)
        if commit:
            self.commit(a, it)
        return it

    def commit(self, a: Agent, it: Item, *, governance: bool | None = None) -> None:
        if governance if governance is not None else it.kind not in (VOTE, *APP_KINDS):
            self.last_gov = it.id
        a.head = (it.seq, it.id)
        self.index[it.id] = len(self.global_)
        a.own.append(len(self.global_))
        self.global_.append(it)
        self.by_id[it.id] = it
        self.fold.add_items([it])

    def push_proof(self, p: Item) -> None:
        self.index[p.id] = len(self.global_)
        self.global_.append(p)
        self.by_id[p.id] = p
        self.fold.add_items([p])

    # ---- choosing ----

    def items_of_kind(self, a: Agent, kind: str) -> list[Item]:
        return [self.global_[i] for i in range(a.horizon) if self.global_[i].kind == kind]

    def step(self) -> None:
        rng = self.rng
        self.clock += rng.randint(0, DAY_MS // 3)
        a = rng.choice(self.agents)
        a.horizon = len(self.global_) if rng.random() < 0.4 else rng.randint(a.horizon, len(self.global_))
        s = self.fold.state
        status = s.status(a.id)
        r = rng.random()
        if status in ("none", "left"):
            if r < 0.6:
                self.make(a, APPLY, {"note": "hello"} if rng.random() < 0.5 else {})
                return
        elif status == "applicant":
            if r < 0.08:
                self.make(a, LEAVE, {})
                return
            if r < 0.7:
                return  # waiting to be admitted
        elif status == "member" and r < 0.015:
            self.make(a, LEAVE, {})
            return
        r = rng.random()
        if self.equivocations and r < 0.015 and status != "none":
            self.equivocate(a)
        elif r < 0.12:
            self.open_proposal(a)
        elif r < 0.55:
            self.vote(a)
        elif r < 0.72:
            self.tally(a)
        elif r < 0.8:
            self.sponsor(a)
        elif r < 0.97:
            self.make(a, rng.choice(APP_KINDS), {"n": self._n})
        else:
            self.make(a, APPLY, {})

    def equivocate(self, a: Agent) -> None:
        head = a.head
        kind = "fork" if self.sequential else self.rng.choice(APP_KINDS)
        x = self.make(a, kind, {"fork": 1}, commit=False)
        y = self.make(a, kind, {"fork": 2}, commit=False)
        assert a.head == head
        c, other = sorted((x, y), key=lambda i: i.id)
        self.commit(a, c, governance=self.sequential)
        self.push_proof(proof_item(c, other))

    def open_proposal(self, a: Agent) -> None:
        rng = self.rng
        s = self.fold.state
        ptype = rng.choice(PTYPES)
        extra: list[bytes] = []
        mine = [x for x in s.sanctions.values() if x.member == a.id and x.lifted_by is None and self.sees(a, x.imposed_by)]
        pending = {p.payload["sanction"] for p in s.proposals.values() if p.type == "lift" and p.status == "open"}
        mine = [x for x in mine if x.id not in pending]
        if mine and rng.random() < 0.5:
            ptype = "lift"
        members = [k for k, m in s.members.items() if m.status == MEMBER]
        if ptype == "admit":
            applicants = [k for k, m in s.members.items() if m.status == "applicant"]
            target = rng.choice(applicants) if applicants and rng.random() < 0.9 else rng.choice(self.agents).id
            if target in s.members:
                extra.append(s.members[target].since)
            payload: dict[str, Any] = {"member": target}
        elif ptype == "amend":
            payload = {"charter": random_charter(rng)}
        elif ptype == "sanction":
            target = rng.choice(members) if members else a.id
            clauses = sorted(s.charter["offences"])
            clause = rng.choice(clauses) if clauses and rng.random() < 0.9 else "unknown_offence"
            own = [self.by_id[x] for x in self.view_ids(a) if self.by_id[x].author == target and self.by_id[x].kind != EQUIVOCATION]
            evidence = [x.id for x in own[len(own) - rng.randint(0, min(3, len(own))) :]]
            payload = {"member": target, "clause": clause, "evidence": evidence}
        elif ptype == "lift":
            live = [x for x in s.sanctions.values() if x.lifted_by is None]
            if mine and rng.random() < 0.7:
                x = rng.choice(mine)
            elif live:
                x = rng.choice(live)
            else:
                x = None
            sid = x.id if x is not None else make_id("no-sanction", self._n)
            if x is not None and x.imposed_by in self.index:
                extra.append(x.imposed_by)
            payload = {"sanction": sid}
        elif ptype == "federate":
            coop = self.genesis.id if rng.random() < 0.05 else rng.choice(OTHER_COOPS)
            payload = {"coop": coop, "terms": {"share": rng.choice(("rides", "food"))}}
        elif ptype == "unfederate":
            feds = sorted(s.federations)
            payload = {"coop": rng.choice(feds) if feds and rng.random() < 0.8 else rng.choice(OTHER_COOPS)}
        elif ptype == "role":
            roles = sorted(s.charter["roles"])
            role = rng.choice(roles) if rng.random() < 0.9 else "pilot"
            target = rng.choice(members) if members else a.id
            payload = {"member": target, "role": role, "grant": rng.random() < 0.8}
        else:
            payload = {}
        for x in extra:
            self.see(a, x)
        self.make(a, OPEN, {"type": ptype, "title": f"{ptype} #{self._n}", "payload": payload}, extra)

    def pick_proposal(self, a: Agent) -> Item | None:
        s = self.fold.state
        opens = [it for it in self.items_of_kind(a, OPEN) if it.id in s.proposals]
        if not opens:
            return None
        live = [it for it in opens if s.proposals[it.id].status == "open"]
        pool = live if live and self.rng.random() < 0.9 else opens
        return self.rng.choice(pool[-3:] if self.rng.random() < 0.75 else pool)

    def vote(self, a: Agent) -> None:
        p = self.pick_proposal(a)
        if p is None:
            return
        ptype = p.body["type"]
        weights = (6, 2, 1, 1) if ptype in ("sanction", "lift", "admit", "role") else (5, 3, 1, 1)
        choice = self.rng.choices(CHOICES, weights)[0]
        it = self.make(a, VOTE, {"proposal": p.id, "choice": choice}, [p.id])
        self.votes_on.setdefault(p.id, []).append(it.id)

    def tally(self, a: Agent) -> None:
        p = self.pick_proposal(a)
        if p is None:
            return
        seen_votes = [v for v in self.votes_on.get(p.id, []) if self.sees(a, v)]
        extra = [p.id, *seen_votes[-30:]]
        it = self.make(a, TALLY, {"proposal": p.id, "outcome": "open"}, extra, commit=False)
        prop = self.fold.state.proposals.get(p.id)
        computed = self.fold.preview(p.id, it.parents)[0] if prop is not None and all(x in self.fold.height for x in it.parents) else "open"
        claim = computed
        if self.rng.random() < 0.12:
            claim = self.rng.choice([o for o in ("passed", "rejected", "open") if o != claim])
            self.wrong_claims.add(it.id)
        it = Item(it.id, it.author, it.seq, it.prev, it.deps, it.ts, it.kind, canon({"proposal": p.id, "outcome": claim}))
        self.commit(a, it)
        self.claims[it.id] = (claim, computed, self.fold.results[it.id])

    def sponsor(self, a: Agent) -> None:
        s = self.fold.state
        applicants = [k for k, m in s.members.items() if m.status == "applicant"]
        target = self.rng.choice(applicants) if applicants and self.rng.random() < 0.9 else self.rng.choice(self.agents).id
        extra = [s.members[target].since] if target in s.members else []
        for x in extra:
            self.see(a, x)
        self.make(a, SPONSOR, {"member": target}, extra)

    def run(self, n: int) -> History:
        while len(self.global_) - 1 < n:
            self.step()
        return History(self.genesis, self.global_[1:], self.wrong_claims, self.founders, [a.id for a in self.agents], self.claims)


def simulate(
    seed: int,
    n: int,
    *,
    founders: int = 3,
    outsiders: int = 6,
    custom_charter: bool = True,
    equivocations: bool = True,
    sequential: bool = False,
) -> History:
    sim = Simulator(
        seed, founders=founders, outsiders=outsiders, custom_charter=custom_charter, equivocations=equivocations, sequential=sequential
    )
    return sim.run(n)


# ---- delivery orders -------------------------------------------------------------------------------


def causal_shuffle(items: Sequence[Item], rng: random.Random, *, glue_proofs: bool = False) -> list[Item]:
    """A random order in which every item comes after its parents (those in ``items``).

    ``glue_proofs``: each equivocation proof comes right after its canonical action, as when the
    node that sees the fork gossips the proof with it.
    """
    proofs = {it.deps[0]: it for it in items if it.kind == EQUIVOCATION} if glue_proofs else {}
    glued = {p.id for p in proofs.values()}
    items = [it for it in items if it.id not in glued]
    ids = {it.id for it in items}
    waiting: dict[bytes, int] = {}
    children: dict[bytes, list[Item]] = {}
    ready: list[Item] = []
    for it in items:
        ps = [p for p in set(it.parents) if p in ids]
        waiting[it.id] = len(ps)
        for p in ps:
            children.setdefault(p, []).append(it)
        if not ps:
            ready.append(it)
    out: list[Item] = []
    while ready:
        it = ready.pop(rng.randrange(len(ready)))
        out.append(it)
        if it.id in proofs:
            out.append(proofs[it.id])
        for c in children.get(it.id, ()):
            waiting[c.id] -= 1
            if waiting[c.id] == 0:
                ready.append(c)
    assert len(out) == len(items) + len(glued)
    return out


def batches(items: Sequence[Item], rng: random.Random) -> list[list[Item]]:
    out: list[list[Item]] = []
    i = 0
    while i < len(items):
        k = rng.choice((1, 1, 2, 3, 5, 8, 20))
        out.append(list(items[i : i + k]))
        i += k
    return out


def fold_in(genesis: Action, deliveries: Iterable[Sequence[Item]], *, snapshot_every: int = 2000) -> Fold:
    f = Fold(genesis, snapshot_every=snapshot_every)
    for batch in deliveries:
        f.add_items(list(batch))
    return f


def summary(f: Fold) -> tuple[bytes, dict[bytes, str | None], int]:
    return f.state_hash(), dict(f.results), f.deferred
